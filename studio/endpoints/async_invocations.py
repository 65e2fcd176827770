"""Async invocations: a request body (up to 1 GB) stored, queued, predicted by an instance, output stored.

Reads are scoped like everything else (another team's endpoint or invocation is a 404); every status
change is a conditional UPDATE, so a worker, a redelivered message and the reconciler never both win.

Input formats (the request's Content-Type; one record per line so any size streams):

- ``application/jsonlines`` (also ``application/jsonl``, ``application/x-ndjson``): one JSON record per line;
- ``text/csv``: one record per row, in the model's input order; a first row equal to the input names is a header;
- ``application/json``: one document ``{"instances": [...]}`` (or a bare list), up to 100 MB;
- ``application/json`` ``{"input_dataset": "<id>"}``: every record of a dataset of the endpoint's project.

The output is JSON lines, one prediction per input record, in input order.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import logging
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, InterfaceError, transaction
from django.db.models import F, Q
from django.http import Http404
from django.utils import timezone

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.selectors import project_list
from studio.core.errors import Conflict, PayloadTooLarge
from studio.core.storage import storage_delete, storage_delete_prefix, storage_open
from studio.datasets.models import Dataset, DatasetKind, DatasetStatus
from studio.endpoints.models import (
    AsyncInvocation,
    AsyncStatus,
    Endpoint,
    EndpointStatus,
    EndpointType,
    EndpointVariant,
)
from studio.endpoints.transform_runner import CSV_FORMAT, _physical_records, input_format
from studio.live.publisher import publish

if TYPE_CHECKING:
    from studio.accounts.models import User
    from studio.endpoints.models import InvokeKey

logger = logging.getLogger(__name__)

MB = 1024 * 1024
ROUTES_KEY = "studio:endpoint:{}:routes"
JSON_TYPE = "application/json"
JSONL_TYPES = ("application/jsonlines", "application/jsonl", "application/x-jsonlines", "application/x-ndjson",
               "application/ndjson")
CSV_TYPES = ("text/csv", "application/csv")
JSON_DOCUMENT_MAX_BYTES = 100 * MB
PEEK_BYTES = 64 * 1024  # a JSON body this small may be {"input_dataset": id}
READ_CHUNK = MB
# Instances refuse bodies over 6 MB; batches stay under 5 MB and this many records.
BATCH_MAX_BYTES = 5 * MB
BATCH_MAX_RECORDS = 10_000
MAX_ATTEMPTS = 3
WAKE_TIMEOUT_SECONDS = 300.0
WAKE_POLL_SECONDS = 0.5
HEARTBEAT_EVERY_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 300.0
INSTANCE_TRIES = 3
RETRY_STATUSES = (413, 429, 500, 502, 503, 504)


class InvocationFailed(Exception):
    """The invocation cannot complete; the message is its failure reason."""


class InvocationLost(Exception):
    """Another worker or the reconciler took the invocation over: stop without writing anything."""


# --- reads ---------------------------------------------------------------------------------------------


def async_invocation_list(*, user: User | None, key: InvokeKey | None = None) -> Any:
    """Invocations the caller may see: of the key's endpoint, or of endpoints in the user's projects."""
    invocations = AsyncInvocation.objects.select_related("endpoint__project__team")
    if key is not None:
        return invocations.filter(endpoint_id=key.endpoint_id)
    if user is None or not user.is_authenticated:
        return invocations.none()
    return invocations.filter(endpoint__project__in=project_list(user=user))


def async_invocation_get(*, user: User | None, invocation_id: Any, key: InvokeKey | None = None) -> AsyncInvocation:
    """One invocation the caller may see; Http404 otherwise (another team's or another endpoint's key)."""
    try:
        return async_invocation_list(user=user, key=key).get(id=invocation_id)
    except (AsyncInvocation.DoesNotExist, ValueError, ValidationError):
        raise Http404("No such async invocation.") from None


def async_endpoint_get(*, user: User | None, endpoint_id: Any, key: InvokeKey | None = None) -> Endpoint:
    """The endpoint to invoke: the key's own, or one in the user's projects; 404 otherwise (or while deleting)."""
    endpoints = Endpoint.objects.select_related("project__team").exclude(status=EndpointStatus.DELETING)
    if key is not None:
        endpoints = endpoints.filter(id=key.endpoint_id)
    elif user is not None and user.is_authenticated:
        endpoints = endpoints.filter(project__in=project_list(user=user))
    else:
        endpoints = endpoints.none()
    try:
        return endpoints.get(id=endpoint_id)
    except (Endpoint.DoesNotExist, ValueError, ValidationError):
        raise Http404("No such endpoint.") from None


def input_prefix(*, endpoint: Endpoint, invocation_id: Any) -> str:
    """Where an invocation's input and output live in storage."""
    return f"projects/{endpoint.project_id}/endpoints/{endpoint.id}/async/{invocation_id}/"


