"""Authentication hardening: failed sign-in and sign-up rate limits (429 with Retry-After), secrets stored only as
hashes, session fixation and logout, CSRF on cookie-authenticated writes.

Rate-limit counters live in Redis and outlive a test, so each test signs in from addresses and as usernames of its
own (the counters of a test process are namespaced, see studio/accounts/ratelimit.py).
"""

from __future__ import annotations

import itertools
import uuid

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from studio.accounts import ratelimit
from studio.accounts import services as account_services
from studio.endpoints.models import Endpoint
from tests.conftest import PASSWORD, api_client, make_user

pytestmark = pytest.mark.django_db

_addresses = itertools.count(1)


def fresh_address() -> str:
    """A documentation-range address no other test uses."""
    n = next(_addresses)
    return f"198.51.{100 + n // 250}.{n % 250 + 1}"


@pytest.fixture
def person() -> str:
    username = f"ada-{uuid.uuid4().hex[:8]}"
    make_user(username)
    return username


def login_page(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def token_api(client: APIClient, username: str, password: str):
    return client.post("/api/v1/auth/token", {"username": username, "password": password}, format="json")


# --- failed sign-ins --------------------------------------------------------------------------------------------


def test_it_locks_the_login_page_after_n_failures_per_user_and_address(person, settings):
    limit = settings.STUDIO_LOGIN_MAX_FAILURES
    address = fresh_address()
    client = Client(REMOTE_ADDR=address)
    for _ in range(limit):
        assert login_page(client, person, "wrong-password").status_code == 200  # the form again, with an error
    locked = login_page(client, person, PASSWORD)  # even the right password: guessing must not go on
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session
    # Another address, or another username from this address, is not affected.
    assert login_page(Client(REMOTE_ADDR=fresh_address()), person, PASSWORD).status_code == 302
    other = f"bo-{uuid.uuid4().hex[:8]}"
    make_user(other)
    assert login_page(client, other, PASSWORD).status_code == 302


def test_it_locks_the_token_api_with_429_and_retry_after(person, settings):
    limit = settings.STUDIO_LOGIN_MAX_FAILURES
    client = APIClient(REMOTE_ADDR=fresh_address())
    for _ in range(limit):
        assert token_api(client, person, "wrong-password").status_code == 401
    locked = token_api(client, person, PASSWORD)
    assert locked.status_code == 429, locked.content
    assert int(locked["Retry-After"]) > 0 and "Too many failed sign-ins" in locked.json()["detail"]
    assert token_api(APIClient(REMOTE_ADDR=fresh_address()), person, PASSWORD).status_code == 200


def test_the_page_and_the_api_share_one_counter(person, settings):
    address = fresh_address()
    for i in range(settings.STUDIO_LOGIN_MAX_FAILURES):
        if i % 2:
            login_page(Client(REMOTE_ADDR=address), person, "nope-nope")
        else:
            token_api(APIClient(REMOTE_ADDR=address), person, "nope-nope")
    assert token_api(APIClient(REMOTE_ADDR=address), person, PASSWORD).status_code == 429
    assert login_page(Client(REMOTE_ADDR=address), person, PASSWORD).status_code == 429


def test_usernames_are_counted_case_insensitively(person, settings):
    address = fresh_address()
    for i in range(settings.STUDIO_LOGIN_MAX_FAILURES):
        token_api(APIClient(REMOTE_ADDR=address), person.upper() if i % 2 else person, "nope-nope")
    assert token_api(APIClient(REMOTE_ADDR=address), person, PASSWORD).status_code == 429


def test_a_success_clears_the_count(person, settings):
    client = APIClient(REMOTE_ADDR=fresh_address())
    for _ in range(settings.STUDIO_LOGIN_MAX_FAILURES - 1):
        token_api(client, person, "wrong-password")
    assert token_api(client, person, PASSWORD).status_code == 200
    for _ in range(settings.STUDIO_LOGIN_MAX_FAILURES - 1):
        token_api(client, person, "wrong-password")
    assert token_api(client, person, PASSWORD).status_code == 200


def test_the_admin_login_is_limited_too(person, settings):
    user = apps.get_model(django_settings.AUTH_USER_MODEL).objects.get(username=person)
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client(REMOTE_ADDR=fresh_address())
    for _ in range(settings.STUDIO_LOGIN_MAX_FAILURES):
        client.post("/admin/login/", {"username": person, "password": "wrong-password"})
    response = client.post("/admin/login/", {"username": person, "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session  # the form again: not signed in


def test_unknown_usernames_are_counted_like_known_ones(settings):
    """No difference an attacker could use to tell which usernames exist."""
    client = APIClient(REMOTE_ADDR=fresh_address())
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    statuses = [token_api(client, ghost, "x-password").status_code
                for _ in range(settings.STUDIO_LOGIN_MAX_FAILURES + 1)]
    assert statuses == [401] * settings.STUDIO_LOGIN_MAX_FAILURES + [429]


def test_behind_the_tls_proxy_the_last_forwarded_hop_is_the_client(person, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client_hop = fresh_address()
    for i in range(settings.STUDIO_LOGIN_MAX_FAILURES):
        # The attacker controls what comes before the proxy's own entry, not the entry itself.
        token_api(APIClient(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}, {client_hop}"), person,
                  "wrong-password")
    spoofed = APIClient(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"203.0.113.9, {client_hop}")
    assert token_api(spoofed, person, PASSWORD).status_code == 429
    elsewhere = APIClient(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=fresh_address())
    assert token_api(elsewhere, person, PASSWORD).status_code == 200


def test_without_a_trusted_proxy_forwarded_headers_are_ignored(person, settings):
    settings.SECURE_PROXY_SSL_HEADER = None
    address = fresh_address()
    for i in range(settings.STUDIO_LOGIN_MAX_FAILURES):
        token_api(APIClient(REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=f"10.1.0.{i}"), person, "wrong-password")
    assert token_api(APIClient(REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR="10.9.9.9"), person,
                     PASSWORD).status_code == 429


def test_limits_fail_open_when_the_cache_is_down(person, monkeypatch):
    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise ConnectionError("redis is down")

            return fail

    monkeypatch.setattr(ratelimit, "cache", Down())
    client = APIClient(REMOTE_ADDR=fresh_address())
    assert token_api(client, person, "wrong-password").status_code == 401
    assert token_api(client, person, PASSWORD).status_code == 200
    assert client.post("/api/v1/auth/signup", {"username": f"u{uuid.uuid4().hex[:8]}", "password": PASSWORD},
                       format="json").status_code == 201


# --- sign-ups ------------------------------------------------------------------------------------------------------


def test_it_limits_sign_ups_per_address(settings):
    settings.STUDIO_SIGNUP_MAX_PER_HOUR = 3
    address = fresh_address()
    api = APIClient(REMOTE_ADDR=address)
    made = [api.post("/api/v1/auth/signup", {"username": f"s{uuid.uuid4().hex[:8]}", "password": PASSWORD},
                     format="json").status_code for _ in range(3)]
    assert made == [201, 201, 201]
    refused = api.post("/api/v1/auth/signup", {"username": "one-too-many", "password": PASSWORD}, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many sign-ups" in refused.json()["detail"]
    page = Client(REMOTE_ADDR=address).post("/signup/", {"username": "page-too-many", "password": PASSWORD})
    assert page.status_code == 429 and b"Too many sign-ups" in page.content
    assert not apps.get_model(django_settings.AUTH_USER_MODEL).objects.filter(
        username__in=["one-too-many", "page-too-many"]).exists()
    assert APIClient(REMOTE_ADDR=fresh_address()).post(
        "/api/v1/auth/signup", {"username": f"s{uuid.uuid4().hex[:8]}", "password": PASSWORD},
        format="json").status_code == 201


def test_the_schema_documents_the_429s():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert "429" in paths["/api/v1/auth/token"]["post"]["responses"]
    assert "429" in paths["/api/v1/auth/signup"]["post"]["responses"]


# --- secrets at rest ---------------------------------------------------------------------------------------------


def _database_text() -> str:
    """Every cell of every table, as text: where a plaintext secret would show up if anything stored it."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # table names from introspection
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_invoke_keys_api_tokens_and_invitation_links_are_stored_hashed(world):
    client = api_client(world.member)
    endpoint = Endpoint.objects.create(project=world.project, name="ep", type="realtime", status="in_service")
    created = client.post(f"/api/v1/projects/{world.project.id}/endpoints/{endpoint.id}/keys", {"name": "ci"},
                          format="json")
    assert created.status_code == 201, created.content
    invoke_secret = created.json()["key"]
    token_secret = client.post("/api/v1/tokens", {"name": "script"}, format="json").json()["token"]
    _, link_secret = account_services.invitation_create(actor=world.owner, team=world.team, role="member", link=True)
    listed = client.get(f"/api/v1/projects/{world.project.id}/endpoints/{endpoint.id}/keys").content.decode()
    assert invoke_secret[12:] not in listed  # listings show the prefix only

    text = _database_text()
    for secret in (invoke_secret, token_secret, link_secret):
        assert len(secret) > 40 and secret[12:] not in text, "a secret is stored in plaintext"
    # The stored hash is not itself a credential.
    from studio.endpoints.models import InvokeKey

    stored = InvokeKey.objects.get(endpoint=endpoint).key_hash
    gateway = api_client()
    response = gateway.post(f"/api/v1/endpoints/{endpoint.id}/async-invocations", {"instances": [[1]]},
                            format="json", HTTP_X_API_KEY=stored)
    assert response.status_code == 401


# --- sessions and CSRF -------------------------------------------------------------------------------------------


def test_signing_in_gives_a_new_session_and_signing_out_ends_it(person):
    client = Client(REMOTE_ADDR=fresh_address())
    session = client.session
    session["planted"] = "by an attacker"
    session.save()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key
    planted = session.session_key
    assert login_page(client, person, PASSWORD).status_code == 302
    signed_in = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    assert signed_in != planted  # session fixation: the key an attacker knew is worthless
    assert client.get("/").status_code == 200
    client.post("/logout/")
    replay = Client()
    replay.cookies[django_settings.SESSION_COOKIE_NAME] = signed_in
    assert replay.get("/api/v1/me").status_code in (401, 403)


def test_cookie_authenticated_writes_need_the_csrf_token(world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.member)
    refused = client.post("/api/v1/teams", {"name": "No Token"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    client.get("/")  # the page sets the CSRF cookie, as a browser would get it
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    assert client.post("/api/v1/teams", {"name": "With Token"}, format="json",
                       HTTP_X_CSRFTOKEN=token).status_code == 201
    # A form post from another site carries the cookie but not the token.
    page = Client(enforce_csrf_checks=True)
    page.force_login(world.member)
    assert page.post("/teams/new/", {"name": "Forged"}).status_code == 403
    assert Client(enforce_csrf_checks=True).post("/login/", {"username": "x", "password": "y"}).status_code == 403


def test_bearer_token_calls_need_no_csrf_token_and_ignore_cookies(world):
    """A token is not sent by browsers on their own, so token calls are not forgeable; a cookie without the CSRF
    token does not turn a token-less request into an authenticated one."""
    client = api_client(world.member)
    client.enforce_csrf_checks = True
    assert client.post("/api/v1/teams", {"name": "Scripted"}, format="json").status_code == 201
