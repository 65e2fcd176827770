from __future__ import annotations

import math

from django import template

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """12.3 s, 4 min 05 s, 2 h 07 min: readable at a glance in tables."""
    if seconds is None or seconds == "":
        return "—"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def metric(value) -> str:
    if value is None or value == "":
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return str(number)
    return f"{number:.4g}"


@register.filter
def get_item(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def is_number(value) -> bool:
    """True for int and float cells (right-aligned in result tables), False for text and bools."""
    return isinstance(value, int | float) and not isinstance(value, bool)
