"""What every project page needs: the scoped project and what the user's role allows."""

from __future__ import annotations

import time
from dataclasses import dataclass

from studio.accounts.models import ROLE_RANK, Project, Role
from studio.accounts.selectors import project_get, role_for


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: str

    @property
    def can_edit(self) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role.MEMBER]

    @property
    def can_admin(self) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role.ADMIN]

    def context(self, nav: str, **extra) -> dict:
        # rendered_at lets live pages ask the project stream only for what happened after this render.
        return {"project": self.project, "team": self.project.team, "role": self.role,
                "can_edit": self.can_edit, "can_admin": self.can_admin, "nav": nav,
                "rendered_at": f"{time.time():.6f}", **extra}


def project_access(request, project_id) -> ProjectAccess:
    """The project if the user's teams can see it (else 404), with their role in it."""
    project = project_get(user=request.user, project_id=project_id)
    return ProjectAccess(project=project, role=role_for(user=request.user, team=project.team))
