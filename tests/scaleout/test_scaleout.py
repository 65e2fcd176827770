"""Scale-out proof: one studio served by 2 web processes and 2 Celery workers, each process with its own local
folder, sharing only PostgreSQL, Redis and S3-compatible storage (moto), behind a round-robin proxy.

What a second host could break if anything lived in one process's memory or folder is crossed on purpose: the
dataset is uploaded through one web process and previewed through the other; the session logged in on one
opens a websocket on the other, which streams metrics published by whichever worker runs the job; jobs spread
over both workers; the endpoint agent (a fifth process) serves the model from S3 and both web processes' gateways
route invocations to it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import psycopg
import pytest

from studio.training.models import TrainingJob
from tests import processes
from tests.conftest import PASSWORD, classification_csv
from tests.scaleout.cluster import (
    cluster_env,
    migrate,
    postgres_database,
    redis_database,
    s3_keys,
    s3_server,
    wait_for_log,
)
from tests.scaleout.proxy import PIN_HEADER, RoundRobinProxy

pytestmark = pytest.mark.worker

WORKERS = ("worker-a", "worker-b")
JOBS = 4  # two rounds over two workers: each must take at least one
TIMEOUT = 90


@dataclass
class Cluster:
    proxy: RoundRobinProxy
    database_url: str
    storage: dict[str, str]
    data_dirs: dict[str, Path]
    logs: list[Path]

    def tails(self) -> str:
        """The end of every process's log, for failure messages."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in self.logs if p.exists())


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_database())
        redis_url = stack.enter_context(redis_database(tmp_path))
        storage = stack.enter_context(s3_server(tmp_path))
        shared = cluster_env(database_url=database_url, redis_url=redis_url, storage=storage)
        migrate(shared, tmp_path / "migrate", tmp_path / "migrate.log")
        data_dirs = {name: tmp_path / name for name in ("web-0", "web-1", *WORKERS, "agent")}

        @contextmanager
        def own_folder(name: str) -> Iterator[None]:
            # tests.processes reads its environment from process_env(): give each process the shared services
            # and a data folder of its own, as if it ran on its own host.
            env = {**shared, "STUDIO_DATA_DIR": str(data_dirs[name])}
            with mock.patch.object(processes, "process_env", lambda: env):
                yield

        # Workers and the agent start in the background while the web processes come up.
        workers = []
        for name in WORKERS:
            with own_folder(name):
                workers.append(stack.enter_context(processes.celery_worker(tmp_path / f"{name}.log",
                                                                           name=f"scaleout-{name}")))
        with own_folder("agent"):
            stack.enter_context(processes.endpoint_agent(tmp_path / "agent.log",
                                                         name=f"scaleout-agent-{tmp_path.name}"))
        backends = []
        for name in ("web-0", "web-1"):
            with own_folder(name):
                backends.append(stack.enter_context(processes.web_server(tmp_path / f"{name}.log")))
        for name, worker in zip(WORKERS, workers, strict=True):
            wait_for_log(tmp_path / f"{name}.log", " ready.", worker)
        proxy = stack.enter_context(RoundRobinProxy(backends))
        logs = [tmp_path / f"{name}.log" for name in (*data_dirs, "moto")]
        yield Cluster(proxy, database_url, storage, data_dirs, logs)


async def _json(response: aiohttp.ClientResponse, status: int, cluster: Cluster) -> Any:
    body = await response.text()
    assert response.status == status, f"{response.method} {response.url}: {response.status} {body}\n{cluster.tails()}"
    return await response.json()


async def _until(http: aiohttp.ClientSession, url: str, auth: dict, done: set[str], cluster: Cluster) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        body = await _json(await http.get(url, headers=auth), 200, cluster)  # round-robin: both processes answer
        if body["status"] in done:
            return body
        await asyncio.sleep(0.25)
    raise AssertionError(f"{url} still {body['status']} after {TIMEOUT}s\n{cluster.tails()}")


