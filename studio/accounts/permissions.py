"""Role checks. Visibility (404) is the selectors' job; this is 'visible but not allowed' (403)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied

from studio.accounts.models import ROLE_RANK, Role
from studio.accounts.selectors import role_for

if TYPE_CHECKING:
    from studio.accounts.models import Team, User


def has_role(*, user: User, team: Team, role: str) -> bool:
    current = role_for(user=user, team=team)
    return current is not None and ROLE_RANK[Role(current)] >= ROLE_RANK[Role(role)]


def require_role(*, user: User, team: Team, role: str) -> None:
    if not has_role(user=user, team=team, role=role):
        raise PermissionDenied(f"This needs the {role} role in team '{team.slug}'.")
