"""Endpoint benchmarks: real-time vs ``mlflow models serve``, serverless cold start, a 1 GB async upload,
batch transform vs real-time, and 3x overload.

Every figure comes from real processes on this machine: the studio's uvicorn web server (the gateway runs
inside it), the endpoint agent (``manage.py runendpoints``) and its instance processes, Celery workers for the
transform, ``mlflow models serve`` for the reference, and a load generator in its own process
(:mod:`tests.benchmarks.loadgen`). Run with
``.venv/bin/python -m pytest tests/benchmarks/bench_endpoints.py -o python_files='bench_*.py' -q -s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studio.accounts import services as account_services
from studio.datasets.preprocessing import TabularPreprocessor
from studio.datasets.tabular import TabularData
from studio.endpoints import services
from studio.endpoints.models import Endpoint, EndpointInstance
from studio.registry.models import Model
from studio.registry.services import model_artifacts_store, model_create
from tests.benchmarks.harness import record
from tests.processes import ROOT, endpoint_agent, free_port, web_server

pytestmark = pytest.mark.django_db(transaction=True)

LOADGEN = Path(__file__).with_name("loadgen.py")
FEATURES = 20
CLIENTS = 32
DURATION = 30.0
WARMUP = 3.0
INSTANCE_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- shared pieces --------------------------------------------------------------------------------


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 20-feature binary problem a logistic model separates well (labels 0/1)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, FEATURES))
    w = np.random.default_rng(seed + 1).normal(size=FEATURES)
    y = (X @ w + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return X, y


def linear_learner_model(project, directory: Path, X: np.ndarray, y: np.ndarray) -> Model:
    """Our linear-learner (binary) fitted on X, y, saved as training saves it and registered."""
    from algorithms import LinearLearner

    names = [f"f{i + 1}" for i in range(FEATURES)]
    data = TabularData(feature_names=names, numeric=X, numeric_names=names, text={}, y=y.astype(str),
                       rows=np.arange(1, X.shape[0] + 1), n_dropped=0, target="label")
    pre = TabularPreprocessor()
    prepared = pre.fit(data)
    estimator = LinearLearner(predictor_type="binary_classifier", epochs=5, random_state=0)
    estimator.fit(prepared.X, prepared.y)
    directory.mkdir(parents=True)
    estimator.save(directory)
    pre.save(directory)
    model_id = uuid.uuid4()
    artifacts = model_artifacts_store(project=project, model_id=model_id, directory=directory)
    return model_create(project=project, model_id=model_id, name=f"logistic-{model_id.hex[:6]}",
                        algorithm="linear-learner", artifacts=artifacts, feature_names=names)


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def endpoint_in_service(endpoint: Endpoint) -> Callable[[], bool]:
    def check() -> bool:
        endpoint.refresh_from_db()
        assert endpoint.status != "failed", endpoint.failure_reason
        return endpoint.status == "in_service"

    return check


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def loadgen(url: str, body: bytes, tmp_path: Path, *, headers: dict[str, str] | None = None,
            concurrency: int = CLIENTS, rate: float = 0.0, duration: float = DURATION, warmup: float = WARMUP,
            connections: int = 0, samples: Path | None = None) -> dict[str, Any]:
    """Run the load generator process against ``url``; its JSON summary (``samples``: every request's
    start, latency and status as JSON lines, see :mod:`tests.benchmarks.loadgen`)."""
    body_file = tmp_path / f"body-{uuid.uuid4().hex[:6]}.json"
    body_file.write_bytes(body)
    args = [sys.executable, str(LOADGEN), "--url", url, "--body-file", str(body_file), "--duration", str(duration),
            "--warmup", str(warmup), "--concurrency", str(concurrency), "--connections", str(connections)]
    if samples is not None:
        args += ["--samples", str(samples)]
    if rate:
        args += ["--rate", str(rate)]
    for name, value in (headers or {}).items():
        args += ["--header", f"{name}: {value}"]
    done = subprocess.run(args, capture_output=True, check=True, timeout=duration + warmup + 120, cwd=ROOT)
    return json.loads(done.stdout)


@contextmanager
def env_vars(**values: str) -> Iterator[None]:
    """Environment of the processes started inside (tests.processes copies os.environ)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def mlflow_server(model_dir: Path, log_path: Path) -> Iterator[str]:
    """``mlflow models serve`` of a saved sklearn model (local env, 1 uvicorn worker, its default)."""
    port = free_port()
    env = {**os.environ, **INSTANCE_ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "-p",
                                 str(port), "--host", "127.0.0.1", "--env-manager", "local"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def pinged() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/ping", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(pinged, timeout=120, what="mlflow models serve to answer /ping", poll=0.25)
        yield url
    finally:
        if proc.poll() is None:
            # mlflow serves from a child process (uvicorn): stop the whole session it leads.
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def realtime_endpoint(world, model: Model, name: str) -> Endpoint:
    return services.endpoint_create(user=world.member, project=world.project, name=name, type="realtime",
                                    variants=[{"name": "blue", "model": str(model.id), "min_instances": 1,
                                               "max_instances": 1}])


def bearer(world) -> dict[str, str]:
    _, token = account_services.api_token_create(user=world.member, name=f"bench-{uuid.uuid4().hex[:6]}")
    return {"Authorization": f"Bearer {token}"}


def invocations_url(base: str, endpoint: Endpoint) -> str:
    return f"{base}/api/v1/endpoints/{endpoint.id}/invocations"


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- 1: real-time vs mlflow; 5: 3x overload ----------------------------------------------------


def test_bench_realtime_vs_mlflow(world, tmp_path):
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    X, y = synthetic(5000)
    row = [round(float(v), 6) for v in X[0]]
    reference_dir = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(LogisticRegression(max_iter=1000).fit(X, y), str(reference_dir))
    model = linear_learner_model(world.project, tmp_path / "ours", X, y)

    # The reference first, alone on the machine.
    reference_body = json.dumps({"inputs": [row]}).encode()
    with mlflow_server(reference_dir, tmp_path / "mlflow.log") as mlflow_url:
        status, answer = post(mlflow_url + "/invocations", reference_body, {})
        assert status == 200, answer
        reference = loadgen(mlflow_url + "/invocations", reference_body, tmp_path)

    endpoint = realtime_endpoint(world, model, "logistic")
    headers = bearer(world)
    body = json.dumps({"instances": [row]}).encode()
    # 32 clients on one instance: the gateway's in-flight cap (default 4, the overload guard measured below)
    # must admit them all, so this web server gets a cap of 32.
    with endpoint_agent(tmp_path / "agent.log", env=INSTANCE_ENV):
        wait_for(endpoint_in_service(endpoint), timeout=60, what="the real-time endpoint")
        with env_vars(STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT=str(CLIENTS)), web_server(tmp_path / "web.log") as base:
            status, answer = post(invocations_url(base, endpoint), body, headers)
            assert status == 200, answer
            ours = loadgen(invocations_url(base, endpoint), body, tmp_path, headers=headers)
        assert ours["statuses"].get("200") == ours["ok"] and ours["ok"] > 0, ours
        reference_p99, ours_p99 = reference["latency"]["p99_ms"], ours["latency"]["p99_ms"]
        ratio = ours["rps"] / reference["rps"]
        record(
            name="endpoint real-time 32 clients 30 s (rps)",
            ours_s=1.0 / ours["rps"], reference="mlflow models serve (sklearn LogisticRegression)",
            reference_s=1.0 / reference["rps"],
            quality={"ours_rps": round(ours["rps"], 1), "mlflow_rps": round(reference["rps"], 1),
                     "rps_ratio": round(ratio, 3), "ours_p50_ms": ms(ours["latency"]["p50_ms"]),
                     "ours_p99_ms": ms(ours_p99), "mlflow_p50_ms": ms(reference["latency"]["p50_ms"]),
                     "mlflow_p99_ms": ms(reference_p99), "ours_non_200": sum(
                         n for s, n in ours["statuses"].items() if s != "200") + ours["errors"],
                     "mlflow_non_200": sum(n for s, n in reference["statuses"].items() if s != "200")
                     + reference["errors"],
                     "layout": "ours: 1 uvicorn web process (gateway) + 1 instance process; "
                               "mlflow: 1 uvicorn worker; load generator: 1 process"},
            bar="rps >= 1.0x mlflow's and p99 <= mlflow's (ratio of s/request <= 1)",
            met=ratio >= 1.0 and ours_p99 <= reference_p99,
        )


# Bar 5 needs a model that costs milliseconds per request: the logistic model of bar 1 answers ~2,000 req/s
# on this machine, and 3x that is more than a Python load generator sharing the 2 cores can send, so its
# backlog, not admission control, would be measured. Our k-NN over 50,000 x 64 answers one record in ~7 ms
# (three exact searches: neighbors, vote, probabilities), so capacity is ~100-150 req/s and 3x is a few hundred.
OVERLOAD_ROWS = 50_000
OVERLOAD_FEATURES = 64
OVERLOAD_CAP = 2  # STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT's default: the admission control under test
OVERLOAD_CONNECTIONS = 128  # the client fleet of the open-loop runs (keep-alive connections)
OVERLOAD_SECONDS = 15.0
OVERLOAD_MIN_OFFERED = 0.95  # the generator must send at least this fraction of 3x capacity to count


def knn_model(project, directory: Path, X: np.ndarray, y: np.ndarray) -> Model:
    """Our k-NN classifier (k=10) fitted on X, y, saved as training saves it and registered."""
    from algorithms import KNN

    names = [f"f{i + 1}" for i in range(X.shape[1])]
    data = TabularData(feature_names=names, numeric=X, numeric_names=names, text={}, y=y.astype(str),
                       rows=np.arange(1, X.shape[0] + 1), n_dropped=0, target="label")
    pre = TabularPreprocessor()
    prepared = pre.fit(data)
    estimator = KNN(k=10, predictor_type="classifier")
    estimator.fit(prepared.X, prepared.y)
    directory.mkdir(parents=True)
    estimator.save(directory)
    pre.save(directory)
    model_id = uuid.uuid4()
    artifacts = model_artifacts_store(project=project, model_id=model_id, directory=directory)
    return model_create(project=project, model_id=model_id, name=f"knn-{model_id.hex[:6]}", algorithm="knn",
                        artifacts=artifacts, feature_names=names)


class CpuMeter:
    """CPU cores used while a load generator ran: the web server (gateway), the instance processes, the
    endpoint agent, the load generator itself (a waited-for child), everything else and the whole machine, to
    show whether the 2 cores were the limit."""

    def __init__(self, web_pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._web = psutil.Process(web_pid)

    def _children(self, marker: str) -> float:
        processes = [p for p in self._psutil.Process().children(recursive=True) if marker in " ".join(p.cmdline())]
        return sum(t.user + t.system for t in (p.cpu_times() for p in processes))

    def _times(self) -> dict[str, float]:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine = self._psutil.cpu_times()
        web = self._web.cpu_times()
        return {"wall": time.perf_counter(), "web": web.user + web.system,
                "instances": self._children("studio.endpoints.instance"), "agent": self._children("runendpoints"),
                "loadgen": children.ru_utime + children.ru_stime,
                "machine": sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)}

    @contextmanager
    def measure(self, into: dict[str, float]) -> Iterator[None]:
        before = self._times()
        yield
        after = self._times()
        wall = after["wall"] - before["wall"]
        into.update({k: round((after[k] - before[k]) / wall, 2) for k in before if k != "wall"})
        into["other"] = round(into["machine"] - sum(v for k, v in into.items() if k != "machine"), 2)


def test_bench_overload(world, tmp_path):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(OVERLOAD_ROWS, OVERLOAD_FEATURES))
    y = (X[:, :8].sum(axis=1) > 0).astype(int)
    model = knn_model(world.project, tmp_path / "ours", X, y)
    endpoint = realtime_endpoint(world, model, "knn")
    headers = bearer(world)
    body = json.dumps({"instances": [[round(float(v), 6) for v in X[0]]]}).encode()
    with endpoint_agent(tmp_path / "agent.log", env=INSTANCE_ENV):
        wait_for(endpoint_in_service(endpoint), timeout=60, what="the real-time endpoint")
        # One web server with the default cap for all three runs: capacity is what this admission control
        # lets through, so it is measured behind it (pinned here, whatever the caller's environment says).
        with env_vars(STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT=str(OVERLOAD_CAP)), \
                web_server(tmp_path / "web.log") as base:
            url = invocations_url(base, endpoint)
            status, answer = post(url, body, headers)
            assert status == 200, answer
            meter, cores = CpuMeter(_web_pid(base)), {}
            # Closed loop, one client per admitted slot: the instance (serial, one model call at a time) always
            # has a request queued, and no client is ever refused, so no refusal loop steals the cores.
            closed = loadgen(url, body, tmp_path, headers=headers, concurrency=OVERLOAD_CAP, duration=10, warmup=2)
            assert set(closed["statuses"]) == {"200"} and closed["errors"] == 0, closed
            capacity = closed["rps"]
            unloaded = loadgen(url, body, tmp_path, headers=headers, rate=0.5 * capacity,
                               duration=OVERLOAD_SECONDS, warmup=2, connections=OVERLOAD_CONNECTIONS,
                               samples=tmp_path / "unloaded.jsonl")
            with meter.measure(cores):
                overload = loadgen(url, body, tmp_path, headers=headers, rate=3.0 * capacity,
                                   duration=OVERLOAD_SECONDS, warmup=2, connections=OVERLOAD_CONNECTIONS,
                                   samples=tmp_path / "overload.jsonl")
    unloaded_p99 = unloaded["latency"]["p99_ms"]
    admitted_p99 = overload["latency"]["p99_ms"]
    refused_p99 = overload["refused_latency"]["p99_ms"]
    answered = sum(overload["statuses"].values()) + overload["errors"]
    offered = overload["sent"]
    offered_enough = offered["of_target"] is not None and offered["of_target"] >= OVERLOAD_MIN_OFFERED
    unexpected = {s: n for s, n in overload["statuses"].items() if s not in ("200", "429", "503")}
    met = (offered_enough and refused_p99 is not None and refused_p99 <= 50 and admitted_p99 is not None
           and admitted_p99 <= 2 * unloaded_p99 and overload["errors"] == 0 and not unexpected)
    record(
        name="endpoint 3x overload (admitted p99)",
        ours_s=admitted_p99 / 1000, reference="unloaded p99 at 50% capacity", reference_s=unloaded_p99 / 1000,
        quality={"model": f"knn k=10 on {OVERLOAD_ROWS} x {OVERLOAD_FEATURES}",
                 "capacity_rps": round(capacity, 1), "capacity_p50_ms": ms(closed["latency"]["p50_ms"]),
                 "capacity_clients": OVERLOAD_CAP,
                 "offered_target_rps": round(3 * capacity, 1), "offered_sent_rps": round(offered["rps"] or 0, 1),
                 "offered_of_target": round(offered["of_target"] or 0, 3),
                 "offered_send_lag_p99_ms": ms(offered["lag_p99_ms"]),
                 "offered_send_lag_max_ms": ms(offered["lag_max_ms"]),
                 "answered_rps": round(answered / overload["seconds"], 1), "admitted_rps": round(overload["rps"], 1),
                 "statuses": overload["statuses"], "errors": overload["errors"],
                 "refused_p50_ms": ms(overload["refused_latency"]["p50_ms"]), "refused_p99_ms": ms(refused_p99),
                 "refused_max_ms": ms(overload["refused_latency"]["max_ms"]),
                 "admitted_p50_ms": ms(overload["latency"]["p50_ms"]), "admitted_p99_ms": ms(admitted_p99),
                 "unloaded_rate_rps": round(0.5 * capacity, 1),
                 "unloaded_sent_rps": round(unloaded["sent"]["rps"] or 0, 1),
                 "unloaded_p50_ms": ms(unloaded["latency"]["p50_ms"]), "unloaded_p99_ms": ms(unloaded_p99),
                 "unloaded_statuses": unloaded["statuses"], "inflight_cap": OVERLOAD_CAP,
                 "client_connections": OVERLOAD_CONNECTIONS, "window_s": OVERLOAD_SECONDS,
                 "overload_cpu_cores": cores, "machine_cores": os.cpu_count()},
        bar="refused (429/503) p99 <= 50 ms and admitted p99 <= 2x unloaded p99 (ratio <= 2), "
            f"with >= {OVERLOAD_MIN_OFFERED:.0%} of 3x capacity really sent",
        met=met,
    )


