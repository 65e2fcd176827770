"""Role checks. Visibility (404) is the selectors' job; this is 'visible but not allowed' (403)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied

from studio.accounts.models import ROLE_RANK, Role
from studio.accounts.selectors import role_for

if TYPE_CHECKING:
    from studio.accounts.models import Team, User


# Set only by acting_as_site_admin: the ops dashboard's actions go through the same services as a team
# member's, with the role checks passed for the site admin who clicked, and nobody else.
_site_admin_acting: ContextVar[bool] = ContextVar("site_admin_acting", default=False)


def is_site_admin(user: User) -> bool:
    return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))


@contextmanager
def acting_as_site_admin(*, user: User) -> Iterator[None]:
    """Inside this block, role checks pass for ``user``, a site admin (who belongs to no team)."""
    if not is_site_admin(user):
        raise PermissionDenied("This needs a site admin.")
    token = _site_admin_acting.set(True)
    try:
        yield
    finally:
        _site_admin_acting.reset(token)


def has_role(*, user: User, team: Team, role: str) -> bool:
    if _site_admin_acting.get() and is_site_admin(user):
        return True
    current = role_for(user=user, team=team)
    return current is not None and ROLE_RANK[Role(current)] >= ROLE_RANK[Role(role)]


def require_role(*, user: User, team: Team, role: str) -> None:
    if not has_role(user=user, team=team, role=role):
        raise PermissionDenied(f"This needs the {role} role in team '{team.slug}'.")
