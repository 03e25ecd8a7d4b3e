"""Small helpers every app's HTML views share (tracking, registry, approvals, monitoring)."""

import html
from datetime import UTC, datetime

import markdown
import nh3

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from core.errors import DoesNotExist, InvalidParameter, PermissionDenied


def or_404(getter, *args, **kwargs):
    """Call an access helper for a page: invisible objects are 404s, visible-but-forbidden ones 403s."""
    try:
        return getter(*args, **kwargs)
    except (DoesNotExist, InvalidParameter) as exc:
        raise Http404(exc.message) from None
    except PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None


def wants_partial(request, target: str | None = None) -> bool:
    """An htmx swap of one region (not a boosted link, not a history restore after a cache miss)."""
    htmx = request.htmx
    if not htmx or htmx.boosted or htmx.history_restore_request:
        return False
    # No HX-Target (a plain hx-get) means "the page's main region".
    return target is None or htmx.target in (None, target)


def ms_to_datetime(ms: int | None):
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def query_string(request, **changes) -> str:
    """The current query string with some keys replaced (None drops a key, a list repeats it)."""
    params = request.GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            params.setlist(key, list(value))
        else:
            params[key] = value
    return params.urlencode()


def page_links(request, next_token: str | None) -> dict:
    """The paging part of a keyset-paged list's context: links to the first and the next page."""
    return {
        "is_first_page": not request.GET.get("page_token"),
        "next_query": query_string(request, page_token=next_token) if next_token else "",
        "first_query": query_string(request, page_token=None),
    }


def render_markdown(text: str | None) -> str:
    """Markdown rendered, then sanitised (nh3 keeps only safe tags; links get rel=noopener)."""
    if not text:
        return ""
    return mark_safe(nh3.clean(markdown.markdown(text, extensions=["fenced_code", "tables"])))


def relative_time(value: datetime | None) -> str:
    """"3 hours ago" (one unit, as MLflow's tables), "just now" under a minute; "" for no time."""
    if value is None:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, depth=1)} ago"


def markdown_snippet(text: str | None, length: int = 140) -> str:
    """The plain text of a Markdown description (no `**`, `#`, links' URLs), cut at a word: a list-row snippet."""
    if not text:
        return ""
    plain = html.unescape(nh3.clean(markdown.markdown(text[:4000]), tags=set()))
    plain = " ".join(plain.split())
    return plain if len(plain) <= length else plain[:length].rsplit(" ", 1)[0] + "…"