# --- 2: serverless cold start ----------------------------------------------------------------------


COLD_RUNS = 7
IDLE_TIMEOUT = 1


def test_bench_serverless_cold_start(world, tmp_path):
    X, y = synthetic(2000)
    model = linear_learner_model(world.project, tmp_path / "ours", X, y)
    endpoint = services.endpoint_create(
        user=world.member, project=world.project, name="cold", type="serverless",
        serverless={"max_concurrency": 4, "idle_timeout_seconds": IDLE_TIMEOUT},
        variants=[{"name": "blue", "model": str(model.id), "min_instances": 0, "max_instances": 1}])
    headers = bearer(world)
    body = json.dumps({"instances": [X[0].round(6).tolist()]}).encode()
    live = ("pending", "starting", "in_service", "draining")

    def scaled_to_zero() -> bool:
        return not EndpointInstance.objects.filter(variant__endpoint=endpoint, status__in=live).exists()

    seconds, waits, startup_ms = [], [], []
    with endpoint_agent(tmp_path / "agent.log", env=INSTANCE_ENV), web_server(tmp_path / "web.log") as base:
        url = invocations_url(base, endpoint)
        status, answer = post(url, body, headers)  # the first cold start also warms the web process up
        assert status == 200, answer
        for _ in range(COLD_RUNS):
            idle_started = time.perf_counter()
            wait_for(scaled_to_zero, timeout=60, what="the serverless endpoint to scale to zero", poll=0.1)
            waits.append(time.perf_counter() - idle_started)
            time.sleep(0.3)  # let the agent refill its warm spare, as it would between real requests
            started = time.perf_counter()
            status, answer = post(url, body, headers)
            seconds.append(time.perf_counter() - started)
            assert status == 200, answer
            instance = EndpointInstance.objects.filter(variant__endpoint=endpoint).order_by("-created_at").first()
            assert instance.cold_start
            startup_ms.append(instance.startup_ms)
    p50 = float(np.median(seconds))
    record(
        name="endpoint serverless cold start (p50)",
        ours_s=p50, reference="bar: 1 s", reference_s=1.0,
        quality={"runs": COLD_RUNS, "p50_ms": round(p50 * 1000, 1), "max_ms": round(max(seconds) * 1000, 1),
                 "all_ms": [round(s * 1000) for s in seconds],
                 "instance_startup_ms": [round(s) if s else None for s in startup_ms],
                 "idle_timeout_s": IDLE_TIMEOUT, "mean_scale_to_zero_wait_s": round(float(np.mean(waits)), 2)},
        bar="first request after scale-to-zero p50 <= 1 s", met=p50 <= 1.0,
    )


