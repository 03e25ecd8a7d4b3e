from datetime import UTC, datetime

from django import template

register = template.Library()


@register.filter
def ms_datetime(value):
    """Milliseconds since the epoch (the registry's timestamps) as an aware UTC datetime."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
