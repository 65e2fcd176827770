"""The tenancy matrix: every route, every method, three callers (anonymous, outsider, viewer), generated, not listed.

Routes come from four places: the URLconf (each pattern, with the methods its view has handlers for; function
views are tried with GET and POST), the OpenAPI schema (each operation must be one the URL walk checks), the
websocket routes (studio/routing.py) and the invocation gateway, which answers before Django. For each:
- anonymous: API 401, page a redirect to the login page (or 404), websocket closed 4401;
- outsider (a member of another team): 404, websocket closed 4404;
- viewer: 403 or 404 for every write (POST, PUT, PATCH, DELETE), and the database exactly as it was;
and, so that none of those 404s is vacuous, the owner (a site admin for the ops dashboard) reaches every object
route: the objects are real, only scoping hides them.

URL kwargs are filled from ``victims`` (tests/core/test_tenancy.py): a kwarg it cannot fill fails the walk, so a
new route is noticed until someone gives it a victim. Public routes are an explicit, commented allowlist.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.conf import settings
from django.db import connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from studio.accounts.models import User
from studio.endpoints import gateway as gateway_module
from studio.endpoints.services import endpoint_routes_publish
from studio.routing import websocket_urlpatterns
from tests.conftest import api_client

WRITES = ("post", "put", "patch", "delete")
KWARG = re.compile(r"<(?:(\w+):)?(\w+)>")

# Routes anyone may call without signing in, each with why. Everything else must refuse an anonymous caller.
PUBLIC = {
    "api-signup": "creates an account (SIGNUP_ENABLED)",
    "api-token": "trades a username and password for a token",
    "api-schema": "the API's description, no data",
    "api-docs": "Swagger UI over the schema",
    "api-invitation": "an invite link's secret is the capability: whoever holds it may see which team it is for",
    "invite-accept": "the page of an invite link (its secret is the capability); it asks to sign in to accept",
    "home": "the landing page (sign in / sign up)",
    "health": "load balancer probe",
    "favicon": "redirect to a static file",
    "signup": "the sign-up page",
    "login": "the sign-in page",
    "logout": "signing out is harmless when signed out",
}

# Writes a viewer may make on a route naming one of their team's objects: the viewer's own business. Not sent
# (they would take the viewer out of the team mid-walk); listed so the walk says why it skips them.
VIEWER_MAY_WRITE = {
    "api-team-leave": "any member may leave a team, viewers too",
    "team-leave": "the page form of leaving a team",
}

# Bodies for writes whose scope is in the body, not the URL: without one they would only test validation.
BODIES: dict[str, Callable[[dict], dict]] = {
    "api-projects": lambda v: {"team": v["slug"], "name": "intruder project"},
}

# Object routes whose GET answers 404 even to the owner with these victims, each with why.
OWNER_404 = {
    "api-dataset-download": "the victim dataset row has no stored file",
    "dataset-download": "the victim dataset row has no stored file",
    "api-async-invocation-output": "the victim invocation is still queued: no output yet",
    "training-job-nearest-words": "only word2vec models have nearest words",
}

# What a refused request may change: the session (a page's flash message) and when a token was last used.
NOT_STATE = {"sessions.Session"}
NOT_STATE_FIELDS = {"last_used_at"}


# --- the routes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    pattern: str  # as in the URLconf, without the leading slash
    name: str
    methods: tuple[str, ...]
    probed: bool  # a function view: GET and POST are guesses, and a 405 only says it does not take that method

    @property
    def api(self) -> bool:
        return self.pattern.startswith("api/")

    @property
    def kwargs(self) -> list[str]:
        return [m.group(2) for m in KWARG.finditer(self.pattern)]

    @property
    def admin_only(self) -> bool:
        # The ops dashboard: site admins only, a 404 for everyone else (as for an object they cannot see).
        return self.pattern.startswith(("ops/", "api/v1/ops/"))

    def url(self, values: dict) -> str:
        return fill(self.pattern, values, self.name)


def fill(pattern: str, values: dict, name: str) -> str:
    """The concrete URL of ``pattern``; a kwarg ``values`` cannot fill fails the test, naming the route."""

    def sub(match: re.Match) -> str:
        kwarg = match.group(2)
        if kwarg not in values:
            pytest.fail(f"the tenancy matrix cannot fill <{kwarg}> in {pattern} ({name}): give it a victim in "
                        "tests/core/test_tenancy.py victims()")
        return str(values[kwarg])

    return "/" + KWARG.sub(sub, pattern)


def _view_methods(callback: Any) -> tuple[tuple[str, ...], bool]:
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if cls is None:
        return ("get", "post"), True
    return tuple(m for m in cls.http_method_names if m not in ("options", "head", "trace") and hasattr(cls, m)), False


def _walk(resolver: URLResolver, prefix: str = "") -> Iterator[Route]:
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django's admin: staff only, guarded by Django itself
            yield from _walk(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            methods, probed = _view_methods(pattern.callback)
            assert pattern.name, f"route {prefix}{pattern.pattern} has no name: the matrix reports routes by name"
            yield Route(prefix + str(pattern.pattern), pattern.name, methods, probed)


@cache
def url_routes() -> tuple[Route, ...]:
    return tuple(_walk(get_resolver()))


@cache
def openapi_operations() -> tuple[tuple[str, str], ...]:
    """(method, path template) of every operation in the served schema, generated in-process."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return tuple((method, path) for path, item in schema["paths"].items() for method in item
                 if method in ("get", "post", "put", "patch", "delete"))