# --- create ----------------------------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    """``"text/csv; charset=utf-8"`` -> ``"text/csv"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def async_max_payload_bytes(endpoint: Endpoint) -> int:
    """The smaller of STUDIO_ASYNC_MAX_PAYLOAD_MB and the endpoint's own async max_payload_mb."""
    limit = int(settings.STUDIO_ASYNC_MAX_PAYLOAD_MB)
    own = (endpoint.async_config or {}).get("max_payload_mb")
    if isinstance(own, int | float) and own > 0:
        limit = min(limit, int(own))
    return limit * MB


def _check_invoker(*, endpoint: Endpoint, user: User | None, key: InvokeKey | None) -> None:
    if key is None:
        require_role(user=user, team=endpoint.project.team, role=Role.MEMBER)
    if endpoint.type != EndpointType.ASYNC:
        raise ValidationError({"endpoint": [
            f"Endpoint '{endpoint.name}' is {endpoint.type}, not async: POST the records to "
            f"/api/v1/endpoints/{endpoint.id}/invocations instead."]})
    if endpoint.status == EndpointStatus.FAILED:
        raise Conflict(f"Endpoint '{endpoint.name}' failed: {endpoint.failure_reason or 'see its page'}; "
                       "update it before invoking it.")


class _LimitedReader:
    """Reads a request stream in chunks, counting bytes, and stops past the limit (413)."""

    def __init__(self, stream: IO[bytes], *, limit: int, initial: bytes = b"") -> None:
        self.stream = stream
        self.limit = limit
        self.initial = initial
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        if self.initial:
            block, self.initial = self.initial, b""
        else:
            block = self.stream.read(READ_CHUNK if size is None or size < 0 else size) or b""
        self.size += len(block)
        if self.size > self.limit:
            raise PayloadTooLarge(f"The request body is over the {self.limit // MB} MB async payload limit.")
        return block


