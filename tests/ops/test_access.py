"""Only site admins reach the dashboard: its pages, API and websocket are a 404 for everyone else (401 or the
sign-in page for anonymous callers), whatever their role in whichever team."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.urls import URLPattern, URLResolver, get_resolver

from studio.ops import metrics, services
from studio.ops.models import FailedTask
from tests.conftest import api_client, make_user
from tests.live.test_consumers import receive_all, websocket
from tests.ops.conftest import make_endpoint, signed_in

pytestmark = pytest.mark.django_db


def ops_routes():
    """(route, name) of every ops page and API route, from the URLconf: a route added later is checked too."""
    def walk(resolver, prefix=""):
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and (pattern.name or "").startswith(("ops-", "api-ops-")):
                yield prefix + str(pattern.pattern), pattern.name

    return list(walk(get_resolver()))


@pytest.fixture
def urls(world):
    endpoint = make_endpoint(world.project)
    task = FailedTask.objects.create(task_name="studio.training.tasks.training_job_run_task", exception="boom")
    values = {"endpoint_id": endpoint.id, "failed_task_id": task.id}
    out = []
    for route, name in ops_routes():
        url = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)
        out.append((url, name))
    return out


def test_it_has_pages_api_routes_and_actions(urls):
    names = {name for _, name in urls}
    assert {"ops-dashboard", "ops-job-cancel", "ops-worker-drain", "ops-endpoint-scale", "ops-failed-task",
            "api-ops-workers", "api-ops-jobs", "api-ops-job-cancel", "api-ops-endpoint-scale",
            "api-ops-failed-task", "api-ops-storage", "api-ops-users", "api-ops-teams"} <= names


@pytest.mark.parametrize("who", ["owner", "member", "viewer", "outsider"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_it_answers_404_to_everyone_but_site_admins(world, urls, who, method):
    user = getattr(world, who)
    api, page = api_client(user), signed_in(user)
    for url, name in urls:
        client = api if url.startswith("/api/") else page
        response = getattr(client, method)(url)
        assert response.status_code == 404, f"{method.upper()} {url} ({name}) gave {response.status_code} to {who}"


def test_it_answers_404_to_a_superuser_flag_removed(world, urls):
    # is_active matters too: a deactivated admin's old session must not keep the dashboard.
    user = make_user("former")
    user.is_superuser = True
    user.is_active = False
    user.save()
    assert api_client(user).get("/api/v1/ops/workers").status_code in (401, 404)


def test_it_asks_anonymous_callers_to_sign_in(urls):
    api, page = api_client(None), signed_in(None)
    for url, name in urls:
        if url.startswith("/api/"):
            assert api.get(url).status_code == 401, name
            assert api.post(url).status_code == 401, name
        else:
            response = page.get(url)
            assert response.status_code == 302 and "/login/" in response["Location"], name


def test_it_lets_staff_and_superusers_in(world, urls, admin, fake_workers):
    root = make_user("root")
    root.is_superuser = True
    root.save()
    for user in (admin, root):
        page, api = signed_in(user), api_client(user)
        for url, name in urls:
            client = api if url.startswith("/api/") else page
            expected = 405 if name.endswith(("cancel", "drain", "resume", "scale")) else 200
            assert client.get(url).status_code == expected, (user.username, name)


def test_it_shows_the_admin_link_to_site_admins_only(world, admin, fake_workers):
    assert b'data-testid="nav-admin"' in signed_in(admin).get("/").content
    assert b'data-testid="nav-admin"' not in signed_in(world.owner).get("/").content


# --- the websocket --------------------------------------------------------------------------------------


@pytest.fixture(autouse=False)
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["owner", "outsider", None])
async def test_it_closes_the_stream_for_everyone_but_site_admins(world, close_thread_connections, who):
    client = await websocket("/ws/ops/", getattr(world, who) if who else None)
    connected, code = await client.connect()
    assert not connected and code == (4404 if who else 4401)


@pytest.mark.django_db(transaction=True)
async def test_it_streams_stored_then_live_samples_to_site_admins(world, close_thread_connections, monkeypatch):
    monkeypatch.setattr(metrics, "queue_depths", lambda: {"training": 1, "inference": 0, "default": 2})
    admin = await sync_to_async(make_user)("ada")
    admin.is_superuser = True
    await sync_to_async(admin.save)()
    first = await sync_to_async(services.metrics_sample)()
    await sync_to_async(metrics.redis_client().delete)(metrics.LOCK_KEY)  # the next interval
    client = await websocket("/ws/ops/", admin)
    connected, _ = await client.connect()
    assert connected
    history = await receive_all(client)
    assert [e["ts"] for e in history] == [first["ts"]]
    second = await sync_to_async(services.metrics_sample)(now=first["ts"] + 5)
    live = await receive_all(client)
    assert [(e["type"], e["ts"], e["queues"]["default"]) for e in live] == [("sample", second["ts"], 2)]
    await sync_to_async(services.failed_task_record)(task_name="t.boom", task_id="1", exception="ValueError: x")
    failed = await receive_all(client)
    assert [(e["type"], e["task_name"]) for e in failed] == [("failed_task", "t.boom")]
    await client.disconnect()