# --- 4: batch transform of 1M rows vs real-time requests of the same rows ---------------------------


BATCH_ROWS = 1_000_000
REQUEST_RECORDS = 500
REQUEST_CLIENTS = 8


def rows_csv(path: Path, X: np.ndarray) -> None:
    """The rows as a CSV with a header f1..f20, written in blocks (a 1M-row table is ~170 MB)."""
    with open(path, "w") as out:
        out.write(",".join(f"f{i + 1}" for i in range(FEATURES)) + "\n")
        for start in range(0, X.shape[0], 100_000):
            np.savetxt(out, X[start:start + 100_000], fmt="%.6f", delimiter=",")


async def _realtime_all(url: str, X: np.ndarray, headers: dict[str, str]) -> dict[str, int]:
    """Every row of X in requests of REQUEST_RECORDS by REQUEST_CLIENTS keep-alive clients; status counts."""
    import aiohttp
    import orjson

    starts = iter(range(0, X.shape[0], REQUEST_RECORDS))
    statuses: dict[str, int] = {}
    predicted = [0]

    async def client(session: aiohttp.ClientSession) -> None:
        for start in starts:
            body = orjson.dumps({"instances": X[start:start + REQUEST_RECORDS].tolist()})
            async with session.post(url, data=body, headers={**headers, "Content-Type": "application/json"}) as r:
                payload = await r.read()
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
                if r.status == 200:
                    predicted[0] += len(orjson.loads(payload)["predictions"])

    connector = aiohttp.TCPConnector(limit=REQUEST_CLIENTS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(client(session) for _ in range(REQUEST_CLIENTS)))
    return {**statuses, "records": predicted[0]}


