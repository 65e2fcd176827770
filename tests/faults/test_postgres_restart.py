"""PostgreSQL crashed and started again under load (a private server: the machine's is never touched).

Clients keep creating projects, datasets and training jobs while the server goes down for two seconds (an
immediate shutdown: no checkpoint, crash recovery from the WAL at start). Every request answered 201 has its row
afterwards; the others were told 503 (retry), never 500. The web server and the Celery worker started before the
crash serve on without a restart, with persistent connections configured as in production
(DATABASE_CONN_MAX_AGE=60): under ASGI each request runs in a thread of its own with its own connection, and
Celery's Django fixup closes connections around every task, so no dead connection outlives the outage (which is
why CONN_HEALTH_CHECKS is not needed; the test would catch a request or task failing once the server is back).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest

from tests.faults.conftest import Api, ended, ok, sql, wait_for
from tests.faults.test_worker_kill import regression_rows
from tests.processes import ServerUnavailable, private_postgres

pytestmark = [pytest.mark.faults, pytest.mark.worker]

CLIENTS = 4


@pytest.fixture
def crashable_postgres():
    try:
        with private_postgres() as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(f"cannot start a private PostgreSQL here: {exc}")


class Load:
    """Client threads creating rows through the API until stopped; they keep what the server answered."""

    def __init__(self, api: Api, project: str, dataset: str) -> None:
        self.api, self.project, self.dataset = api, project, dataset
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[int | str] = Counter()
        self.after: Counter[int | str] = Counter()  # statuses of requests sent once the server was back
        self.recovered_at = float("inf")
        self.created: dict[str, list[str]] = {"project": [], "dataset": [], "training job": []}
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(CLIENTS)]

    def _one(self, n: int, i: int) -> None:
        unique = f"load-{n}-{i}-{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        # A training job now and then (each is work for the worker afterwards), projects and datasets otherwise.
        kind = "training job" if n == 0 and i % 4 == 3 else ("project", "dataset")[i % 2]
        if kind == "project":
            reply = self.api.post("/api/v1/projects", {"team": self.team, "name": unique})
        elif kind == "dataset":
            reply = self.api.upload(self.project, unique, b"a,b\n1,2\n3,4\n")
        else:
            reply = self.api.post(f"/api/v1/projects/{self.project}/training-jobs", {
                "name": unique, "algorithm": "linear-learner", "dataset": self.dataset, "target": "y",
                "hyperparameters": {"epochs": 1}})
        with self.lock:
            self.statuses[reply.status] += 1
            if started > self.recovered_at:
                self.after[reply.status] += 1
            if reply.status == 201:
                self.created[kind].append(reply.json()["id"])

    def _run(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self._one(n, i)
            except OSError as exc:  # the web server itself must stay up: count it, the test fails on it
                with self.lock:
                    self.statuses[f"{type(exc).__name__}"] += 1
            i += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def test_it_loses_no_committed_row_when_postgres_restarts_under_load(stack_factory, crashable_postgres):
    stack = stack_factory(server=crashable_postgres.url(), template=None, DATABASE_CONN_MAX_AGE="60")
    db = stack.database
    stack.web()
    stack.beat()  # its reconcilers re-send jobs whose run task gave up while the database was away
    worker = stack.worker("worker")
    me = stack.account()
    api, base = stack.api(me.token), f"/api/v1/projects/{me.project}"
    dataset = ok(api.upload(me.project, "houses", regression_rows(400), target="y"), 201)["id"]
    # A first job: the worker has connected to the database before the crash.
    first = ok(api.post(f"{base}/training-jobs", {"algorithm": "linear-learner", "dataset": dataset, "target": "y",
                                                   "hyperparameters": {"epochs": 2}}), 201)["id"]
    assert wait_for(lambda: ended(api, f"{base}/training-jobs/{first}"), timeout=60, what="a first job")["model"]

    load = Load(api, me.project, dataset)
    load.team = me.team
    with load:
        time.sleep(1.5)
        crashable_postgres.stop("immediate")  # a crash: in-flight transactions die, recovery replays the WAL
        time.sleep(2)
        crashable_postgres.start()
        load.recovered_at = time.monotonic()
        time.sleep(1)
        worker_log_at = stack.log("worker").stat().st_size
        time.sleep(1)

    # 0 committed rows lost: every 201 has its row.
    tables = {"project": "accounts_project", "dataset": "datasets_dataset", "training job": "training_trainingjob"}
    for kind, ids in load.created.items():
        found = {str(i) for (i,) in sql(db, f"SELECT id FROM {tables[kind]} WHERE id::text = ANY(%s)", ids)}
        assert found == set(ids), (kind, set(ids) - found)
    assert set(load.statuses) <= {201, 503}, (load.statuses, stack.log("web").read_text()[-5000:])
    assert load.statuses[201] > 0 and load.statuses[503] > 0, load.statuses
    print(f"load across the crash: {dict(load.statuses)}, after recovery {dict(load.after)}, "
          f"created {[len(v) for v in load.created.values()]}")
    # Once the server accepts connections again, no request fails: dead persistent connections are replaced
    # before use (CONN_HEALTH_CHECKS), not discovered by a client's request.
    assert set(load.after) == {201}, (load.after, stack.log("web").read_text()[-5000:])

    # Web and worker recover without a restart: every request succeeds again, new work runs on the same worker.
    for _ in range(3 * CLIENTS):  # more requests than the server has threads holding persistent connections
        ok(api.get(f"{base}/datasets"), 200)
    ok(api.get("/api/v1/me"), 200)
    after = ok(api.post(f"{base}/training-jobs", {"algorithm": "linear-learner", "dataset": dataset, "target": "y",
                                                   "name": "after-the-crash", "hyperparameters": {"epochs": 2}}),
               201)["id"]
    done = wait_for(lambda: ended(api, f"{base}/training-jobs/{after}"), timeout=120, what="a job after the crash")
    assert done["status"] == "completed", (done, stack.logs())
    assert worker.poll() is None
    # ...and it met no dead connection on its way: no task failed on the database once it was back.
    with open(stack.log("worker"), "rb") as log:
        log.seek(worker_log_at)
        since_recovery = log.read().decode(errors="replace")
    assert "OperationalError" not in since_recovery and "InterfaceError" not in since_recovery, since_recovery[-4000:]
    # Every training job accepted during the load ends once the database is back: completed, or failed with the
    # reason (a job claimed just before the crash fails on it); one left pending would be a lost job.
    stuck = "SELECT name, status, worker, attempts, enqueued_at, heartbeat_at FROM training_trainingjob WHERE " \
            "status IN ('pending', 'running')"
    try:
        wait_for(lambda: not sql(db, stuck), timeout=120, what="every accepted job to end")
    except AssertionError:
        raise AssertionError(f"jobs still active: {sql(db, stuck)}\n{stack.logs()}") from None
    assert sql(db, "SELECT name, status FROM training_trainingjob WHERE status != 'completed' AND "
                   "(status != 'failed' OR failure_reason = '')") == []
