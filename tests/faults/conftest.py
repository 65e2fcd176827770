"""Fault tests run a whole studio as separate processes (uvicorn, Celery workers, beat, the endpoint agent) on a
database and a Redis of their own, and talk to it over HTTP only, as a client would.

Each test gets a fresh PostgreSQL database cloned from one migrated once per session (a template: ~0.2 s instead
of a 5 s migrate) on the machine's PostgreSQL, or on a private server when there is none, and a private
redis-server it may kill and restart at will. Nothing here touches the database or Redis of the rest of the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.processes import (
    RedisServer,
    ServerUnavailable,
    celery_beat,
    celery_worker,
    create_database,
    drop_database,
    endpoint_agent,
    migrate,
    private_postgres,
    web_server_with,
)

MACHINE_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
PASSWORD = "correct-horse-battery-staple"
# Short reconciler periods and heartbeat timeouts, so a dead worker or a lost message is noticed in seconds.
FAST_RECONCILE = {
    "STUDIO_RECONCILE_SECONDS": "1",
    "STUDIO_TUNING_RECONCILE_SECONDS": "1",
    "STUDIO_HEARTBEAT_SECONDS": "1",
    "STUDIO_HEARTBEAT_TIMEOUT": "8",
    "STUDIO_PENDING_REQUEUE_SECONDS": "4",
    "STUDIO_PIPELINE_STEP_STALE_SECONDS": "8",
    "STUDIO_PIPELINE_POLL_SECONDS": "1",
    "STUDIO_OPS_SAMPLE_SECONDS": "60",
}


# --- a minimal HTTP client (stdlib only: what reaches the server is exactly what we send) ----------------------


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class Api:
    base: str
    token: str = ""
    timeout: float = 60

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                content_type: str = "application/json", base: str | None = None) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": content_type} if data is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request((base or self.base) + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read(), dict(exc.headers))

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def upload(self, project_id: str, name: str, content: bytes, *, filename: str = "", target: str = "",
               base: str | None = None) -> Reply:
        fields = {"name": name, **({"target": target} if target else {})}
        body, content_type = multipart(fields, {"file": (filename or f"{name}.csv", content)})
        return self.request("POST", f"/api/v1/projects/{project_id}/datasets", raw=body, content_type=content_type,
                            base=base)


def ok(reply: Reply, *expected: int) -> Any:
    assert reply.status in (expected or (200, 201, 202)), (reply.status, reply.body[:2000])
    return reply.json()


FINAL = ("completed", "failed", "stopped")


def ended(api: Api, path: str) -> dict | None:
    """The object at ``path`` once its status is final, else None (for wait_for)."""
    body = ok(api.get(path), 200)
    return body if body["status"] in FINAL else None


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


# --- databases --------------------------------------------------------------------------------------------


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def faults_postgres() -> Iterator[str]:
    """URL of a PostgreSQL server the fault tests may create databases on: the one DATABASE_URL names, else the
    machine's (127.0.0.1:5432), else a private one started here."""
    given = os.environ.get("DATABASE_URL", "")
    if given.startswith(("postgres://", "postgresql://")) and _reachable(given):
        yield given
        return
    if _reachable(MACHINE_POSTGRES):
        yield MACHINE_POSTGRES
        return
    try:
        with private_postgres() as server:
            yield server.url()
    except ServerUnavailable as exc:
        pytest.skip(f"no PostgreSQL for the fault tests: {exc}")


@pytest.fixture(scope="session")
def faults_template(faults_postgres, tmp_path_factory) -> Iterator[str]:
    """A database migrated once; each test clones it."""
    name = f"faults_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_database(faults_postgres, name)
    folder = tmp_path_factory.mktemp("faults-template")
    try:
        migrate({"DATABASE_URL": url, "STUDIO_DATA_DIR": str(folder)}, folder / "migrate.log")
        yield name
    finally:
        drop_database(url)