# Parts of ~25 MB (about 150k rows here): enough parts to keep both workers busy, few enough that the
# per-part task and storage overhead stays small (API.md allows max_payload_mb up to 100, as SageMaker does).
BATCH_PAYLOAD_MB = 25


def test_bench_batch_transform_vs_realtime(world, tmp_path):
    from django.core.files.uploadedfile import UploadedFile

    from studio.datasets.services import dataset_upload
    from studio.endpoints.models import TransformJob
    from studio.endpoints.transforms import transform_job_create
    from tests.processes import celery_worker

    X, y = synthetic(BATCH_ROWS, seed=3)
    X = X.round(6)  # what the CSV holds, so both paths predict the same numbers
    model = linear_learner_model(world.project, tmp_path / "ours", X[:20_000], y[:20_000])
    path = tmp_path / "rows.csv"
    rows_csv(path, X)
    with open(path, "rb") as fh:
        dataset = dataset_upload(user=world.member, project=world.project, name="rows", kind="tabular",
                                 upload=UploadedFile(fh, name="rows.csv", content_type="text/csv",
                                                     size=path.stat().st_size))
    endpoint = realtime_endpoint(world, model, "rows")
    headers = bearer(world)
    with endpoint_agent(tmp_path / "agent.log", env=INSTANCE_ENV):
        wait_for(endpoint_in_service(endpoint), timeout=60, what="the real-time endpoint")
        # 8 clients on one instance: the gateway's in-flight cap must admit them (default 4 would refuse half).
        with env_vars(STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT=str(REQUEST_CLIENTS)), \
                web_server(tmp_path / "web.log") as base:
            url = invocations_url(base, endpoint)
            asyncio.run(_realtime_all(url, X[:5000], headers))  # warm the connections and the instance up
            started = time.perf_counter()
            realtime = asyncio.run(_realtime_all(url, X, headers))
            realtime_s = time.perf_counter() - started
    assert realtime.get("200") == BATCH_ROWS // REQUEST_RECORDS and realtime["records"] == BATCH_ROWS, realtime

    with celery_worker(tmp_path / "worker0.log", name="bench0", env=INSTANCE_ENV), \
            celery_worker(tmp_path / "worker1.log", name="bench1", env=INSTANCE_ENV):
        time.sleep(3)  # both workers import Django and connect before the clock starts
        started = time.perf_counter()
        job = transform_job_create(user=world.member, project=world.project, model=model, input_dataset=dataset,
                                   batch_strategy="multi_record", max_concurrent=2, max_payload_mb=BATCH_PAYLOAD_MB)

        def finished() -> bool:
            job.refresh_from_db()
            return job.status in ("completed", "failed", "stopped")

        wait_for(finished, timeout=600, what="the transform job", poll=0.05)
        batch_s = time.perf_counter() - started
    assert job.status == "completed", (job.status, job.failure_reason)
    assert job.records_done == BATCH_ROWS, job.records_done
    job = TransformJob.objects.get(id=job.id)
    speedup = realtime_s / batch_s
    record(
        name="endpoint batch transform 1M rows (2 workers)",
        ours_s=batch_s, reference=f"real-time, {REQUEST_RECORDS} records/request, {REQUEST_CLIENTS} clients",
        reference_s=realtime_s,
        quality={"rows": BATCH_ROWS, "speedup": round(speedup, 2), "parts": job.parts_total,
                 "batch_rows_per_s": round(BATCH_ROWS / batch_s), "realtime_rows_per_s": round(BATCH_ROWS / realtime_s),
                 "max_concurrent": 2, "workers": 2, "max_payload_mb": BATCH_PAYLOAD_MB},
        bar="batch >= 3x faster than real-time (ratio <= 0.333)", met=speedup >= 3.0,
    )


