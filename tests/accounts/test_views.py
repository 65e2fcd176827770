from __future__ import annotations

import pytest
from django.test import Client

from studio.accounts.models import ApiToken, Membership, Project, Team, User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_it_signs_up_through_the_page_and_signs_in():
    client = Client()
    page = client.get("/signup/")
    assert b"first account becomes its site admin" in page.content
    response = client.post("/signup/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302
    home = client.get("/")
    assert b"not in a team yet" in home.content
    client.post("/logout/")
    assert client.get("/").status_code == 302
    assert client.post("/login/", {"username": "ada", "password": PASSWORD}).status_code == 302


def test_it_shows_signup_errors_in_the_form():
    response = Client().post("/signup/", {"username": "ada", "password": "1"})
    assert response.status_code == 400
    assert b"too short" in response.content


def test_it_creates_a_team_and_a_project_from_the_pages(world):
    client = signed_in(world.member)
    response = client.post("/teams/new/", {"name": "Vision"})
    team = Team.objects.get(name="Vision")
    assert response.url == f"/teams/{team.slug}/"
    response = client.post(f"/teams/{team.slug}/projects/", {"name": "Cats", "description": "dogs too"})
    project = Project.objects.get(name="Cats")
    assert response.url == f"/projects/{project.id}/"
    overview = client.get(response.url)
    assert overview.status_code == 200 and b"Start with data" in overview.content


def test_it_hides_actions_from_viewers(world):
    team_page = signed_in(world.viewer).get(f"/teams/{world.team.slug}/")
    assert team_page.status_code == 200
    assert b"Invite people" not in team_page.content and b"Create project" not in team_page.content
    overview = signed_in(world.viewer).get(f"/projects/{world.project.id}/")
    assert overview.status_code == 200 and b"Train a model" not in overview.content
    owner_page = signed_in(world.owner).get(f"/teams/{world.team.slug}/")
    assert b"Invite people" in owner_page.content


def test_it_refuses_viewer_writes_from_pages(world):
    client = signed_in(world.viewer)
    client.post(f"/teams/{world.team.slug}/projects/", {"name": "Nope"})
    assert not Project.objects.filter(name="Nope").exists()
    client.post(f"/teams/{world.team.slug}/members/", {"username": "oscar", "role": "member"})
    assert not Membership.objects.filter(team=world.team, user=world.outsider).exists()


def test_it_adds_members_from_the_team_page(world):
    client = signed_in(world.owner)
    client.post(f"/teams/{world.team.slug}/members/", {"username": "oscar", "role": "viewer"})
    assert Membership.objects.get(team=world.team, user=world.outsider).role == "viewer"


def test_it_creates_and_revokes_tokens_on_the_settings_page(world):
    client = signed_in(world.owner)
    page = client.post("/settings/tokens/", {"name": "laptop"})
    token = ApiToken.objects.get(user=world.owner, name="laptop")
    assert b"stu_" in page.content and token.prefix.encode() in page.content
    client.post(f"/settings/tokens/{token.id}/revoke/")
    assert not ApiToken.objects.filter(id=token.id).exists()


def test_it_gives_outsiders_404_on_team_and_project_pages(world):
    client = signed_in(world.outsider)
    assert client.get(f"/teams/{world.team.slug}/").status_code == 404
    assert client.get(f"/projects/{world.project.id}/").status_code == 404
    assert client.get(f"/projects/{world.project.id}/activity/").status_code == 404


def test_it_lets_site_admins_into_django_admin(world):
    world.owner.is_staff = world.owner.is_superuser = True
    world.owner.save()
    assert signed_in(world.owner).get("/admin/").status_code == 200
    assert signed_in(world.member).get("/admin/").status_code == 302
