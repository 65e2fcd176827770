"""The endpoint agent (``manage.py runendpoints``): runs the instance processes of this host.

The database says which instances should exist (rows written by the lead's services and autoscaler); the
agent makes processes match, in a loop that reacts within a fraction of a second:

- **claim** pending rows atomically (``pending -> starting`` with the agent's name), fetch the model's files
  once into a local cache (``STUDIO_DATA_DIR/endpoint-cache/<model id>``), hand the model to a warm spare
  process (started before it was needed, numpy already imported and its HTTP server listening), check
  ``/ping``, mark the row in service (url, pid, ready_at, startup_ms) and publish the routing table;
- **drain** rows set to draining: publish the routing table first, wait until every gateway's cached copy
  has expired, then SIGTERM the process, which finishes what it holds and exits; the row becomes stopped;
- **watch**: a process that dies fails its row (the autoscaler replaces it); heartbeats every few seconds;
  rows of an earlier run of an agent with the same name (a restart) are failed at start;
- every ~1 s run ``services.endpoints_autoscale()`` and every ~2 s ``metrics.rollup()``; neither can kill the loop.

Each agent needs a name unique among running agents (default: the host name). SIGTERM/SIGINT stop every
instance of the agent cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from studio.endpoints.models import EndpointInstance, InstanceStatus

logger = logging.getLogger("studio.endpoints.agent")

NUDGE_KEY = "studio:endpoints:agent-nudge"  # the gateway pushes here when a request waits for a cold start
# Gateways cache the routing table for 250 ms: a draining instance gets SIGTERM only once none can still pick it.
ROUTES_GRACE_SECONDS = 0.5
IDLE_WAIT_SECONDS = 0.25
BUSY_WAIT_SECONDS = 0.02
AUTOSCALE_SECONDS = 1.0
ROLLUP_SECONDS = 2.0
REPUBLISH_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 30.0

SPARE, FETCHING, LOADING, SERVING, DRAINING = "spare", "fetching", "loading", "serving", "draining"


@dataclass
class AgentConfig:
    """How an agent runs its instances (from STUDIO_ENDPOINT_* settings unless given)."""

    name: str
    host: str = "127.0.0.1"
    advertise_host: str = ""
    spares: int = 1
    max_instances: int = 16
    start_timeout: float = 60.0
    heartbeat_seconds: float = 3.0
    cache_dir: Path = field(default_factory=lambda: Path(settings.DATA_DIR) / "endpoint-cache")
    instance_threads: int = 1
    autoscale: bool = True
    rollup: bool = True

    @classmethod
    def from_settings(cls, **overrides: Any) -> AgentConfig:
        values = {
            "name": getattr(settings, "STUDIO_ENDPOINT_AGENT_NAME", "") or socket.gethostname(),
            "host": getattr(settings, "STUDIO_ENDPOINT_HOST", "127.0.0.1"),
            "advertise_host": getattr(settings, "STUDIO_ENDPOINT_ADVERTISE_HOST", ""),
            "spares": getattr(settings, "STUDIO_ENDPOINT_WARM_SPARES", 1),
            "max_instances": getattr(settings, "STUDIO_ENDPOINT_AGENT_MAX_INSTANCES", 16),
            "start_timeout": float(getattr(settings, "STUDIO_ENDPOINT_START_TIMEOUT", 60)),
            "heartbeat_seconds": float(getattr(settings, "STUDIO_ENDPOINT_HEARTBEAT_SECONDS", 3)),
            "instance_threads": getattr(settings, "STUDIO_ENDPOINT_INSTANCE_THREADS", 1),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def public_host(self) -> str:
        if self.advertise_host:
            return self.advertise_host
        return socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104  # nosec B104


class InstanceProcess:
    """One ``python -m studio.endpoints.instance`` child and what it is doing for the agent."""

    def __init__(self, config: AgentConfig, wake: threading.Event) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "STUDIO_ENDPOINT_MAX_PAYLOAD_BYTES": str(getattr(settings, "STUDIO_ENDPOINT_MAX_PAYLOAD_BYTES",
                                                                6 * 1024 * 1024))}
        # Requests are small and each instance is one process: BLAS threads would only fight over cores.
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(config.instance_threads)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "studio.endpoints.instance", "--host", config.host],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
            cwd=str(settings.BASE_DIR),
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.port: int | None = None
        self.phase = SPARE
        self.instance_id: uuid.UUID | None = None
        self.endpoint_id: uuid.UUID | None = None
        self.variant_name = ""
        self.created_at: Any = None  # the row's created_at, for startup_ms
        self.feature_names: list[str] = []
        self.fetch: Future | None = None
        self.failed = False  # its row was failed by the agent: nothing more to write when it exits
        self.since = time.monotonic()
        self.term_at: float | None = None
        self.term_sent = False
        self._wake = wake
        threading.Thread(target=self._read, name=f"instance-{self.proc.pid}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if event.get("event") == "listening":
                self.port = int(event["port"])
            self.events.put(event)
            self._wake.set()
        self._wake.set()  # the process ended: let the loop notice now

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def assign(self, model_dir: Path, variant: str, feature_names: list[str]) -> None:
        assert self.proc.stdin is not None
        line = orjson.dumps({"model_dir": str(model_dir), "variant": variant, "feature_names": feature_names})
        self.proc.stdin.write(line.decode() + "\n")
        self.proc.stdin.flush()
        self.phase = LOADING
        self.since = time.monotonic()

    def next_event(self) -> dict[str, Any] | None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return None
            if event.get("event") != "listening":
                return event

    def terminate(self) -> None:
        if self.alive() and not self.term_sent:
            self.term_sent = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _publish_routes(endpoint_id: Any) -> None:
    from studio.endpoints.services import endpoint_routes_publish

    try:
        endpoint_routes_publish(endpoint_id=endpoint_id)
    except Exception:
        logger.warning("could not publish the routes of endpoint %s", endpoint_id, exc_info=True)


def model_cache_dir(*, model: Any, cache_dir: Path) -> Path:
    """The model's files in the agent's local cache, fetched once from storage (models never change)."""
    from studio.core.storage import storage_fetch_dir

    target = cache_dir / str(model.id)
    if (target / "manifest.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".{model.id}-{uuid.uuid4().hex[:8]}"
    with storage_fetch_dir(names=list(model.artifact_files)) as fetched:
        shutil.copytree(fetched, staging)
    try:
        staging.rename(target)  # atomic: a half-copied directory is never used
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another agent of this host got there first
    return target


class Agent:
    """Runs the instances claimed by one agent name; call :meth:`run` (or :meth:`step` in tests)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.processes: list[InstanceProcess] = []
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._fetcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="model-fetch")
        self._last: dict[str, float] = {}
        self._nudger: threading.Thread | None = None
        self._spares_after = 0.0

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Fail rows an earlier run of this agent left behind, then start the warm spares."""
        self._guarded("recover", self.recover)
        self._keep_spares()
        self._nudger = threading.Thread(target=self._listen_for_nudges, name="nudges", daemon=True)
        self._nudger.start()

    def run(self) -> None:
        """Loop until :attr:`stopping` is set (SIGTERM/SIGINT in the command), then stop every instance."""
        self.start()
        logger.info("endpoint agent %s running (%d warm spare(s), up to %d instances)", self.config.name,
                    self.config.spares, self.config.max_instances)
        try:
            while not self.stopping.is_set():
                try:
                    busy = self.step()
                except Exception:
                    logger.exception("endpoint agent step failed")
                    close_old_connections()
                    busy = False
                self.wake.wait(BUSY_WAIT_SECONDS if busy else IDLE_WAIT_SECONDS)
                self.wake.clear()
        finally:
            self.shutdown()

    def recover(self) -> None:
        """Rows claimed by this agent name have no process any more: this agent just started."""
        now = timezone.now()
        mine = EndpointInstance.objects.filter(agent=self.config.name)
        endpoints = set(mine.filter(status__in=(InstanceStatus.STARTING, InstanceStatus.IN_SERVICE,
                                                InstanceStatus.DRAINING))
                        .values_list("variant__endpoint_id", flat=True))
        failed = mine.filter(status__in=(InstanceStatus.STARTING, InstanceStatus.IN_SERVICE)).update(
            status=InstanceStatus.FAILED, stopped_at=now,
            status_message=f"Agent {self.config.name} restarted; the instance was replaced.")
        mine.filter(status=InstanceStatus.DRAINING).update(status=InstanceStatus.STOPPED, stopped_at=now)
        for endpoint_id in endpoints:
            _publish_routes(endpoint_id)
        if failed:
            logger.warning("failed %d instance(s) left by an earlier run of agent %s", failed, self.config.name)

    def shutdown(self) -> None:
        """Drain every instance (out of the routes first), stop the processes, mark the rows stopped."""
        serving = [p for p in self.processes if p.instance_id is not None]
        ids = [p.instance_id for p in serving]
        now = timezone.now()
        try:
            EndpointInstance.objects.filter(id__in=ids, status=InstanceStatus.IN_SERVICE).update(
                status=InstanceStatus.DRAINING)
        except Exception:
            logger.exception("could not mark the instances draining; stopping them anyway")
        for endpoint_id in {p.endpoint_id for p in serving if p.phase == SERVING}:
            _publish_routes(endpoint_id)
        if any(p.phase == SERVING for p in serving):
            time.sleep(ROUTES_GRACE_SECONDS)
        for process in self.processes:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in self.processes:
            try:
                process.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        try:
            EndpointInstance.objects.filter(id__in=ids).exclude(
                status__in=(InstanceStatus.STOPPED, InstanceStatus.FAILED)).update(
                status=InstanceStatus.STOPPED, stopped_at=now,
                status_message=f"Agent {self.config.name} stopped.")
        except Exception:
            logger.exception("could not mark the instances stopped (the reconciler will fail them)")
        for endpoint_id in {p.endpoint_id for p in serving}:
            _publish_routes(endpoint_id)
        self.processes = []
        self._fetcher.shutdown(wait=False, cancel_futures=True)

    def _listen_for_nudges(self) -> None:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        while not self.stopping.is_set():
            try:
                if client.blpop([NUDGE_KEY], timeout=1):
                    client.delete(NUDGE_KEY)
                    self.wake.set()
            except Exception:
                time.sleep(1)

    # --- one pass -----------------------------------------------------------------------------------

    def step(self) -> bool:
        """One pass of the loop; True when something is in progress (the loop then comes back sooner)."""
        self._reap()
        self._advance()
        if self.config.autoscale and self._due("autoscale", AUTOSCALE_SECONDS):
            self._guarded("autoscale", self._autoscale)
        self._claim()
        self._advance()
        self._drain()
        if self._due("heartbeat", self.config.heartbeat_seconds):
            self._guarded("heartbeat", self._heartbeat)
        self._keep_spares()
        if self.config.rollup and self._due("rollup", ROLLUP_SECONDS):
            self._guarded("rollup", self._rollup)
        if self._due("republish", REPUBLISH_SECONDS):
            for endpoint_id in {p.endpoint_id for p in self.processes if p.phase == SERVING}:
                _publish_routes(endpoint_id)
        return any(p.phase in (FETCHING, LOADING, DRAINING) for p in self.processes)

    def _due(self, what: str, every: float) -> bool:
        now = time.monotonic()
        if now - self._last.get(what, -1e9) >= every:
            self._last[what] = now
            return True
        return False

    @staticmethod
    def _guarded(what: str, fn: Any) -> None:
        try:
            fn()
        except Exception:
            logger.exception("endpoint agent: %s failed", what)
            close_old_connections()

    @staticmethod
    def _autoscale() -> None:
        from studio.endpoints.services import endpoints_autoscale

        endpoints_autoscale()

    @staticmethod
    def _rollup() -> None:
        from studio.endpoints.metrics import rollup

        rollup()

    def _keep_spares(self) -> None:
        if time.monotonic() < self._spares_after:
            return
        spares = sum(1 for p in self.processes if p.phase == SPARE)
        for _ in range(self.config.spares - spares):
            self.processes.append(InstanceProcess(self.config, self.wake))

    def _take_spare(self) -> InstanceProcess:
        ready = [p for p in self.processes if p.phase == SPARE and p.alive()]
        # The oldest spare is the likeliest to be listening already.
        spare = ready[0] if ready else InstanceProcess(self.config, self.wake)
        if not ready:
            self.processes.append(spare)
        return spare

    def _claim(self) -> None:
        room = self.config.max_instances - sum(1 for p in self.processes if p.instance_id is not None)
        if room <= 0:
            return
        candidates = list(EndpointInstance.objects.filter(status=InstanceStatus.PENDING)
                          .order_by("created_at").values_list("id", flat=True)[:room])
        for instance_id in candidates:
            claimed = EndpointInstance.objects.filter(id=instance_id, status=InstanceStatus.PENDING).update(
                status=InstanceStatus.STARTING, agent=self.config.name, heartbeat_at=timezone.now(),
                status_message="Loading the model")
            if not claimed:
                continue  # another agent took it
            row = EndpointInstance.objects.select_related("variant__model", "variant__endpoint").get(id=instance_id)
            process = self._take_spare()
            process.phase = FETCHING
            process.instance_id = row.id
            process.endpoint_id = row.variant.endpoint_id
            process.variant_name = row.variant.name
            process.created_at = row.created_at
            process.since = time.monotonic()
            model = row.variant.model
            process.fetch = self._fetcher.submit(self._fetch, model)
            process.fetch.add_done_callback(lambda _: self.wake.set())
            process.feature_names = [str(n) for n in model.feature_names or []]
            logger.info("claimed instance %s of %s/%s (pid %s)", row.id, row.variant.endpoint.name,
                        row.variant.name, process.pid)

    def _fetch(self, model: Any) -> Path:
        try:
            return model_cache_dir(model=model, cache_dir=self.config.cache_dir)
        finally:
            close_old_connections()

    def _advance(self) -> None:
        """Fetched -> assigned; loaded -> in service; and time-outs."""
        for process in list(self.processes):
            if process.phase == FETCHING and process.fetch is not None and process.fetch.done():
                error = process.fetch.exception()
                if error is not None:
                    self._fail(process, f"Could not fetch the model files: {error}")
                elif process.port is not None:
                    process.assign(process.fetch.result(), process.variant_name, process.feature_names)
            elif process.phase == LOADING:
                event = process.next_event()
                if event is not None and event.get("event") == "ready":
                    self._serve(process)
                elif event is not None and event.get("event") == "error":
                    self._fail(process, f"The model could not be loaded: {event.get('message', '')}")
            if process.phase in (FETCHING, LOADING) and time.monotonic() - process.since > self.config.start_timeout:
                self._fail(process, f"The instance did not start within {self.config.start_timeout:g} s.")

    def _serve(self, process: InstanceProcess) -> None:
        url = f"http://{_url_host(self.config.public_host)}:{process.port}"
        ping = f"http://{self._local_host()}:{process.port}/ping"
        try:
            with urllib.request.urlopen(ping, timeout=5) as response:  # nosec B310
                ok = response.status == 200
        except OSError:
            ok = False
        if not ok:
            self._fail(process, "The instance loaded the model but does not answer /ping.")
            return
        now = timezone.now()
        startup_ms = (now - process.created_at).total_seconds() * 1000.0 if process.created_at else None
        updated = EndpointInstance.objects.filter(id=process.instance_id, status=InstanceStatus.STARTING).update(
            status=InstanceStatus.IN_SERVICE, url=url, pid=process.pid, ready_at=now, heartbeat_at=now,
            startup_ms=startup_ms, status_message="In service")
        if not updated:
            # The row moved on while the model loaded (scaled in, endpoint deleted): this process is not wanted.
            logger.info("instance %s is no longer wanted; stopping pid %s", process.instance_id, process.pid)
            self._stop_now(process)
            return
        process.phase = SERVING
        logger.info("instance %s in service at %s (%.0f ms after it was wanted)", process.instance_id, url,
                    startup_ms or 0)
        _publish_routes(process.endpoint_id)

    def _local_host(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", ""):  # noqa: S104  # nosec B104
            return "127.0.0.1"
        return "[::1]" if host == "::" else _url_host(host)

    def _fail(self, process: InstanceProcess, message: str) -> None:
        logger.warning("instance %s failed: %s", process.instance_id, message)
        EndpointInstance.objects.filter(id=process.instance_id).exclude(
            status__in=(InstanceStatus.STOPPED, InstanceStatus.FAILED)).update(
            status=InstanceStatus.FAILED, status_message=message[:500], stopped_at=timezone.now())
        was_serving = process.phase in (SERVING, DRAINING)
        process.failed = True
        self._stop_now(process)
        if was_serving:
            _publish_routes(process.endpoint_id)

    @staticmethod
    def _stop_now(process: InstanceProcess) -> None:
        process.terminate()
        process.phase = DRAINING
        process.term_at = time.monotonic()

    def _reap(self) -> None:
        for process in list(self.processes):
            if process.alive():
                continue
            code = process.proc.returncode
            self.processes.remove(process)
            if process.instance_id is None:
                if not process.term_sent:
                    logger.warning("warm spare pid %s exited with code %s", process.pid, code)
                    # A spare that cannot even start (broken install) must not be restarted in a tight loop.
                    self._spares_after = time.monotonic() + 5.0
                continue
            if process.failed:
                continue
            if process.term_sent:
                EndpointInstance.objects.filter(id=process.instance_id).exclude(
                    status__in=(InstanceStatus.STOPPED, InstanceStatus.FAILED)).update(
                    status=InstanceStatus.STOPPED, stopped_at=timezone.now(), status_message="Stopped")
                logger.info("instance %s stopped", process.instance_id)
                continue
            message = f"The instance process exited unexpectedly (code {code})."
            EndpointInstance.objects.filter(id=process.instance_id).exclude(
                status__in=(InstanceStatus.STOPPED, InstanceStatus.FAILED)).update(
                status=InstanceStatus.FAILED, status_message=message, stopped_at=timezone.now())
            logger.warning("instance %s: %s", process.instance_id, message)
            if process.phase in (SERVING, DRAINING):
                _publish_routes(process.endpoint_id)

    def _drain(self) -> None:
        draining = set(EndpointInstance.objects.filter(status=InstanceStatus.DRAINING, agent=self.config.name)
                       .values_list("id", flat=True))
        ours = {p.instance_id: p for p in self.processes if p.instance_id is not None}
        now = time.monotonic()
        for instance_id in draining:
            process = ours.get(instance_id)
            if process is None:
                EndpointInstance.objects.filter(id=instance_id, status=InstanceStatus.DRAINING).update(
                    status=InstanceStatus.STOPPED, stopped_at=timezone.now(), status_message="Stopped")
            elif process.phase in (FETCHING, LOADING):
                self._stop_now(process)  # it never took a request: nothing to wait for
            elif process.phase == SERVING:
                process.phase = DRAINING
                process.term_at = now + ROUTES_GRACE_SECONDS
                _publish_routes(process.endpoint_id)
        # Unclaimed rows set to draining (never started) have nothing to drain.
        EndpointInstance.objects.filter(status=InstanceStatus.DRAINING, agent="").update(
            status=InstanceStatus.STOPPED, stopped_at=timezone.now())
        for process in self.processes:
            if process.phase == DRAINING and not process.term_sent and process.term_at is not None \
                    and now >= process.term_at:
                process.terminate()

    def _heartbeat(self) -> None:
        ours = {p.instance_id: p for p in self.processes if p.instance_id is not None}
        if not ours:
            return
        now = timezone.now()
        EndpointInstance.objects.filter(id__in=list(ours)).exclude(
            status__in=(InstanceStatus.STOPPED, InstanceStatus.FAILED)).update(heartbeat_at=now)
        # A row settled by someone else (the reconciler failed it) must not keep a process running.
        settled = EndpointInstance.objects.filter(id__in=list(ours), status__in=(
            InstanceStatus.STOPPED, InstanceStatus.FAILED)).values_list("id", flat=True)
        for instance_id in settled:
            process = ours[instance_id]
            if process.term_sent:
                continue
            logger.warning("instance %s was settled elsewhere; stopping pid %s", instance_id, process.pid)
            self._stop_now(process)
            _publish_routes(process.endpoint_id)