def async_invocation_submit(*, endpoint: Endpoint, user: User | None, key: InvokeKey | None, stream: IO[bytes] | None,
                            content_type: str, content_length: int | None) -> AsyncInvocation:
    """Store a request body (streamed in chunks: never whole in memory) or take ``{"input_dataset": id}``; queue it.

    Parameters
    ----------
    endpoint : Endpoint
        An async endpoint the caller may invoke.
    user : User or None
        The caller (member+), or None when ``key`` authenticated the request.
    key : InvokeKey or None
        The endpoint's invoke key that authenticated the request.
    stream : binary file or None
        The request body, read in chunks of READ_CHUNK.
    content_type : str
        The request's Content-Type (see the module docstring).
    content_length : int or None
        The announced body size: over the limit is a 413 before anything is read.

    Returns
    -------
    AsyncInvocation
        Queued; the run task is sent once the row is committed.

    Raises
    ------
    PermissionDenied
        A viewer (403).
    ValidationError
        Wrong endpoint type, empty body, media type, dataset (400).
    PayloadTooLarge
        Over STUDIO_ASYNC_MAX_PAYLOAD_MB or the endpoint's max_payload_mb (413).
    Conflict
        A failed endpoint (409).
    """
    _check_invoker(endpoint=endpoint, user=user, key=key)
    kind = media_type(content_type)
    limit = async_max_payload_bytes(endpoint)
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"The request body ({content_length:,} bytes) is over the {limit // MB} MB async "
                              "payload limit.")
    if kind not in (JSON_TYPE, *JSONL_TYPES, *CSV_TYPES):
        raise ValidationError({"Content-Type": [
            f"Send application/jsonlines, text/csv or application/json (got '{content_type or 'none'}')."]})
    if kind == JSON_TYPE and content_length is not None and content_length > JSON_DOCUMENT_MAX_BYTES:
        raise PayloadTooLarge(f"A JSON document is read whole, so it may be at most {JSON_DOCUMENT_MAX_BYTES // MB} "
                              "MB: send larger inputs as application/jsonlines, one record per line.")
    if stream is None or not content_length:
        raise ValidationError({"body": ["The request body is empty: send the records, or "
                                        '{"input_dataset": "<dataset id>"} as application/json.']})
    initial = b""
    if kind == JSON_TYPE and content_length <= PEEK_BYTES:
        initial = stream.read(content_length + 1)
        try:
            document = json.loads(initial)
        except (ValueError, UnicodeDecodeError):
            document = None
        if isinstance(document, dict) and "input_dataset" in document:
            return _submit_dataset(endpoint=endpoint, user=user, key=key, dataset_id=document["input_dataset"])
    invocation_id = uuid.uuid4()
    name = input_prefix(endpoint=endpoint, invocation_id=invocation_id) + "input"
    reader = _LimitedReader(stream, limit=limit, initial=initial)
    try:
        stored = default_storage.save(name, File(reader, name="input"))
        if reader.size == 0:
            raise ValidationError({"body": ["The request body is empty."]})
        if kind == JSON_TYPE and reader.size > JSON_DOCUMENT_MAX_BYTES:
            raise PayloadTooLarge(f"A JSON document may be at most {JSON_DOCUMENT_MAX_BYTES // MB} MB: send larger "
                                  "inputs as application/jsonlines.")
        invocation = _queue(endpoint=endpoint, user=user, key=key, invocation_id=invocation_id, input_file=stored,
                            content_type=kind, size_bytes=reader.size)
    except BaseException:
        storage_delete_prefix(input_prefix(endpoint=endpoint, invocation_id=invocation_id))
        raise
    return invocation


def _submit_dataset(*, endpoint: Endpoint, user: User | None, key: InvokeKey | None,
                    dataset_id: Any) -> AsyncInvocation:
    try:
        dataset = Dataset.objects.get(id=uuid.UUID(str(dataset_id)), project_id=endpoint.project_id)
    except (ValueError, Dataset.DoesNotExist):
        raise ValidationError({"input_dataset": [f"No dataset '{dataset_id}' in this endpoint's project."]}) from None
    if dataset.status != DatasetStatus.READY:
        raise ValidationError({"input_dataset": [f"Dataset '{dataset.name}' is {dataset.status}, not ready."]})
    if dataset.kind not in (DatasetKind.TABULAR, DatasetKind.TEXT):
        raise ValidationError({"input_dataset": [f"Dataset '{dataset.name}' is {dataset.kind}: async invocations "
                                                 "read tabular or text datasets."]})
    fmt, _, _ = input_format(dataset)
    return _queue(endpoint=endpoint, user=user, key=key, invocation_id=uuid.uuid4(), input_dataset=dataset,
                  content_type="text/csv" if fmt == CSV_FORMAT else "application/jsonlines",
                  size_bytes=dataset.size_bytes)


def _queue(*, endpoint: Endpoint, user: User | None, key: InvokeKey | None, invocation_id: uuid.UUID,
           **fields: Any) -> AsyncInvocation:
    with transaction.atomic():
        invocation = AsyncInvocation.objects.create(
            id=invocation_id, endpoint=endpoint, created_by=user if key is None else None,
            heartbeat_at=timezone.now(),  # while queued: when it was last handed to the broker
            **fields)
        if key is not None:
            type(key).objects.filter(id=key.id).update(last_used_at=timezone.now())
        transaction.on_commit(lambda: async_invocation_enqueue(invocation_id=invocation.id))
    return invocation


def async_invocation_enqueue(*, invocation_id: Any) -> None:
    """Send the run task to the inference queue; a broker outage is left to the reconciler."""
    from studio.endpoints.tasks import async_invocation_run_task

    try:
        async_invocation_run_task.apply_async(args=[str(invocation_id)])
    except Exception:
        logger.warning("could not enqueue async invocation %s; the reconciler will retry", invocation_id,
                       exc_info=True)