def openapi_url(path: str, values: dict) -> str:
    return fill(re.sub(r"{(\w+)}", r"<\1>", path).lstrip("/"), values, path)


# --- calling ---------------------------------------------------------------------------------------------------


@dataclass
class Caller:
    """One role's clients: a Bearer token for the API (as scripts call it), a session for pages."""

    role: str
    api: APIClient
    page: Client

    def call(self, route: Route, method: str, url: str, body: dict | None = None):
        if route.api:
            return self.api.generic(method.upper(), url, "" if body is None else json.dumps(body),
                                    content_type="application/json")
        return getattr(self.page, method)(url, body or {})


def caller(role: str, user: User | None) -> Caller:
    # A server error is one more wrong answer to list with the others, not an exception that ends the walk.
    page = Client(raise_request_exception=False)
    if user is not None:
        page.force_login(user)
    api = api_client(user)
    api.raise_request_exception = False
    return Caller(role, api, page)


def _login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse(settings.LOGIN_URL))


def _describe(method: str, url: str, route: Route, response) -> str:
    body = response.content[:160].decode(errors="replace").replace("\n", " ")
    return f"{method.upper()} {url} ({route.name}) -> {response.status_code} {body}"


# --- the walks -------------------------------------------------------------------------------------------------


def test_it_walks_every_openapi_operation(world, victims):
    """Each operation of the schema is a route and method of the URL walk, so the walk checks it."""
    walked = {(r.name, m) for r in url_routes() for m in r.methods}
    missing = []
    for method, path in openapi_operations():
        url = openapi_url(path, victims)
        match = resolve(url)
        if (match.url_name, method) not in walked:
            missing.append(f"{method.upper()} {path} (resolves to {match.url_name})")
    assert not missing, "OpenAPI operations the URL walk does not check:\n" + "\n".join(missing)
    assert len(openapi_operations()) >= 100


def test_it_describes_every_api_route_in_the_openapi_schema(world, victims):
    """API.md: the served schema describes all of the API."""
    described = {(resolve(openapi_url(path, victims)).url_name, method) for method, path in openapi_operations()}
    undocumented = [f"{m.upper()} /{r.pattern} ({r.name})" for r in url_routes() if r.api and r.name not in PUBLIC
                    for m in r.methods if (r.name, m) not in described]
    assert not undocumented, "API routes missing from /api/schema/:\n" + "\n".join(undocumented)


def test_it_fails_a_route_it_cannot_fill():
    with pytest.raises(pytest.fail.Exception, match="give it a victim"):
        fill("api/v1/widgets/<uuid:widget_id>", {}, "api-widget")


def test_it_refuses_an_anonymous_caller_everywhere(world, victims):
    anonymous = caller("anonymous", None)
    failures, checked = [], 0
    for route in url_routes():
        url = route.url(victims)
        for method in route.methods:
            response = anonymous.call(route, method, url)
            checked += 1
            if route.name in PUBLIC:
                ok = response.status_code < 500  # open to all, and still no server error on an empty request
            elif route.api:
                ok = response.status_code == 401
            else:
                ok = _login_redirect(response) or response.status_code == 404 or (
                    route.probed and response.status_code == 405)
            if not ok:
                failures.append(_describe(method, url, route, response))
    assert not failures, f"{len(failures)} of {checked} anonymous calls not refused:\n" + "\n".join(failures)
    assert checked > 250