# --- 3: a 1 GB async upload ------------------------------------------------------------------------


ASYNC_BYTES = 1_000_000_000  # 1 GB (under the default 1024 MB limit of STUDIO_ASYNC_MAX_PAYLOAD_MB)


def _web_pid(base: str) -> int:
    """The uvicorn process serving ``base`` (a child of this test process)."""
    import psutil

    port = base.rsplit(":", 1)[1]
    for child in psutil.Process().children(recursive=True):
        if "uvicorn" in " ".join(child.cmdline()) and port in child.cmdline():
            return child.pid
    raise AssertionError(f"no uvicorn child listening on {port}")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _jsonl_body(total: int, chunk_lines: int = 8192) -> Iterator[bytes]:
    """``total`` bytes of JSON lines (20-float records), made on the fly in ~1 MB chunks."""
    rng = np.random.default_rng(0)
    lines = [json.dumps(r).encode() + b"\n" for r in rng.normal(size=(chunk_lines, FEATURES)).round(6).tolist()]
    block = b"".join(lines)
    sent = 0
    while sent + len(block) <= total:
        yield block
        sent += len(block)
    rest = total - sent
    if rest:
        # A last record led by spaces (valid JSON) makes the body exactly ``total`` bytes.
        tail = block[: max(0, rest - 200)]
        tail = tail[: tail.rfind(b"\n") + 1]
        yield tail + b" " * (rest - len(tail) - 4) + b"[0]\n"