def sql(database_url: str, query: str, *params: Any) -> list[tuple]:
    """Rows straight from the database: what was really committed, whatever the API says."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        return conn.execute(query, params).fetchall()


def count(database_url: str, query: str, *params: Any) -> int:
    return int(sql(database_url, query, *params)[0][0])


# --- a running studio -------------------------------------------------------------------------------------


@dataclass
class Account:
    username: str
    token: str
    team: str
    project: str


@dataclass
class Stack:
    """One studio: its folder, database, private Redis and the processes started so far (stopped at exit)."""

    folder: Path
    database: str
    redis: RedisServer
    extra_env: dict[str, str] = field(default_factory=dict)
    exits: ExitStack = field(default_factory=ExitStack)
    base: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database,
            "REDIS_URL": self.redis.url,
            "CELERY_BROKER_URL": self.redis.url,
            "STUDIO_DATA_DIR": str(self.folder / "data"),
            "SECRET_KEY": "faults-" + "x" * 50,
            "STUDIO_TESTING": "1",  # fast password hashing for the accounts made here
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            **FAST_RECONCILE,
            **self.extra_env,
        }

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def web(self, name: str = "web", **env: str) -> str:
        url = self.exits.enter_context(web_server_with(self.log(name), {**self.env, **env}))
        self.base = self.base or url
        return url

    def worker(self, name: str, **env: str) -> subprocess.Popen:
        return self.exits.enter_context(celery_worker(self.log(name), name=name, env={**self.env, **env}))

    def beat(self) -> None:
        self.exits.enter_context(celery_beat(self.log("beat"), self.env))

    def agent(self, **env: str) -> None:
        self.exits.enter_context(endpoint_agent(self.log("agent"), name=f"faults-{uuid.uuid4().hex[:6]}",
                                                env={**self.env, **env}))

    def api(self, token: str = "") -> Api:
        return Api(self.base, token)

    def account(self, username: str = "olivia") -> Account:
        """Sign up, get a token, make a team and a project, all through the API."""
        anonymous = self.api()
        ok(anonymous.post("/api/v1/auth/signup", {"username": username, "password": PASSWORD}), 201)
        token = ok(anonymous.post("/api/v1/auth/token", {"username": username, "password": PASSWORD}), 200)["token"]
        api = self.api(token)
        team = ok(api.post("/api/v1/teams", {"name": f"{username} team"}), 201)["slug"]
        project = ok(api.post("/api/v1/projects", {"team": team, "name": "faults"}), 201)["id"]
        return Account(username, token, team, project)

    def session_cookie(self, username: str) -> str:
        """A logged-in browser session (for websockets, which authenticate by cookie)."""
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(self.base + "/login/", timeout=30).read()
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        form = urllib.parse.urlencode({"username": username, "password": PASSWORD,
                                       "csrfmiddlewaretoken": csrf}).encode()
        request = urllib.request.Request(self.base + "/login/", data=form, headers={"Referer": self.base + "/login/"})
        opener.open(request, timeout=30).read()
        return "; ".join(f"{c.name}={c.value}" for c in jar)

    def logs(self) -> str:
        """The tail of every process log, for assertion messages."""
        out = []
        for path in sorted(self.folder.glob("*.log")):
            out.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)


@pytest.fixture
def stack_factory(faults_postgres, faults_template, tmp_path) -> Iterator[Callable[..., Stack]]:
    """Build a Stack: a database cloned from the template on ``server`` (default: the session's PostgreSQL)."""
    made: list[tuple[Stack, str]] = []

    def make(*, server: str | None = None, template: str | None = faults_template, **extra_env: str) -> Stack:
        folder = tmp_path / f"stack{len(made)}"
        (folder / "data").mkdir(parents=True)
        name = f"faults_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        database = create_database(server or faults_postgres, name, template=template)
        try:
            redis = RedisServer(folder / "redis")
            redis.start()
        except ServerUnavailable as exc:
            pytest.skip(f"no private Redis for the fault tests: {exc}")
        stack = Stack(folder=folder, database=database, redis=redis, extra_env=extra_env)
        made.append((stack, database))
        if template is None:  # a server without the session's template: migrate this database itself
            migrate(stack.env, stack.log("migrate"))
        return stack

    yield make
    for stack, database in reversed(made):
        stack.exits.close()
        stack.redis.stop()
        drop_database(database)
        print(stack.logs())  # shown by pytest only when the test failed


@pytest.fixture
def stack(stack_factory) -> Stack:
    return stack_factory()