async def _log_in(http: aiohttp.ClientSession, backend: int) -> None:
    """A browser session through the login page (what websockets authenticate with)."""
    pin = {PIN_HEADER: str(backend)}
    page = await (await http.get("/login/", headers=pin)).text()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = await http.post("/login/", headers=pin, allow_redirects=False,
                               data={"username": "ada", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status == 302, await response.text()


async def _watch(http: aiohttp.ClientSession, cluster: Cluster, job_id: str, backend: int) -> list[dict]:
    """Every event of a job's websocket, opened on ``backend``, until the job ends. ``since`` in the future
    leaves nothing to replay but the current status, so any metric received was published live."""
    events = []
    url = f"/ws/training-jobs/{job_id}/?since={time.time() + 86400}"
    async with http.ws_connect(url, origin=cluster.proxy.url, headers={PIN_HEADER: str(backend)}) as ws:
        async with asyncio.timeout(TIMEOUT):
            async for message in ws:
                events.append(message.json())
                if len(events) == 1 and events[0].get("status") in {"completed", "failed", "stopped"}:
                    raise AssertionError(f"the job ended before the watch began, nothing to see live: {events}")
                if len(events) > 1 and events[-1].get("status") in {"completed", "failed", "stopped"}:
                    break
    return events


async def test_it_serves_one_studio_from_two_web_processes_two_workers_and_shared_services(cluster):
    proxy = cluster.proxy
    async with aiohttp.ClientSession(proxy.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await _json(await http.post("/api/v1/auth/signup", json={"username": "ada", "password": PASSWORD}), 201,
                    cluster)
        token = (await _json(await http.post("/api/v1/auth/token", json={"username": "ada", "password": PASSWORD}),
                             200, cluster))["token"]
        auth = {"Authorization": f"Bearer {token}"}
        team = await _json(await http.post("/api/v1/teams", json={"name": "Scale"}, headers=auth), 201, cluster)
        project = await _json(await http.post("/api/v1/projects", json={"team": team["slug"], "name": "Out"},
                                              headers=auth), 201, cluster)
        base = f"/api/v1/projects/{project['id']}"

        # Upload through one web process; the other reads it back from S3.
        form = aiohttp.FormData()
        form.add_field("file", classification_csv(n=3000), filename="people.csv", content_type="text/csv")
        form.add_field("name", "people")
        form.add_field("target", "churned")
        upload = await http.post(f"{base}/datasets", data=form, headers=auth)
        dataset = await _json(upload, 201, cluster)
        uploaded_on = int(upload.headers[PIN_HEADER])
        other = 1 - uploaded_on
        preview = await _json(await http.get(f"{base}/datasets/{dataset['id']}/preview?rows=5",
                                             headers={**auth, PIN_HEADER: str(other)}), 200, cluster)
        assert len(preview["rows"]) == 5

        # Jobs created through both web processes (round-robin), queued once in the shared Redis.
        await _log_in(http, uploaded_on)
        jobs = [await _json(await http.post(f"{base}/training-jobs", headers=auth, json={
            "algorithm": "linear-learner", "dataset": dataset["id"], "target": "churned",
            "hyperparameters": {"epochs": 15}, "validation_fraction": 0.2,
        }), 201, cluster) for _ in range(JOBS)]
        # The last job waits behind the first two, so its whole run is watched live, from the other process.
        events = await _watch(http, cluster, jobs[-1]["id"], other)
        finished = [await _until(http, f"{base}/training-jobs/{job['id']}", auth, {"completed", "failed"}, cluster)
                    for job in jobs]
        assert [job["status"] for job in finished] == ["completed"] * JOBS, (finished, cluster.tails())

        live = events[1:]  # the first event is the status replayed on connect
        metrics = [event for event in live if event["type"] == "metric"]
        assert {"train:loss", "validation:accuracy"} <= {event["name"] for event in metrics}, events
        assert {event["step"] for event in metrics if event["name"] == "train:loss"} == set(range(1, 16))
        assert [event["status"] for event in live if event["type"] == "status"][-1] == "completed"
        assert proxy.served_by(other, kind="ws"), proxy.served
        # Behind the proxy the origin check still holds: the backend sees the client's Host and Origin.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"/ws/training-jobs/{jobs[0]['id']}/", origin="http://evil.example")
        assert refused.value.status == 403

        # Each worker took jobs: the job rows name the worker that claimed them.
        with psycopg.connect(cluster.database_url) as db:
            ran_on = dict(db.execute(f"SELECT id::text, worker FROM {TrainingJob._meta.db_table}").fetchall())
        assert {worker.split("@")[0].rsplit("-", 1)[0] for worker in ran_on.values()} == {
            f"scaleout-{name}" for name in WORKERS}, ran_on

        # Deploy: the agent fetches the model from S3; both gateways route to its instance through Redis.
        model_id = finished[0]["model"]
        endpoint = await _json(await http.post(f"{base}/endpoints", headers=auth, json={
            "name": "people", "type": "realtime",
            "variants": [{"name": "primary", "model": model_id, "weight": 1.0, "min_instances": 1,
                          "max_instances": 1}],
        }), 201, cluster)
        served = await _until(http, f"{base}/endpoints/{endpoint['id']}", auth, {"in_service", "failed"}, cluster)
        assert served["status"] == "in_service", (served, cluster.tails())
        answers = []
        for _ in range(6):
            invocation = await http.post(f"/api/v1/endpoints/{endpoint['id']}/invocations", headers=auth,
                                         json={"instances": [[2.0, 1.5], [-1.0, -2.0]]})
            answers.append(await _json(invocation, 200, cluster))
        for backend in (0, 1):
            assert len(proxy.served_by(backend, path_contains="/invocations")) == 3, proxy.served
        assert all(answer == answers[0] for answer in answers), answers
        assert [p["label"] for p in answers[0]["predictions"]] == ["yes", "no"]
        # Each gateway counts in Redis; the agent's rollup sees the invocations of both web processes.
        deadline = time.monotonic() + TIMEOUT
        while True:
            counted = (await _json(await http.get(f"{base}/endpoints/{endpoint['id']}", headers=auth), 200,
                                   cluster))["metrics"]
            if counted["invocations"] >= len(answers) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert counted["invocations"] == len(answers) and counted["errors"] == 0, (counted, cluster.tails())

    # Every object went to the shared store, none to a process's own folder.
    keys = s3_keys(cluster.storage, f"projects/{project['id']}/")
    assert any(key.endswith(".csv") for key in keys) and any(key.endswith(".npz") for key in keys), keys
    for name, folder in cluster.data_dirs.items():
        stored_locally = [p for p in (folder / "media").rglob("*") if p.is_file()]
        assert stored_locally == [], (name, stored_locally)