# --- state changes ---------------------------------------------------------------------------------------


def async_invocation_claim(*, invocation_id: Any) -> AsyncInvocation | None:
    """queued -> running for exactly one caller; None for a redelivered message or a finished invocation."""
    now = timezone.now()
    if not AsyncInvocation.objects.filter(id=invocation_id, status=AsyncStatus.QUEUED).update(
            status=AsyncStatus.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1, failure_reason=""):
        return None
    AsyncInvocation.objects.filter(id=invocation_id, started_at__isnull=True).update(started_at=now)
    invocation = AsyncInvocation.objects.select_related("endpoint__project", "input_dataset").get(id=invocation_id)
    _publish(invocation)
    return invocation


def _touch(invocation: AsyncInvocation) -> None:
    if not AsyncInvocation.objects.filter(id=invocation.id, status=AsyncStatus.RUNNING).update(
            heartbeat_at=timezone.now()):
        raise InvocationLost


def _finish(invocation: AsyncInvocation, **fields: Any) -> bool:
    won = AsyncInvocation.objects.filter(id=invocation.id, status=AsyncStatus.RUNNING).update(
        ended_at=timezone.now(), **fields)
    if not won:
        return False
    invocation.refresh_from_db()
    _publish(invocation)
    _notify(invocation)
    return True


def _publish(invocation: AsyncInvocation) -> None:
    publish(kind="endpoint", object_id=invocation.endpoint_id, events=[{
        "type": "async", "id": str(invocation.id), "status": invocation.status, "records": invocation.records,
        "message": invocation.failure_reason}])


def public_url(path: str) -> str:
    """An absolute URL when STUDIO_PUBLIC_URL says where the studio is reached, else the path."""
    base = getattr(settings, "STUDIO_PUBLIC_URL", "") or ""
    return base.rstrip("/") + path


def status_path(invocation_id: Any) -> str:
    """The API path of an invocation's status."""
    return f"/api/v1/async-invocations/{invocation_id}"


def _notify(invocation: AsyncInvocation) -> None:
    from studio.endpoints.notifications import notification_post

    url = (invocation.endpoint.async_config or {}).get("notification_url")
    if not url:
        return
    payload = {"id": str(invocation.id), "status": invocation.status,
               "status_url": public_url(status_path(invocation.id)),
               "output_url": public_url(status_path(invocation.id) + "/output"),
               "failure_reason": invocation.failure_reason}
    result = notification_post(url, payload)
    AsyncInvocation.objects.filter(id=invocation.id).update(notification_status=result[:200])
    invocation.notification_status = result[:200]


def async_invocations_reconcile(*, now=None) -> int:
    """Re-queue running invocations whose worker went silent (failed after MAX_ATTEMPTS) and re-send queued
    ones whose message may be lost; return how many were acted on. The lead's endpoints_reconcile calls this."""
    now = now or timezone.now()
    silent = now - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT)
    acted = 0
    for invocation in AsyncInvocation.objects.filter(status=AsyncStatus.RUNNING, heartbeat_at__lt=silent):
        if invocation.attempts >= MAX_ATTEMPTS:
            reason = (f"The worker stopped responding {invocation.attempts} times (last heartbeat "
                      f"{invocation.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); giving up.")
            won = AsyncInvocation.objects.filter(id=invocation.id, status=AsyncStatus.RUNNING,
                                                 heartbeat_at=invocation.heartbeat_at).update(
                status=AsyncStatus.FAILED, failure_reason=reason, ended_at=now)
            if won:
                invocation.refresh_from_db()
                _publish(invocation)
                _notify(invocation)
        else:
            won = AsyncInvocation.objects.filter(id=invocation.id, status=AsyncStatus.RUNNING,
                                                 heartbeat_at=invocation.heartbeat_at).update(
                status=AsyncStatus.QUEUED, heartbeat_at=now)
            if won:
                async_invocation_enqueue(invocation_id=invocation.id)
        acted += bool(won)
    cutoff = now - timedelta(seconds=settings.STUDIO_PENDING_REQUEUE_SECONDS)
    stale = AsyncInvocation.objects.filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True),
                                           status=AsyncStatus.QUEUED)
    for invocation_id, beat in stale.values_list("id", "heartbeat_at"):
        # Only the caller that moves heartbeat_at re-sends: parallel beats send one message.
        if AsyncInvocation.objects.filter(id=invocation_id, status=AsyncStatus.QUEUED, heartbeat_at=beat).update(
                heartbeat_at=now):
            async_invocation_enqueue(invocation_id=invocation_id)
            acted += 1
    return acted


