"""The absolute URL of an invite link, for the API response and the team page that show it once."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse


def invite_url(request, secret: str) -> str:
    """Where the invitee opens the link: STUDIO_PUBLIC_URL when set (behind a proxy), else this request's host."""
    path = reverse("invite-accept", args=[secret])
    base = getattr(settings, "STUDIO_PUBLIC_URL", "") or ""
    return base.rstrip("/") + path if base else request.build_absolute_uri(path)