def test_it_answers_404_to_an_outsider_everywhere(world, victims):
    outsider = caller("outsider", world.outsider)
    failures, checked = [], 0
    for route in url_routes():
        if not (route.kwargs or route.admin_only):
            continue  # the caller's own things (tokens, teams, notifications...); BODIES are checked below
        url = route.url(victims)
        for method in route.methods:
            response = outsider.call(route, method, url)
            checked += 1
            ok = response.status_code == 404 or (route.probed and response.status_code == 405)
            if not ok:
                failures.append(_describe(method, url, route, response))
    assert not failures, f"{len(failures)} of {checked} outsider calls not 404:\n" + "\n".join(failures)
    assert checked > 250


def test_it_refuses_every_write_to_a_viewer(world, victims):
    """403/404 from the API; a page may instead answer its form with a message and a redirect (or render a read
    view that ignores POST), so for every write the database must also be exactly as it was."""
    viewer = caller("viewer", world.viewer)
    failures, checked = [], 0
    before = database_state()
    for route in url_routes():
        if not (route.kwargs or route.admin_only or route.name in BODIES) or route.name in VIEWER_MAY_WRITE:
            continue
        url = route.url(victims)
        for method in route.methods:
            if method not in WRITES:
                continue
            body = BODIES[route.name](victims) if route.name in BODIES else None
            response = viewer.call(route, method, url, body)
            checked += 1
            after = database_state()
            changed = sorted(k for k in after if after[k] != before.get(k))
            refused = response.status_code in (403, 404) or (route.probed and response.status_code == 405)
            if changed or not (refused or (not route.api and response.status_code < 500)):
                failures.append(_describe(method, url, route, response) + (f" CHANGED {changed}" if changed else ""))
            before = after
    assert not failures, f"{len(failures)} of {checked} viewer writes not refused:\n" + "\n".join(failures)
    assert checked > 100


def test_it_lets_the_owner_reach_every_object_the_others_cannot(world, victims):
    """The victims are real: the outsider's 404s above come from scoping, not from ids that exist nowhere. (The
    ops routes' reader is a site admin, who is no member of the team.)"""
    owner = caller("owner", world.owner)
    site_admin = caller("site admin", User.objects.create_user(username="root", is_staff=True))
    failures, checked = [], 0
    for route in url_routes():
        if not route.kwargs or route.name in PUBLIC or route.name in OWNER_404 or "get" not in route.methods:
            continue
        url = route.url(victims)
        response = (site_admin if route.admin_only else owner).call(route, "get", url)
        checked += 1
        if response.status_code == 404 or response.status_code >= 500:
            failures.append(_describe("get", url, route, response))
    assert not failures, f"{len(failures)} of {checked} owner reads failed:\n" + "\n".join(failures)
    assert checked > 50


def test_it_answers_a_reference_to_another_teams_object_as_if_it_did_not_exist(world, victims):
    """A body naming another team's object gets the very answer a made-up name gets: no existence oracle."""
    outsider = caller("outsider", world.outsider)
    for name, body in BODIES.items():
        route = next(r for r in url_routes() if r.name == name)
        real = outsider.call(route, "post", route.url(victims), body(victims))
        made_up = outsider.call(route, "post", route.url(victims), body({**victims, "slug": "no-such-team"}))
        assert real.status_code in (400, 404), _describe("post", route.url(victims), route, real)
        assert real.status_code == made_up.status_code
        assert real.content.replace(victims["slug"].encode(), b"?") == made_up.content.replace(b"no-such-team", b"?")


def test_it_notices_a_write_in_the_database_fingerprint(world, victims):
    """The viewer walk's "nothing changed" is only worth something if a change shows."""
    before = database_state()
    response = api_client(world.member).post(f"/api/v1/projects/{world.project.id}/comments", {
        "target_type": "training_job", "target_id": str(victims["job_id"]), "body": "seen"}, format="json")
    assert response.status_code == 201, response.content
    after = database_state()
    assert "social.Comment" in {k for k in after if after[k] != before[k]}


