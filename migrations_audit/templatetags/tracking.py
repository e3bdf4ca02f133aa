"""Template filters of the tracking pages."""

import json
import re
from datetime import datetime

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def inline_code(text):
    """Changelog titles quote fields in backticks (`temperature`): show them as code, escaped."""
    escaped = str(conditional_escape(text))
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped))  # noqa: S308 - escaped above


@register.filter
def iso_datetime(value):
    """An ISO timestamp kept in evidence JSON, as a datetime the `date` filter can format."""
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


@register.filter
def percent(value):
    """0.8571 -> "86%"; None -> "—"."""
    return "—" if value is None else f"{value:.0%}"


@register.filter
def as_json(value):
    """A stored JSON value as JSON (`null`, `false`, `{"status": 400}`), never a Python repr."""
    return json.dumps(value, ensure_ascii=False, default=str)


_INTERVALS = ((86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


@register.filter
def every(seconds):
    """3600 -> "every hour", 86400 -> "every day", 21600 -> "every 6 hours", 90 -> "every 90 seconds"."""
    if not seconds:
        return "—"
    for size, unit in _INTERVALS:
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"


@register.filter
def status_label(value):
    """A migration status key ("not_started") as its label ("Not started")."""
    from migrations_audit.models import Status

    try:
        return Status(value).label
    except ValueError:
        return str(value).replace("_", " ").capitalize()
