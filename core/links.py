"""Absolute links: the address the user reached while a request is served, STAGEGATE_BASE_URL otherwise.

Pages and API answers build links from the request (`request.build_absolute_uri`, which honours
ALLOWED_HOSTS and USE_X_FORWARDED_HOST), so `PORT=9000 make run` or a proxy's host shows up in them.
Code with no request in reach (a service raising a guiding error) asks `absolute_url`, which reads the
request this middleware remembers for the current thread/task. Mails and webhooks, sent by background
workers, have no request: they use STAGEGATE_BASE_URL.
"""

from contextvars import ContextVar

from django.conf import settings

_current_request: ContextVar = ContextVar("stagegate_current_request", default=None)


def base_url() -> str:
    """STAGEGATE_BASE_URL without its trailing slash: the public address for mails and webhooks."""
    return (getattr(settings, "STAGEGATE_BASE_URL", "") or "").rstrip("/")


def absolute_url(path: str) -> str:
    """`path` on the host of the request being served, else on STAGEGATE_BASE_URL."""
    request = _current_request.get()
    if request is not None:
        return request.build_absolute_uri(path)
    return base_url() + path


class RequestLinksMiddleware:
    """Remembers the request being served, so `absolute_url` links to the address the user reached."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)
