"""The team settings page, the home page's invitations and the invite-link page."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from studio.accounts.models import Invitation, Membership, Role
from studio.accounts.services import _hash_token, invitation_create
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def role_of(world, user) -> str | None:
    membership = Membership.objects.filter(team=world.team, user=user).first()
    return membership.role if membership else None


def test_it_invites_by_username_from_the_team_page_and_the_invitee_accepts_at_home(world):
    nina = make_user("nina")
    owner = signed_in(world.owner)
    response = owner.post(f"/teams/{world.team.slug}/invitations/",
                          {"kind": "user", "username": "nina", "role": "viewer", "expires_in_days": "3"}, follow=True)
    assert "Invited nina as viewer" in response.content.decode()
    assert "nina" in response.content.decode() and "pending" in response.content.decode()
    client = signed_in(nina)
    home = client.get("/").content.decode()
    assert "olivia</b> invites you to <b>Acme ML</b>" in home
    invitation = Invitation.objects.get(invitee=nina)
    joined = client.post(f"/invitations/{invitation.id}/accept/")
    assert joined.url == f"/teams/{world.team.slug}/"
    assert role_of(world, nina) == "viewer"
    assert 'data-testid="pending-invitations"' not in client.get("/").content.decode()


def test_it_declines_from_the_home_page(world):
    nina = make_user("nina")
    invitation, _ = invitation_create(actor=world.owner, team=world.team, role="member", username="nina")
    client = signed_in(nina)
    assert client.post(f"/invitations/{invitation.id}/decline/").url == "/"
    assert role_of(world, nina) is None
    assert "Acme ML" not in client.get("/").content.decode()
    # Someone else's invitation is not found, to accept or decline.
    other, _ = invitation_create(actor=world.owner, team=world.team, role="member", username="oscar")
    assert client.post(f"/invitations/{other.id}/accept/").status_code == 404
    assert client.post(f"/invitations/{other.id}/decline/").status_code == 404


def test_it_shows_a_new_invite_link_once(world):
    owner = signed_in(world.owner)
    page = owner.post(f"/teams/{world.team.slug}/invitations/",
                      {"kind": "link", "role": "member", "max_uses": "5", "expires_in_days": "2"})
    html = page.content.decode()
    url = re.search(r'value="(http://testserver/invite/(inv_[\w-]+)/)" data-testid="new-invite-link"', html)
    assert url and "5 times" in html
    invitation = Invitation.objects.get(team=world.team, token_hash__isnull=False)
    assert (invitation.max_uses, invitation.role) == (5, "member")
    assert invitation.token_hash == _hash_token(url.group(2))
    assert url.group(2) not in owner.get(f"/teams/{world.team.slug}/").content.decode()  # only shown once


def test_it_reports_bad_invitation_input_on_the_page(world):
    owner = signed_in(world.owner)
    page = owner.post(f"/teams/{world.team.slug}/invitations/",
                      {"kind": "link", "role": "viewer", "max_uses": "lots"}, follow=True)
    assert page.status_code == 200 and "A link is used from 1 to" in page.content.decode()
    page = owner.post(f"/teams/{world.team.slug}/invitations/", {"kind": "user", "username": "ghost"}, follow=True)
    assert "No user named" in page.content.decode()
    assert not Invitation.objects.exists()


def test_it_joins_through_a_link_after_signing_up(world):
    _, secret = invitation_create(actor=world.owner, team=world.team, role="viewer", link=True)
    anonymous = Client()
    page = anonymous.get(f"/invite/{secret}/").content.decode()
    assert "Join Acme ML" in page and "Sign up" in page
    assert f"/signup/?next=/invite/{secret}/" in page
    signup = anonymous.post(f"/signup/?next=/invite/{secret}/",
                            {"username": "nina", "password": PASSWORD, "next": f"/invite/{secret}/"})
    assert signup.url == f"/invite/{secret}/"
    assert 'data-testid="join-team"' in anonymous.get(signup.url).content.decode()
    joined = anonymous.post(f"/invite/{secret}/")
    assert joined.url == f"/teams/{world.team.slug}/"
    assert Membership.objects.get(team=world.team, user__username="nina").role == "viewer"
    used = signed_in(world.outsider).get(f"/invite/{secret}/").content.decode()
    assert "used as many times as allowed" in used and "join-team" not in used


def test_it_never_redirects_a_new_account_off_site(db):
    response = Client().post("/signup/", {"username": "nina", "password": PASSWORD, "next": "https://evil.example/"})
    assert response.url == "/"


def test_it_refuses_anonymous_joins_and_unknown_links(world):
    _, secret = invitation_create(actor=world.owner, team=world.team, role="viewer", link=True)
    response = Client().post(f"/invite/{secret}/")
    assert response.status_code == 302 and response.url.startswith("/login/?next=")
    assert Client().get("/invite/inv_nope/").status_code == 404
    assert signed_in(world.outsider).post("/invite/inv_nope/").status_code == 404


def test_it_changes_roles_transfers_and_leaves_from_the_team_page(world):
    owner = signed_in(world.owner)
    page = owner.get(f"/teams/{world.team.slug}/").content.decode()
    assert 'data-testid="role-vera"' in page and 'data-testid="role-olivia"' not in page
    owner.post(f"/teams/{world.team.slug}/members/vera/role/", {"role": "member"})
    assert role_of(world, world.viewer) == "member"
    refused = owner.post(f"/teams/{world.team.slug}/leave/", follow=True).content.decode()
    assert "last owner" in refused and role_of(world, world.owner) == "owner"
    owner.post(f"/teams/{world.team.slug}/transfer/", {"username": "mark"})
    assert (role_of(world, world.member), role_of(world, world.owner)) == ("owner", "admin")
    assert owner.post(f"/teams/{world.team.slug}/leave/").url == "/"
    assert role_of(world, world.owner) is None


def test_it_offers_admins_only_the_roles_they_may_grant(world):
    Membership.objects.filter(user=world.member).update(role=Role.ADMIN)
    page = signed_in(world.member).get(f"/teams/{world.team.slug}/").content.decode()
    invite_form = page[page.index('data-testid="invite-user-form"'):page.index('data-testid="invite-link-form"')]
    assert 'value="admin"' in invite_form and 'value="owner"' not in invite_form
    assert 'data-testid="role-olivia"' not in page  # an owner's role is not theirs to change
    assert "Transfer ownership" not in page
    refused = signed_in(world.member).post(f"/teams/{world.team.slug}/members/olivia/role/", {"role": "viewer"},
                                           follow=True)
    assert "only an owner" in refused.content.decode() and role_of(world, world.owner) == "owner"


def test_it_shows_viewers_no_member_management(world):
    page = signed_in(world.viewer).get(f"/teams/{world.team.slug}/").content.decode()
    assert "Invite people" not in page and "data-testid=\"role-" not in page and "Remove" not in page
    assert 'data-testid="leave-team"' in page
    signed_in(world.viewer).post(f"/teams/{world.team.slug}/members/mark/role/", {"role": "viewer"})
    signed_in(world.viewer).post(f"/teams/{world.team.slug}/invitations/", {"kind": "link", "role": "viewer"})
    assert role_of(world, world.member) == "member" and not Invitation.objects.exists()


def test_it_sends_anonymous_visitors_to_sign_in(world):
    invitation, _ = invitation_create(actor=world.owner, team=world.team, role="viewer", username="oscar")
    anonymous = Client()
    for url in (f"/invitations/{invitation.id}/accept/", f"/invitations/{invitation.id}/decline/",
                f"/teams/{world.team.slug}/invitations/", f"/teams/{world.team.slug}/leave/",
                f"/teams/{world.team.slug}/transfer/", f"/teams/{world.team.slug}/members/vera/role/"):
        response = anonymous.post(url)
        assert response.status_code == 302 and response.url.startswith("/login/"), url
    assert Invitation.objects.get(id=invitation.id).state == "pending"
