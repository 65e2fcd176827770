"""Base fixtures: one team with an owner, a member and a viewer; an outsider with a team of their own."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from rest_framework.test import APIClient

from studio.accounts import services as account_services
from studio.accounts.models import Membership, Project, Role, Team, User

PASSWORD = "correct-horse-battery-staple"


@dataclass
class World:
    owner: User
    member: User
    viewer: User
    outsider: User
    team: Team
    project: Project
    other_team: Team
    other_project: Project


def make_user(username: str) -> User:
    return User.objects.create_user(username=username, password=PASSWORD)


@pytest.fixture
def world(db) -> World:
    owner, member, viewer, outsider = (make_user(n) for n in ("olivia", "mark", "vera", "oscar"))
    team = account_services.team_create(user=owner, name="Acme ML")
    Membership.objects.create(team=team, user=member, role=Role.MEMBER)
    Membership.objects.create(team=team, user=viewer, role=Role.VIEWER)
    project = account_services.project_create(user=owner, team=team, name="Churn")
    other_team = account_services.team_create(user=outsider, name="Rival Inc")
    other_project = account_services.project_create(user=outsider, team=other_team, name="Secret")
    return World(owner, member, viewer, outsider, team, project, other_team, other_project)


def api_client(user: User | None = None) -> APIClient:
    """A client that authenticates like an outside script: with a real Bearer token."""
    client = APIClient()
    if user is not None:
        _, secret = account_services.api_token_create(user=user, name="test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def api():
    return api_client


def csv_bytes(rows: list[list], header: list[str]) -> bytes:
    out = io.StringIO()
    out.write(",".join(header) + "\n")
    for row in rows:
        out.write(",".join("" if v is None else str(v) for v in row) + "\n")
    return out.getvalue().encode()


def regression_csv(n: int = 200, seed: int = 0) -> bytes:
    """y = 3*x1 - 2*x2 + 0.5*x3 + noise: a linear model should reach R2 close to 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] + rng.normal(scale=0.1, size=n)
    rows = [[round(a, 5), round(b, 5), round(c, 5), round(t, 5)] for (a, b, c), t in zip(x, y, strict=True)]
    return csv_bytes(rows, ["x1", "x2", "x3", "price"])


def classification_csv(n: int = 300, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    label = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    rows = [[round(a, 5), round(b, 5), lab] for (a, b), lab in zip(x, label, strict=True)]
    return csv_bytes(rows, ["f1", "f2", "churned"])
