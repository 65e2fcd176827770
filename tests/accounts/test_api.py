from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from studio.accounts.models import ApiToken, Membership, Project, User
from tests.conftest import PASSWORD, api_client

pytestmark = pytest.mark.django_db


def test_it_signs_up_and_makes_the_first_user_site_admin():
    client = APIClient()
    first = client.post("/api/v1/auth/signup", {"username": "ada", "password": PASSWORD}, format="json")
    second = client.post("/api/v1/auth/signup", {"username": "bob", "password": PASSWORD}, format="json")
    assert first.status_code == 201 and set(first.json()) == {"id", "username"}
    assert second.status_code == 201
    assert User.objects.get(username="ada").is_superuser
    assert not User.objects.get(username="bob").is_superuser


def test_it_rejects_bad_signups_with_named_fields():
    client = APIClient()
    weak = client.post("/api/v1/auth/signup", {"username": "ada", "password": "123"}, format="json")
    assert weak.status_code == 400
    assert "password" in weak.json()["errors"]
    client.post("/api/v1/auth/signup", {"username": "ada", "password": PASSWORD}, format="json")
    dup = client.post("/api/v1/auth/signup", {"username": "ADA", "password": PASSWORD}, format="json")
    assert dup.status_code == 409 and "taken" in dup.json()["detail"]
    missing = client.post("/api/v1/auth/signup", {}, format="json")
    assert missing.status_code == 400 and {"username", "password"} <= set(missing.json()["errors"])


def test_it_can_disable_signup(settings):
    settings.STUDIO_ALLOW_SIGNUP = False
    response = APIClient().post("/api/v1/auth/signup", {"username": "ada", "password": PASSWORD}, format="json")
    assert response.status_code == 403


def test_it_issues_hashed_tokens_that_authenticate(world):
    client = APIClient()
    bad = client.post("/api/v1/auth/token", {"username": "olivia", "password": "nope"}, format="json")
    assert bad.status_code == 401
    response = client.post("/api/v1/auth/token", {"username": "olivia", "password": PASSWORD}, format="json")
    token = response.json()["token"]
    assert not ApiToken.objects.filter(key_hash=token).exists()  # only the hash is stored
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    me = client.get("/api/v1/me").json()
    assert me["username"] == "olivia"
    assert me["teams"] == [{"slug": world.team.slug, "name": "Acme ML", "role": "owner"}]


def test_it_answers_401_without_or_with_a_bad_token(world):
    assert APIClient().get("/api/v1/me").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer stu_nope")
    response = client.get("/api/v1/me")
    assert response.status_code == 401 and "Invalid" in response.json()["detail"]


def test_it_revokes_tokens(world):
    client = api_client(world.owner)
    created = client.post("/api/v1/tokens", {"name": "ci"}, format="json").json()
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    assert other.get("/api/v1/me").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    assert other.get("/api/v1/me").status_code == 401
    # Another user's token id is simply not found.
    assert api_client(world.outsider).delete(f"/api/v1/tokens/{created['id']}").status_code == 404


def test_it_creates_teams_with_the_creator_as_owner(world):
    response = api_client(world.member).post("/api/v1/teams", {"name": "Vision"}, format="json")
    assert response.status_code == 201
    assert response.json() == {**response.json(), "name": "Vision", "role": "owner"}
    assert api_client(world.member).post("/api/v1/teams", {"name": ""}, format="json").status_code == 400


def test_it_manages_members_by_role(world):
    owner, viewer = api_client(world.owner), api_client(world.viewer)
    slug = world.team.slug
    User.objects.create_user(username="newbie", password=PASSWORD)
    assert viewer.post(f"/api/v1/teams/{slug}/members", {"username": "newbie", "role": "member"},
                       format="json").status_code == 403
    added = owner.post(f"/api/v1/teams/{slug}/members", {"username": "newbie", "role": "viewer"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "viewer"
    unknown = owner.post(f"/api/v1/teams/{slug}/members", {"username": "ghost", "role": "viewer"}, format="json")
    assert unknown.status_code == 400 and "ghost" in unknown.json()["detail"]
    bad_role = owner.post(f"/api/v1/teams/{slug}/members", {"username": "newbie", "role": "god"}, format="json")
    assert bad_role.status_code == 400 and "role" in bad_role.json()["errors"]
    listed = viewer.get(f"/api/v1/teams/{slug}/members").json()
    assert {m["username"] for m in listed["results"]} == {"olivia", "mark", "vera", "newbie"}
    assert owner.delete(f"/api/v1/teams/{slug}/members/newbie").status_code == 204
    # The last owner cannot leave their team ownerless.
    last = owner.delete(f"/api/v1/teams/{slug}/members/olivia")
    assert last.status_code == 409
    assert Membership.objects.filter(team=world.team, user=world.owner).exists()


def test_it_only_lets_owners_grant_ownership(world):
    Membership.objects.filter(user=world.member).update(role="admin")
    admin = api_client(world.member)
    response = admin.post(f"/api/v1/teams/{world.team.slug}/members", {"username": "vera", "role": "owner"},
                          format="json")
    assert response.status_code == 403


def test_it_creates_lists_updates_and_deletes_projects(world):
    member, viewer = api_client(world.member), api_client(world.viewer)
    created = member.post("/api/v1/projects", {"team": world.team.slug, "name": "Fraud"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert set(body) >= {"id", "team", "name", "slug"} and body["team"] == world.team.slug
    assert member.post("/api/v1/projects", {"team": world.team.slug, "name": "fraud"},
                       format="json").status_code == 409
    assert viewer.post("/api/v1/projects", {"team": world.team.slug, "name": "X"}, format="json").status_code == 403
    foreign = member.post("/api/v1/projects", {"team": world.other_team.slug, "name": "X"}, format="json")
    assert foreign.status_code == 400 and "team" in foreign.json()["errors"]
    names = {p["name"] for p in viewer.get("/api/v1/projects").json()["results"]}
    assert names == {"Churn", "Fraud"}
    pid = body["id"]
    assert viewer.patch(f"/api/v1/projects/{pid}", {"name": "Y"}, format="json").status_code == 403
    patched = member.patch(f"/api/v1/projects/{pid}", {"description": "card fraud"}, format="json")
    assert patched.json()["description"] == "card fraud"
    assert member.delete(f"/api/v1/projects/{pid}").status_code == 403  # deleting needs admin
    assert api_client(world.owner).delete(f"/api/v1/projects/{pid}").status_code == 204
    assert not Project.objects.filter(id=pid).exists()


def test_it_paginates_lists(world):
    body = api_client(world.owner).get("/api/v1/projects").json()
    assert set(body) == {"count", "next", "previous", "results"}


def test_it_serves_the_openapi_schema_and_docs(world):
    client = api_client(world.owner)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ["/api/v1/auth/signup", "/api/v1/auth/token", "/api/v1/me", "/api/v1/teams",
                 "/api/v1/teams/{slug}/members", "/api/v1/projects", "/api/v1/projects/{project_id}",
                 "/api/v1/algorithms", "/api/v1/teams/{slug}/invitations",
                 "/api/v1/teams/{slug}/invitations/{invitation_id}", "/api/v1/invitations/{token}/accept",
                 "/api/v1/me/invitations", "/api/v1/me/invitations/{invitation_id}/accept",
                 "/api/v1/teams/{slug}/transfer-ownership", "/api/v1/teams/{slug}/leave"]:
        assert path in paths, path
    assert "patch" in paths["/api/v1/teams/{slug}/members/{username}"]
    client.force_authenticate(world.owner)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
