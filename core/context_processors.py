"""Template context shared by every page: the header's review-inbox count and link.

`core` knows no app, so the count comes from a function named in settings
(`STAGEGATE_REVIEW_INBOX_COUNTER`, a dotted path taking the user and returning an int)
that the governance app provides. Until then the header shows 0. Both values are
lazy: a page that never renders the header (an htmx partial) costs no query.
"""

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.module_loading import import_string


def _inbox_count(user) -> int:
    path = getattr(settings, "STAGEGATE_REVIEW_INBOX_COUNTER", "")
    if not path or not user.is_authenticated:
        return 0
    return int(import_string(path)(user))


def _inbox_url() -> str:
    try:
        return reverse(getattr(settings, "STAGEGATE_REVIEW_INBOX_URL_NAME", "approvals:inbox"))
    except NoReverseMatch:
        return ""


# URL namespace -> the header tab it highlights (a view may still pass `nav_section` itself).
NAV_SECTIONS = {"tracking": "experiments", "registry": "models", "approvals": "reviews"}


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    match = getattr(request, "resolver_match", None)
    return {
        "nav_section": NAV_SECTIONS.get(match.namespace if match else "", ""),
        "review_inbox_count": SimpleLazyObject(lambda: _inbox_count(user)) if user is not None else 0,
        "review_inbox_url": SimpleLazyObject(_inbox_url),
    }