def test_bench_async_one_gigabyte(world, tmp_path):
    import http.client
    import threading

    X, y = synthetic(2000)
    model = linear_learner_model(world.project, tmp_path / "ours", X, y)
    endpoint = services.endpoint_create(user=world.member, project=world.project, name="big", type="async",
                                        variants=[{"name": "blue", "model": str(model.id), "min_instances": 0,
                                                   "max_instances": 1}])
    headers = bearer(world)
    with web_server(tmp_path / "web.log") as base:
        pid = _web_pid(base)
        # One small request first, so the baseline is a web process that has served an async upload.
        host, port = base.removeprefix("http://").split(":")
        status, answer = post(f"{base}/api/v1/endpoints/{endpoint.id}/async-invocations", b'[1,2]\n',
                              {**headers, "Content-Type": "application/jsonlines"})
        assert status == 202, answer
        baseline = _rss_kb(pid)
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_kb(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        connection = http.client.HTTPConnection(host, int(port), timeout=600)
        connection.putrequest("POST", f"/api/v1/endpoints/{endpoint.id}/async-invocations")
        for name, value in {**headers, "Content-Type": "application/jsonlines",
                            "Content-Length": str(ASYNC_BYTES)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        for chunk in _jsonl_body(ASYNC_BYTES):
            connection.send(chunk)
        response = connection.getresponse()
        answer = response.read()
        upload_s = time.perf_counter() - started
        done.set()
        sampler.join()
        connection.close()
    assert response.status == 202, answer[:500]
    grown_mb = (peak[0] - baseline) / 1024
    record(
        name="endpoint async 1 GB upload (web RSS growth)",
        ours_s=upload_s, reference="bar: RSS growth 100 MB (reference_s = MB)", reference_s=100.0,
        quality={"status": response.status, "bytes": ASYNC_BYTES, "rss_growth_mb": round(grown_mb, 1),
                 "baseline_rss_mb": round(baseline / 1024, 1), "peak_rss_mb": round(peak[0] / 1024, 1),
                 "upload_mb_per_s": round(ASYNC_BYTES / 1e6 / upload_s, 1), "processed": "not waited for"},
        bar="202 Accepted and web server RSS grows < 100 MB", met=response.status == 202 and grown_mb < 100,
    )
