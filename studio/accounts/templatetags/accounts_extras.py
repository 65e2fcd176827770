"""Template pieces of accounts that other apps' pages include (the home page's pending invitations)."""

from __future__ import annotations

from django import template

from studio.accounts.selectors import pending_invitations_for

register = template.Library()


@register.inclusion_tag("accounts/_pending_invitations.html", takes_context=True)
def pending_invitations(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    invitations = list(pending_invitations_for(user=user)) if user is not None else []
    # An inclusion tag gets a fresh context: the CSRF token must be handed over for its forms.
    return {"invitations": invitations, "csrf_token": context.get("csrf_token")}