# --- the work --------------------------------------------------------------------------------------------


@dataclass
class Batch:
    body: bytes
    content_type: str
    first: int  # 0-based index of its first record
    count: int

    @property
    def record_range(self) -> str:
        return f"records {self.first + 1}-{self.first + self.count}"


def _json_batches(items: Iterator[bytes], *, start: int = 0) -> Iterator[Batch]:
    """JSON-encoded records -> ``{"instances": [...]}`` bodies under the batch limits."""
    pending: list[bytes] = []
    size = 0
    first = start
    for item in items:
        if pending and (size + len(item) + 1 > BATCH_MAX_BYTES or len(pending) >= BATCH_MAX_RECORDS):
            yield Batch(b'{"instances":[' + b",".join(pending) + b"]}", JSON_TYPE, first, len(pending))
            first += len(pending)
            pending, size = [], 0
        if len(item) > BATCH_MAX_BYTES:
            raise InvocationFailed(f"record {first + len(pending) + 1} is over {BATCH_MAX_BYTES // MB} MB: "
                                   "a single request to an instance cannot carry it.")
        pending.append(item)
        size += len(item) + 1
    if pending:
        yield Batch(b'{"instances":[' + b",".join(pending) + b"]}", JSON_TYPE, first, len(pending))


def _csv_batches(fh: IO[bytes], *, header: list[str]) -> Iterator[Batch]:
    """Raw CSV rows -> text/csv bodies (a first row equal to the input names is a header, left out)."""
    pending: list[bytes] = []
    size = 0
    first = 0
    seen_first = False
    for _, raw in _physical_records(fh, fmt=CSV_FORMAT):
        if not raw.strip():
            continue
        if not seen_first:
            seen_first = True
            cells = next(csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace"))), [])
            if header and [c.strip() for c in cells] == header:
                continue
        if not raw.endswith(b"\n"):
            raw += b"\n"
        if pending and (size + len(raw) > BATCH_MAX_BYTES or len(pending) >= BATCH_MAX_RECORDS):
            yield Batch(b"".join(pending), "text/csv", first, len(pending))
            first += len(pending)
            pending, size = [], 0
        if len(raw) > BATCH_MAX_BYTES:
            raise InvocationFailed(f"record {first + len(pending) + 1} is over {BATCH_MAX_BYTES // MB} MB.")
        pending.append(raw)
        size += len(raw)
    if pending:
        yield Batch(b"".join(pending), "text/csv", first, len(pending))


def _jsonl_items(fh: IO[bytes]) -> Iterator[bytes]:
    for line in fh:
        line = line.strip()
        if line:
            yield line


def _dataset_csv_items(fh: IO[bytes], *, delimiter: str) -> Iterator[bytes]:
    """Rows of a stored CSV dataset as ``{column: cell}`` JSON objects (the model takes the columns it needs)."""
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    names = [name.strip() for name in next(reader, [])]
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield json.dumps(dict(zip(names, row, strict=False)), separators=(",", ":")).encode()


def _document_items(fh: IO[bytes]) -> Iterator[bytes]:
    try:
        document = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvocationFailed(f"the body is not valid JSON: {exc}") from None
    if isinstance(document, dict):
        document = document.get("instances")
    if not isinstance(document, list):
        raise InvocationFailed('send {"instances": [...]} (or one JSON record per line as application/jsonlines)')
    for record in document:
        yield json.dumps(record, separators=(",", ":")).encode()


def _batches(invocation: AsyncInvocation, fh: IO[bytes], *, input_names: list[str]) -> Iterator[Batch]:
    if invocation.input_dataset_id:
        fmt, delimiter, _ = input_format(invocation.input_dataset)
        if fmt == CSV_FORMAT:
            return _json_batches(_dataset_csv_items(fh, delimiter=delimiter))
        return _json_batches(_jsonl_items(fh))
    if invocation.content_type in CSV_TYPES:
        return _csv_batches(fh, header=input_names)
    if invocation.content_type in JSONL_TYPES:
        return _json_batches(_jsonl_items(fh))
    return _json_batches(_document_items(fh))


def _routes(endpoint_id: Any) -> dict[str, Any]:
    raw = redis.Redis.from_url(settings.REDIS_URL).get(ROUTES_KEY.format(endpoint_id))
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def _pick(routes: dict[str, Any]) -> tuple[int | None, str | None]:
    """(variant id, instance URL) by variant weight among variants with an instance in service."""
    serving = [v for v in routes.get("variants", []) if v.get("instances") and float(v.get("weight") or 0) > 0]
    if not serving:
        serving = [v for v in routes.get("variants", []) if v.get("instances")]
    if not serving:
        return None, None
    variant = random.choices(serving, weights=[max(float(v.get("weight") or 0), 1e-9) for v in serving])[0]
    return variant["id"], random.choice(variant["instances"])["url"]


def _instance(invocation: AsyncInvocation) -> tuple[int | None, str]:
    """An in-service instance of the endpoint, waking a variant from zero and waiting for it if needed."""
    from studio.endpoints.services import endpoint_variant_wake

    endpoint = invocation.endpoint
    deadline = time.monotonic() + WAKE_TIMEOUT_SECONDS
    woken = -1e9
    while True:
        routes = _routes(endpoint.id)
        variant_id, url = _pick(routes)
        if url:
            return variant_id, url
        if time.monotonic() - woken > 30:
            variants = [v for v in routes.get("variants", []) if float(v.get("weight") or 0) > 0]
            ids = [v["id"] for v in variants] or list(
                endpoint.variants.filter(retired=False).order_by("position", "id").values_list("id", flat=True))
            if not ids:
                raise InvocationFailed(f"Endpoint '{endpoint.name}' has no variant to send the records to.")
            weights = [float(v.get("weight") or 1) for v in variants] or [1.0] * len(ids)
            endpoint_variant_wake(variant_id=random.choices(ids, weights=weights)[0])
            woken = time.monotonic()
        if time.monotonic() > deadline:
            raise InvocationFailed(f"No instance of endpoint '{endpoint.name}' came into service within "
                                   f"{WAKE_TIMEOUT_SECONDS:.0f} s.")
        _touch(invocation)
        time.sleep(WAKE_POLL_SECONDS)


class _Client:
    """One keep-alive HTTP connection to an instance, re-made when the instance changes or fails."""

    def __init__(self) -> None:
        self.url = ""
        self.connection: http.client.HTTPConnection | None = None

    def post(self, url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        if url != self.url or self.connection is None:
            self.close()
            parts = urlsplit(url)
            self.connection = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                                         timeout=REQUEST_TIMEOUT_SECONDS)
            self.url = url
        try:
            self.connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def _detail(body: bytes) -> str:
    try:
        return str(json.loads(body).get("detail") or body[:500].decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return body[:500].decode("utf-8", "replace")


def _predict(invocation: AsyncInvocation, client: _Client, batch: Batch, state: dict[str, Any]) -> list[Any]:
    """The predictions of one batch, retrying another instance on transport errors and overload."""
    problem = ""
    for attempt in range(INSTANCE_TRIES):
        if state.get("url") is None or attempt:
            state["variant"], state["url"] = _instance(invocation)
        try:
            status, body = client.post(state["url"], batch.body, batch.content_type)
        except (OSError, http.client.HTTPException) as exc:
            problem = f"the instance at {state['url']} could not be reached ({exc})"
            time.sleep(min(2.0 ** attempt, 5.0))
            continue
        if status == 200:
            try:
                predictions = json.loads(body)["predictions"]
            except (ValueError, KeyError, TypeError):
                raise InvocationFailed(f"{batch.record_range}: the instance answered something other than "
                                       '{"predictions": [...]}') from None
            if len(predictions) != batch.count:
                raise InvocationFailed(f"{batch.record_range}: the instance answered {len(predictions)} predictions "
                                       f"for {batch.count} records.")
            return predictions
        if status in RETRY_STATUSES:
            problem = f"the instance answered HTTP {status}: {_detail(body)}"
            time.sleep(min(2.0 ** attempt, 5.0))
            continue
        raise InvocationFailed(f"{batch.record_range}: {_detail(body)}")
    raise InvocationFailed(f"{batch.record_range}: {problem} ({INSTANCE_TRIES} tries).")


def _input_names(endpoint: Endpoint) -> list[str]:
    variant = endpoint.variants.filter(retired=False).select_related("model").order_by("position", "id").first()
    if variant is None:
        return []
    from studio.endpoints.transform_runner import _text_model

    return ["text"] if _text_model(variant.model) else list(variant.model.feature_names or [])


def _variant_id(state: dict[str, Any]) -> int | None:
    """The variant that answered, if it still exists (routes may name one removed meanwhile)."""
    variant_id = state.get("variant")
    return variant_id if variant_id and EndpointVariant.objects.filter(id=variant_id).exists() else None


def async_invocation_run(*, invocation_id: Any) -> str:
    """Claim a queued invocation and predict every record of its input, writing JSON lines in input order.

    Batches of records (under BATCH_MAX_BYTES and BATCH_MAX_RECORDS) go to an in-service instance of the
    endpoint, woken from zero if there is none; the output is written to a local temporary file as the
    answers come, then stored. An instance's 400 fails the invocation with its message and the records.

    Parameters
    ----------
    invocation_id : UUID or str

    Returns
    -------
    str
        ``completed``, ``failed``, ``not queued`` (nothing to do) or ``lost`` (the reconciler took it over).
    """
    invocation = async_invocation_claim(invocation_id=invocation_id)
    if invocation is None:
        return "not queued"
    endpoint = invocation.endpoint
    output_name = input_prefix(endpoint=endpoint, invocation_id=invocation.id) + "output.jsonl"
    client = _Client()
    state: dict[str, Any] = {"url": None, "variant": None}
    records = 0
    last_beat = time.monotonic()
    try:
        source = invocation.input_dataset.file if invocation.input_dataset_id else invocation.input_file
        if not source:
            raise InvocationFailed("the input dataset was deleted before the invocation ran.")
        with tempfile.TemporaryFile() as out, storage_open(source) as fh:
            for batch in _batches(invocation, fh, input_names=_input_names(endpoint)):
                for prediction in _predict(invocation, client, batch, state):
                    out.write(json.dumps(prediction, separators=(",", ":")).encode() + b"\n")
                records += batch.count
                if time.monotonic() - last_beat > HEARTBEAT_EVERY_SECONDS:
                    _touch(invocation)
                    last_beat = time.monotonic()
            if records == 0:
                raise InvocationFailed("the input has no records.")
            _touch(invocation)
            storage_delete(output_name)  # a re-run writes the same name, not a suffixed copy
            out.seek(0)
            stored = default_storage.save(output_name, File(out, name="output.jsonl"))
    except InvocationLost:
        return "lost"
    except InvocationFailed as exc:
        _finish(invocation, status=AsyncStatus.FAILED, failure_reason=str(exc), records=records or None,
                variant_id=_variant_id(state))
        return "failed"
    except OSError as exc:
        _finish(invocation, status=AsyncStatus.FAILED, failure_reason=f"Could not read or write the files: {exc}",
                variant_id=_variant_id(state))
        return "failed"
    except (DatabaseError, InterfaceError):
        raise  # the task retries; the reconciler re-queues the invocation if the worker cannot come back
    except Exception as exc:
        logger.exception("async invocation %s failed", invocation.id)
        _finish(invocation, status=AsyncStatus.FAILED, failure_reason=f"Internal error: {type(exc).__name__}: {exc}",
                variant_id=_variant_id(state))
        return "failed"
    finally:
        client.close()
    if not _finish(invocation, status=AsyncStatus.COMPLETED, records=records, output_file=stored,
                   variant_id=_variant_id(state)):
        storage_delete(stored)
        return "lost"
    return "completed"
