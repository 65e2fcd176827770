"""Invitations over the API: by username (accept/decline) and by link (hashed, expiring, counted, revocable)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from studio.accounts.models import AuditEvent, Invitation, Membership, Role
from studio.accounts.services import _hash_token
from tests.conftest import api_client, make_user

pytestmark = pytest.mark.django_db


def invitations_url(world) -> str:
    return f"/api/v1/teams/{world.team.slug}/invitations"


def invite_link(world, *, role: str = "viewer", **extra) -> dict:
    response = api_client(world.owner).post(invitations_url(world), {"link": True, "role": role, **extra},
                                            format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def role_of(world, user) -> str | None:
    membership = Membership.objects.filter(team=world.team, user=user).first()
    return membership.role if membership else None


def test_it_invites_a_user_by_username_who_accepts(world):
    newbie = make_user("nina")
    created = api_client(world.owner).post(invitations_url(world), {"username": "nina", "role": "viewer"},
                                           format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["kind"] == "user" and body["username"] == "nina" and body["state"] == "pending"
    assert body["url"] is None and body["token"] is None
    nina = api_client(newbie)
    mine = nina.get("/api/v1/me/invitations").json()["results"]
    assert [(i["team"], i["role"], i["invited_by"]) for i in mine] == [(world.team.slug, "viewer", "olivia")]
    accepted = nina.post(f"/api/v1/me/invitations/{body['id']}/accept")
    assert accepted.status_code == 200
    assert accepted.json() == {"team": {"slug": world.team.slug, "name": "Acme ML", "role": "viewer"}, "joined": True}
    assert role_of(world, newbie) == "viewer"
    assert nina.get("/api/v1/me/invitations").json()["results"] == []
    again = nina.post(f"/api/v1/me/invitations/{body['id']}/accept")
    assert again.status_code == 409 and "already accepted" in again.json()["detail"]
    verbs = set(AuditEvent.objects.filter(team=world.team).values_list("verb", flat=True))
    assert {"invited", "joined team"} <= verbs


def test_it_lets_the_invitee_decline(world):
    newbie = make_user("nina")
    invitation = api_client(world.owner).post(invitations_url(world), {"username": "nina"}, format="json").json()
    declined = api_client(newbie).post(f"/api/v1/me/invitations/{invitation['id']}/decline")
    assert declined.status_code == 200 and declined.json()["state"] == "declined"
    assert role_of(world, newbie) is None
    assert api_client(newbie).post(f"/api/v1/me/invitations/{invitation['id']}/accept").status_code == 409
    assert AuditEvent.objects.filter(verb="declined the invitation to", target="Acme ML").exists()


def test_it_answers_404_to_someone_else_accepting_a_username_invitation(world):
    make_user("nina")
    invitation = api_client(world.owner).post(invitations_url(world), {"username": "nina"}, format="json").json()
    for user in (world.outsider, world.member):
        client = api_client(user)
        assert client.post(f"/api/v1/me/invitations/{invitation['id']}/accept").status_code == 404
        assert client.post(f"/api/v1/me/invitations/{invitation['id']}/decline").status_code == 404


def test_it_rejects_bad_username_invitations_naming_the_field(world):
    owner = api_client(world.owner)
    unknown = owner.post(invitations_url(world), {"username": "ghost", "role": "viewer"}, format="json")
    assert unknown.status_code == 400 and "username" in unknown.json()["errors"]
    member = owner.post(invitations_url(world), {"username": "mark"}, format="json")
    assert member.status_code == 409 and "already a member" in member.json()["detail"]
    neither = owner.post(invitations_url(world), {"role": "viewer"}, format="json")
    assert neither.status_code == 400 and "username" in neither.json()["errors"]
    both = owner.post(invitations_url(world), {"username": "oscar", "link": True}, format="json")
    assert both.status_code == 400 and "username" in both.json()["errors"]
    bad_role = owner.post(invitations_url(world), {"username": "oscar", "role": "god"}, format="json")
    assert bad_role.status_code == 400 and "role" in bad_role.json()["errors"]
    days = owner.post(invitations_url(world), {"link": True, "expires_in_days": 0}, format="json")
    assert days.status_code == 400 and "expires_in_days" in days.json()["errors"]
    uses = owner.post(invitations_url(world), {"link": True, "max_uses": "many"}, format="json")
    assert uses.status_code == 400 and "max_uses" in uses.json()["errors"]
    user_uses = owner.post(invitations_url(world), {"username": "oscar", "max_uses": 3}, format="json")
    assert user_uses.status_code == 400 and "max_uses" in user_uses.json()["errors"]
    assert owner.post(invitations_url(world), {"username": "oscar"}, format="json").status_code == 201
    twice = owner.post(invitations_url(world), {"username": "oscar"}, format="json")
    assert twice.status_code == 409 and "pending invitation" in twice.json()["detail"]


def test_it_makes_a_single_use_link_whose_secret_is_only_hashed(world):
    body = invite_link(world, role="member")
    token = body["token"]
    assert body["kind"] == "link" and body["max_uses"] == 1 and body["uses"] == 0
    assert body["url"].endswith(f"/invite/{token}/") and body["url"].startswith("http")
    stored = Invitation.objects.get(id=body["id"])
    assert stored.token_hash == _hash_token(token) and token not in (stored.prefix + stored.token_hash)
    assert token not in str(api_client(world.owner).get(invitations_url(world)).json())
    days = (stored.expires_at - timezone.now()).total_seconds() / 86400
    assert 6.9 < days <= 7  # the default expiry
    newbie = make_user("nina")
    preview = api_client(newbie).get(f"/api/v1/invitations/{token}")
    assert preview.status_code == 200 and preview.json()["role"] == "member"
    joined = api_client(newbie).post(f"/api/v1/invitations/{token}/accept")
    assert joined.status_code == 200 and joined.json()["joined"] is True
    assert role_of(world, newbie) == "member"
    late = api_client(make_user("paul")).post(f"/api/v1/invitations/{token}/accept")
    assert late.status_code == 409 and "used as many times" in late.json()["detail"]


def test_it_counts_uses_of_a_multi_use_link(world):
    token = invite_link(world, max_uses=2)["token"]
    first, second, third = (make_user(n) for n in ("ann", "ben", "cat"))
    assert api_client(first).post(f"/api/v1/invitations/{token}/accept").status_code == 200
    # Someone already in does not spend a use.
    again = api_client(first).post(f"/api/v1/invitations/{token}/accept")
    assert again.status_code == 200 and again.json()["joined"] is False
    assert api_client(second).post(f"/api/v1/invitations/{token}/accept").status_code == 200
    assert api_client(third).post(f"/api/v1/invitations/{token}/accept").status_code == 409
    assert Invitation.objects.get(token_hash=_hash_token(token)).uses == 2
    assert role_of(world, third) is None


def test_it_refuses_expired_and_revoked_links(world):
    expired = invite_link(world)
    Invitation.objects.filter(id=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client(world.outsider).post(f"/api/v1/invitations/{expired['token']}/accept")
    assert response.status_code == 409 and "expired" in response.json()["detail"]
    revoked = invite_link(world)
    assert api_client(world.member).delete(f"{invitations_url(world)}/{revoked['id']}").status_code == 403
    assert api_client(world.owner).delete(f"{invitations_url(world)}/{revoked['id']}").status_code == 204
    response = api_client(world.outsider).post(f"/api/v1/invitations/{revoked['token']}/accept")
    assert response.status_code == 409 and "revoked" in response.json()["detail"]
    assert role_of(world, world.outsider) is None
    listed = {i["id"]: i["state"] for i in api_client(world.owner).get(invitations_url(world)).json()["results"]}
    assert listed == {expired["id"]: "expired", revoked["id"]: "revoked"}
    assert AuditEvent.objects.filter(verb="revoked invitation").count() == 1


def test_it_answers_404_for_unknown_tokens_and_401_without_auth(world):
    client = api_client(world.outsider)
    assert client.get("/api/v1/invitations/inv_nope").status_code == 404
    assert client.post("/api/v1/invitations/inv_nope/accept").status_code == 404
    token = invite_link(world)["token"]
    assert APIClient().post(f"/api/v1/invitations/{token}/accept").status_code == 401
    assert APIClient().get("/api/v1/me/invitations").status_code == 401


def test_it_never_lets_an_inviter_grant_above_their_own_role(world):
    Membership.objects.filter(user=world.member).update(role=Role.ADMIN)
    admin = api_client(world.member)
    owner_invite = admin.post(invitations_url(world), {"link": True, "role": "owner"}, format="json")
    assert owner_invite.status_code == 403
    assert admin.post(invitations_url(world), {"link": True, "role": "admin"}, format="json").status_code == 201
    viewer = api_client(world.viewer)
    assert viewer.post(invitations_url(world), {"link": True, "role": "viewer"}, format="json").status_code == 403
    assert viewer.get(invitations_url(world)).status_code == 403
    assert api_client(world.owner).post(invitations_url(world), {"link": True, "role": "owner"},
                                        format="json").status_code == 201


def test_it_voids_invitations_whose_inviter_can_no_longer_grant_them(world):
    Membership.objects.filter(user=world.member).update(role=Role.ADMIN)
    token = api_client(world.member).post(invitations_url(world), {"link": True, "role": "admin"},
                                          format="json").json()["token"]
    Membership.objects.filter(user=world.member).update(role=Role.MEMBER)  # demoted since
    response = api_client(world.outsider).post(f"/api/v1/invitations/{token}/accept")
    assert response.status_code == 409 and "can no longer grant" in response.json()["detail"]
    assert role_of(world, world.outsider) is None


def test_it_raises_but_never_lowers_a_role_through_an_invitation(world):
    token = invite_link(world, role="admin", max_uses=3)["token"]
    joined = api_client(world.viewer).post(f"/api/v1/invitations/{token}/accept").json()
    assert joined == {"team": {"slug": world.team.slug, "name": "Acme ML", "role": "admin"}, "joined": True}
    lower = invite_link(world, role="viewer")["token"]
    kept = api_client(world.member).post(f"/api/v1/invitations/{lower}/accept").json()
    assert kept["joined"] is False and kept["team"]["role"] == "member"


def test_it_hides_other_teams_invitations(world):
    token = invite_link(world)
    rival = api_client(world.outsider)
    assert rival.get(invitations_url(world)).status_code == 404
    assert rival.delete(f"{invitations_url(world)}/{token['id']}").status_code == 404
    # Revoking through one's own team with another team's invitation id finds nothing either.
    own = f"/api/v1/teams/{world.other_team.slug}/invitations/{token['id']}"
    assert rival.delete(own).status_code == 404
    assert Invitation.objects.get(id=token["id"]).state == "pending"


def test_it_answers_401_to_anonymous_team_management(world):
    anonymous = APIClient()
    slug = world.team.slug
    assert anonymous.get(f"/api/v1/teams/{slug}/invitations").status_code == 401
    assert anonymous.post(f"/api/v1/teams/{slug}/invitations", {"link": True}, format="json").status_code == 401
    assert anonymous.patch(f"/api/v1/teams/{slug}/members/vera", {"role": "admin"}, format="json").status_code == 401
    assert anonymous.post(f"/api/v1/teams/{slug}/transfer-ownership", {"username": "vera"},
                          format="json").status_code == 401
    assert anonymous.post(f"/api/v1/teams/{slug}/leave").status_code == 401