def database_state() -> dict[str, int]:
    """A fingerprint of every table's rows, to tell whether a request changed anything."""
    state = {}
    for model in apps.get_models():
        if model._meta.proxy or model._meta.label in NOT_STATE:
            continue
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in NOT_STATE_FIELDS]
        state[model._meta.label] = hash(repr(list(model.objects.order_by("pk").values_list(*fields))))
    return state


# --- websockets and invocations --------------------------------------------------------------------------------


def _session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def _ws_close_code(path: str, user: User | None) -> int | None:
    """None when the socket was accepted, else the close code the server chose."""
    from studio.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(_session_cookie)(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if connected:
        await communicator.disconnect()
        return None
    return code


def websocket_routes() -> list[tuple[str, str]]:
    """(pattern, consumer name) of every websocket route."""
    return [(str(p.pattern), p.callback.consumer_class.__name__) for p in websocket_urlpatterns]


@pytest.mark.django_db(transaction=True)
async def test_it_guards_every_websocket_route(world, victims):
    failures, checked = [], 0
    try:
        for pattern, consumer in websocket_routes():
            path = fill(pattern, victims, consumer)
            own = "<" not in pattern and not pattern.startswith("ws/ops/")  # the caller's own stream
            expected = {
                "anonymous": (None, 4401),
                "outsider": (world.outsider, None if own else 4404),
                "viewer": (world.viewer, 4404 if pattern.startswith("ws/ops/") else None),
            }
            for role, (user, code) in expected.items():
                got = await _ws_close_code(path, user)
                checked += 1
                if got != code:
                    failures.append(f"{role} on {path} ({consumer}): closed with {got}, expected {code}")
    finally:
        await sync_to_async(connections.close_all)()
    assert not failures, "\n".join(failures)
    assert checked == 3 * len(websocket_urlpatterns) >= 24


async def _invoke(path: str, headers: dict[str, str], body: bytes = b'{"instances": [[1, 2, 3]]}'
                  ) -> tuple[int, bytes]:
    """POST through the real ASGI application, which hands invocations to the gateway before Django."""
    from studio.asgi import application

    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"host", b"testserver")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the answer is sent (Django listens)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "headers": raw,
             "query_string": b"", "http_version": "1.1", "scheme": "http", "server": ("testserver", 80),
             "client": ("127.0.0.1", 1234), "root_path": "", "asgi": {"version": "3.0"}}
    await application(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.django_db(transaction=True)
async def test_it_guards_invocations(world, victims):
    """Real-time invocations (the gateway) and async ones (Django): anonymous 401, outsider 404, viewer 403."""
    from studio.asgi import application

    # The gateway looks credentials up in the loop's default executor: one thread of ours, whose database
    # connection is closed at the end (PostgreSQL refuses to drop a test database with sessions left on it).
    loop = asyncio.get_running_loop()
    lookups = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(lookups)
    endpoint_id = victims["endpoint_id"]
    await sync_to_async(endpoint_routes_publish)(endpoint_id=endpoint_id)
    tokens = {role: await sync_to_async(_token)(user) for role, user in
              (("outsider", world.outsider), ("viewer", world.viewer))}
    paths = [f"/api/v1/endpoints/{endpoint_id}/invocations", f"/api/v1/endpoints/{endpoint_id}/async-invocations"]
    assert gateway_module.is_invocation({"type": "http", "path": paths[0]})
    failures = []
    try:
        for path in paths:
            for role, headers, expected in (
                ("anonymous", {}, (401,)),
                ("anonymous with a made-up invoke key", {"X-Api-Key": "sk_" + "x" * 40}, (401,)),
                ("outsider", {"Authorization": f"Bearer {tokens['outsider']}"}, (404,)),
                ("viewer", {"Authorization": f"Bearer {tokens['viewer']}"}, (403, 404)),
            ):
                status, body = await _invoke(path, headers)
                if status not in expected:
                    failures.append(f"{role}: POST {path} -> {status} {body[:160]!r}, expected {expected}")
    finally:
        await application.gateway.aclose()
        routes = gateway_module.aioredis.Redis.from_url(settings.REDIS_URL)
        await routes.delete(gateway_module.ROUTES_KEY.format(endpoint_id))  # Redis may be shared (CI)
        await routes.aclose()
        await loop.run_in_executor(lookups, connections.close_all)
        await sync_to_async(connections.close_all)()
    assert not failures, "\n".join(failures)


def _token(user: User) -> str:
    from studio.accounts.services import api_token_create

    return api_token_create(user=user, name="matrix")[1]
