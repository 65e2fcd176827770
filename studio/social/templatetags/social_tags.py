"""Template helpers of the social layer: the bell's unread count in the header of every page."""

from __future__ import annotations

from django import template

from studio.social.selectors import unread_count

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notifications(context) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    return unread_count(user=user)
