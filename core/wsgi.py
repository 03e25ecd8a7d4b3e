"""The WSGI application: the JSON API on a short middleware chain, pages on the full one.

An API call needs none of what the page middleware does (CSRF: API views are exempt; the login
redirect: they answer 401 JSON; messages, X-Frame-Options, htmx, static files, slash redirects),
yet paid for all of it: ~0.3 ms of CPU per request, a third of a model-versions/get. Requests
under the API prefixes go to a second Django handler built from `settings.API_MIDDLEWARE`
(security headers and the session, so a signed-in browser still reads the API); everything else
goes to the handler built from `settings.MIDDLEWARE`. Both are ordinary Django handlers: same URL
conf, signals, exception handling.
"""

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

API_PREFIXES = ("/api/", "/ajax-api/")


class _Handler(WSGIHandler):
    """A Django WSGI handler with its own middleware list."""

    def __init__(self, middleware: list[str]):
        self._middleware_paths = list(middleware)
        super().__init__()

    def load_middleware(self, is_async=False):
        # BaseHandler reads settings.MIDDLEWARE; give it ours while it builds the chain (once, at start-up).
        saved = settings.MIDDLEWARE
        settings.MIDDLEWARE = self._middleware_paths
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = saved


def application_with_lanes():
    """The site's WSGI callable (call after django.setup())."""
    pages = WSGIHandler()
    api = _Handler(settings.API_MIDDLEWARE)

    def application(environ, start_response):
        handler = api if environ.get("PATH_INFO", "").startswith(API_PREFIXES) else pages
        return handler(environ, start_response)

    return application
