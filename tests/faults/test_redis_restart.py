"""Redis (broker, channel layer, cache) killed during enqueue and during training, then started again empty.

While it is down every API route answers without a 500: reads work from the database, writes that enqueue work are
accepted (the job row is the truth; it stays pending) or refused with 503 + Retry-After, never half-done. After the
restart the reconciler re-sends what the broker lost, every accepted job finishes (or fails with a reason), and a
websocket opened afterwards replays the job's whole history, points stored during the outage included.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from websockets.sync.client import connect

from tests.faults.conftest import FINAL, count, ended, ok, sql, wait_for
from tests.faults.test_worker_kill import regression_rows

pytestmark = [pytest.mark.faults, pytest.mark.worker]

# Long enough (~3 s) to still be running when Redis goes away and comes back.
SLOW = {"predictor_type": "regressor", "epochs": 30, "mini_batch_size": 1, "early_stopping_patience": 1000}


def fill(path: str, ids: dict[str, str]) -> str:
    """An OpenAPI path with its parameters set to real objects (unknown ones to ids that do not exist: a 404)."""
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), path)


def websocket(stack, cookie: str, job_id: str):
    url = stack.base.replace("http://", "ws://") + f"/ws/training-jobs/{job_id}/"
    return connect(url, additional_headers={"Cookie": cookie}, origin=stack.base, proxy=None, open_timeout=10)


def history(socket, *, until_final: bool = False, quiet: float = 1.0, timeout: float = 90) -> list[dict]:
    """Events received until ``quiet`` seconds pass without one (and, with ``until_final``, a final status came:
    the replayed status comes first, so a job that ended meanwhile still replays its points after it)."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            events.append(json.loads(socket.recv(timeout=quiet)))
        except TimeoutError:
            if not until_final or any(e["type"] == "status" and e["status"] in FINAL for e in events):
                return events
    raise AssertionError(f"no final status within {timeout} s: {events[-3:]}")


