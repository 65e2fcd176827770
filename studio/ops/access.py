"""Who may see the admin dashboard: site admins (staff or superusers). Everyone else is told it does not exist."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions, permissions


def is_site_admin(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active
                and (user.is_staff or user.is_superuser))


def require_site_admin(user: Any) -> None:
    """404, never 403: the dashboard's existence is not something to reveal to team members."""
    if not is_site_admin(user):
        raise Http404("No such page.")


class IsSiteAdmin(permissions.BasePermission):
    """After IsAuthenticated (anonymous callers get 401): anyone but a site admin gets 404."""

    def has_permission(self, request, view) -> bool:
        if not is_site_admin(request.user):
            raise exceptions.NotFound("Not found.")
        return True
