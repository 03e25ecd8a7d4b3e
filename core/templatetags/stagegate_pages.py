"""Template helpers every app's pages share."""

from django import template
from django.utils.http import url_has_allowed_host_and_scheme

from core.permissions import level_label as _level_label

register = template.Library()


@register.simple_tag(takes_context=True)
def way_back(context) -> str:
    """The page the user came from when it is on this server (the Referer), else ""."""
    request = context.get("request")
    if request is None:
        return ""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and referer != request.build_absolute_uri() and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return ""


@register.filter
def level_label(level) -> str:
    """{{ "CAN_MANAGE_PRODUCTION_VERSIONS"|level_label }} -> Can manage Production versions."""
    return _level_label(level)