def test_it_answers_503_not_500_while_redis_is_down_and_finishes_accepted_jobs(stack):
    db = stack.database
    stack.web()
    stack.beat()
    stack.worker("worker")
    me = stack.account()
    api, pid = stack.api(me.token), me.project
    base = f"/api/v1/projects/{pid}"
    dataset = ok(api.upload(pid, "houses", regression_rows(), target="y"), 201)["id"]
    job_body = {"algorithm": "linear-learner", "dataset": dataset, "target": "y", "hyperparameters": {"epochs": 3}}
    quick = ok(api.post(f"{base}/training-jobs", job_body), 201)["id"]
    done = wait_for(lambda: ended(api, f"{base}/training-jobs/{quick}"), timeout=60, what="a first job")
    assert done["status"] == "completed", (done, stack.logs())
    pipeline = ok(api.post(f"{base}/pipelines", {"name": "p", "definition": {"parameters": {}, "steps": [
        {"name": "train", "type": "training", "arguments": job_body}]}}), 201)["id"]
    schema = ok(api.get("/api/schema/?format=json"))
    cookie = stack.session_cookie(me.username)

    # During training: a slow job is running, a websocket watches it.
    slow = ok(api.post(f"{base}/training-jobs", {**job_body, "hyperparameters": SLOW}), 201)["id"]
    wait_for(lambda: count(db, "SELECT count(*) FROM training_metricpoint WHERE job_id = %s", slow) > 0,
             timeout=60, what="the slow job to train")
    with websocket(stack, cookie, slow) as socket:
        assert any(e["type"] == "metric" for e in history(socket))
        stack.redis.stop()

        # During enqueue: everything that queues work, and every GET route of the API.
        accepted: dict[str, str] = {}  # id -> kind
        statuses: dict[str, int] = {}
        for i in range(2):
            reply = api.post(f"{base}/training-jobs", {**job_body, "name": f"during-outage-{i}"})
            statuses[f"training job {i}"] = reply.status
            if reply.status == 201:
                accepted[reply.json()["id"]] = "training"
        reply = api.post(f"{base}/tuning-jobs", {
            "algorithm": "linear-learner", "dataset": dataset, "target": "y", "strategy": "random",
            "objective": {"metric": "validation:rmse", "goal": "minimize"}, "max_jobs": 2, "max_parallel_jobs": 2,
            "ranges": {"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.2}},
            "static_hyperparameters": {"epochs": 3}})
        statuses["tuning job"] = reply.status
        if reply.status == 201:
            accepted[reply.json()["id"]] = "tuning"
        reply = api.post(f"{base}/pipelines/{pipeline}/executions", {})
        statuses["pipeline execution"] = reply.status
        if reply.status == 201:
            accepted[reply.json()["id"]] = "execution"
        reply = api.upload(pid, "during-outage", regression_rows(200), target="y")
        statuses["upload"] = reply.status
        reply = api.post(f"{base}/endpoints", {"name": "outage", "type": "realtime", "variants": [
            {"name": "a", "model": done["model"], "min_instances": 1, "max_instances": 1}]})
        statuses["endpoint"] = reply.status
        ids = {"project_id": pid, "dataset_id": dataset, "job_id": slow, "model_id": done["model"],
               "pipeline_id": pipeline, "slug": me.team, "version": "1", "token": "x"}
        for path, operations in schema["paths"].items():
            if "get" in operations:
                statuses[f"GET {path}"] = api.get(fill(path, ids)).status
        for page in ("/", f"/projects/{pid}/training/", f"/projects/{pid}/training/{slow}/",
                     f"/projects/{pid}/data/", "/ops/"):
            statuses[f"page {page}"] = api.get(page).status
        refused = {what: status for what, status in statuses.items() if status >= 500 and status != 503}
        assert not refused, (refused, stack.log("web").read_text()[-5000:])
        # The database answers, so reads and accepted writes are the rule; a 503 is for what could not be queued.
        assert all(statuses[f"training job {i}"] in (201, 503) for i in range(2)), statuses
        unavailable = [what for what, status in statuses.items() if status == 503]
        for what in unavailable:
            assert "GET" not in what or "/ops/" in what, (what, statuses)

        # The old socket loses its channel layer; Redis comes back empty (no persistence: queued messages gone).
        time.sleep(2)
        stack.redis.start()

    # A new websocket after the restart replays the whole history, points stored during the outage included,
    # then streams live until the job ends.
    with websocket(stack, cookie, slow) as socket:
        events = history(socket, until_final=True)
    assert [e["status"] for e in events if e["type"] == "status"][-1] in FINAL, events[-3:]
    points = [(e["name"], e["step"]) for e in events if e["type"] == "metric"]
    stored = sql(db, "SELECT name, step FROM training_metricpoint WHERE job_id = %s", slow)
    assert len(points) == len(set(points)) and set(points) == set(stored) and len(stored) > 30, (points, stored)

    # Every accepted job ends: completed, or failed with a reason; pending ones were re-sent by the reconciler.
    paths = {"training": "training-jobs", "tuning": "tuning-jobs", "execution": f"pipelines/{pipeline}/executions"}
    for object_id, kind in {slow: "training", **accepted}.items():
        body = wait_for(lambda k=kind, o=object_id: ended(api, f"{base}/{paths[k]}/{o}"), timeout=120,
                        what=f"{kind} {object_id} to end")
        assert body["status"] == "completed" or (body["status"] == "failed" and body["failure_reason"]), body
    assert count(db, "SELECT count(*) FROM training_trainingjob WHERE status IN ('pending', 'running')") == 0
    names = [name for (name,) in sql(db, "SELECT name FROM training_trainingjob WHERE name LIKE 'during-outage-%%'")]
    assert sorted(names) == sorted(f"during-outage-{i}" for i in range(2) if statuses[f"training job {i}"] == 201)
    # After the restart the API is back to normal for writes too.
    ok(api.post(f"{base}/training-jobs", {**job_body, "name": "after-restart"}), 201)
