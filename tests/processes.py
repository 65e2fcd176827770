"""Start real studio processes (uvicorn, a Celery worker, the endpoint agent) against the test database, for tests
that must cross process boundaries the way production does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def process_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "STUDIO_DATA_DIR": str(settings.DATA_DIR),
        "SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "PYTHONUNBUFFERED": "1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def celery_worker(log_path: Path, *, name: str = "test", env: dict[str, str] | None = None
                  ) -> Iterator[subprocess.Popen]:
    """A real Celery worker (one process) consuming the training, inference and default queues of the test's Redis."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "studio", "worker", "-Q", "training,inference,default",
             "--pool", "solo",
             "--loglevel", "INFO", "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env={**process_env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            _stop(proc)


@contextmanager
def endpoint_agent(log_path: Path, *, name: str = "", env: dict[str, str] | None = None
                   ) -> Iterator[subprocess.Popen]:
    """The endpoint agent (manage.py runendpoints) against the test database and Redis; yields its process.

    Its name is unique to this test process, so rows it claims are told apart from those of other agents.
    """
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runendpoints", "--name", name or f"test-agent-{os.getpid()}"],
            cwd=ROOT, env={**process_env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            _stop(proc)


@contextmanager
def web_server(log_path: Path) -> Iterator[str]:
    """uvicorn serving the studio's ASGI app (HTTP, websockets, the invocation gateway), as runstudio does;
    yields its base URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "studio.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log"],
            cwd=ROOT, env=process_env(), stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_port(port, proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(proc)
