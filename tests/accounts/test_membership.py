"""Roles of members over the API: change a role, transfer ownership, leave a team."""

from __future__ import annotations

import pytest

from studio.accounts.models import AuditEvent, Membership, Role
from tests.conftest import api_client

pytestmark = pytest.mark.django_db


def role_of(world, user) -> str | None:
    membership = Membership.objects.filter(team=world.team, user=user).first()
    return membership.role if membership else None


def member_url(world, username: str) -> str:
    return f"/api/v1/teams/{world.team.slug}/members/{username}"


def test_it_changes_a_members_role(world):
    promoted = api_client(world.owner).patch(member_url(world, "vera"), {"role": "member"}, format="json")
    assert promoted.status_code == 200 and promoted.json()["role"] == "member"
    assert role_of(world, world.viewer) == "member"
    event = AuditEvent.objects.get(verb="changed the role of")
    assert event.target == "vera to member" and event.data == {"username": "vera", "from": "viewer", "to": "member"}


def test_it_refuses_role_changes_by_rank(world):
    viewer, member = api_client(world.viewer), api_client(world.member)
    assert viewer.patch(member_url(world, "mark"), {"role": "viewer"}, format="json").status_code == 403
    assert member.patch(member_url(world, "vera"), {"role": "member"}, format="json").status_code == 403
    Membership.objects.filter(user=world.member).update(role=Role.ADMIN)
    admin = api_client(world.member)
    assert admin.patch(member_url(world, "vera"), {"role": "admin"}, format="json").status_code == 200
    # An admin can neither make an owner nor touch one.
    assert admin.patch(member_url(world, "vera"), {"role": "owner"}, format="json").status_code == 403
    assert admin.patch(member_url(world, "olivia"), {"role": "viewer"}, format="json").status_code == 403
    assert admin.delete(member_url(world, "olivia")).status_code == 403
    assert role_of(world, world.owner) == "owner"


def test_it_answers_bad_role_changes_with_400_404_and_409(world):
    owner = api_client(world.owner)
    bad = owner.patch(member_url(world, "vera"), {"role": "god"}, format="json")
    assert bad.status_code == 400 and "role" in bad.json()["errors"]
    missing = owner.patch(member_url(world, "vera"), {}, format="json")
    assert missing.status_code == 400 and "role" in missing.json()["errors"]
    assert owner.patch(member_url(world, "oscar"), {"role": "viewer"}, format="json").status_code == 404
    last = owner.patch(member_url(world, "olivia"), {"role": "admin"}, format="json")
    assert last.status_code == 409 and "last owner" in last.json()["detail"]
    assert api_client(world.outsider).patch(member_url(world, "vera"), {"role": "admin"},
                                            format="json").status_code == 404


def test_it_transfers_ownership(world):
    url = f"/api/v1/teams/{world.team.slug}/transfer-ownership"
    assert api_client(world.member).post(url, {"username": "vera"}, format="json").status_code == 403
    response = api_client(world.owner).post(url, {"username": "mark"}, format="json")
    assert response.status_code == 200 and response.json()["username"] == "mark"
    assert (role_of(world, world.member), role_of(world, world.owner)) == ("owner", "admin")
    assert AuditEvent.objects.filter(verb="transferred ownership to", target="mark").exists()
    # The old owner is an admin now: they cannot take it back.
    assert api_client(world.owner).post(url, {"username": "olivia"}, format="json").status_code == 403


def test_it_rejects_transfers_to_non_members_naming_the_field(world):
    url = f"/api/v1/teams/{world.team.slug}/transfer-ownership"
    owner = api_client(world.owner)
    for body in ({"username": "oscar"}, {"username": "olivia"}, {}):
        response = owner.post(url, body, format="json")
        assert response.status_code == 400 and "username" in response.json()["errors"], body
    assert role_of(world, world.owner) == "owner"
    assert api_client(world.outsider).post(url, {"username": "oscar"}, format="json").status_code == 404


def test_it_lets_members_leave_but_not_the_last_owner(world):
    url = f"/api/v1/teams/{world.team.slug}/leave"
    assert api_client(world.viewer).post(url).status_code == 204
    assert role_of(world, world.viewer) is None
    last = api_client(world.owner).post(url)
    assert last.status_code == 409 and "last owner" in last.json()["detail"]
    assert "transfer ownership" in last.json()["detail"]
    api_client(world.owner).post(f"/api/v1/teams/{world.team.slug}/transfer-ownership", {"username": "mark"},
                                 format="json")
    assert api_client(world.owner).post(url).status_code == 204
    assert AuditEvent.objects.filter(verb="left team").count() == 2
    assert api_client(world.outsider).post(f"/api/v1/teams/{world.team.slug}/leave").status_code == 404


def test_it_lets_one_of_two_owners_leave(world):
    Membership.objects.filter(user=world.member).update(role=Role.OWNER)
    assert api_client(world.owner).post(f"/api/v1/teams/{world.team.slug}/leave").status_code == 204
    assert api_client(world.member).post(f"/api/v1/teams/{world.team.slug}/leave").status_code == 409
