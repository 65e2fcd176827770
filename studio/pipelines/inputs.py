"""What a step runs with: its refs replaced by values, object names turned into ids, and its cache key.

The cache key stands for everything the outputs depend on: the step type and the resolved arguments, with
each dataset id replaced by the dataset's content hash (models are immutable, so their ids stand for
their content).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from studio.pipelines.definition import CACHE_DEFAULTS, Ref, is_ref, parse_ref
from studio.pipelines.models import PipelineExecution, PipelineStep, StepStatus
from studio.pipelines.steps.base import OBJECT_KINDS, StepFailed

if TYPE_CHECKING:
    from studio.accounts.models import Project
    from studio.pipelines.steps.base import StepKind

# Earlier runs looked at for one cache key (newest first) before giving up on reuse.
CACHE_CANDIDATES = 20


def _object_lookup(kind: str):
    from studio.datasets.models import Dataset
    from studio.endpoints.models import Endpoint
    from studio.registry.models import Model, ModelVersion

    return {
        "dataset": (Dataset, "project"), "model": (Model, "project"), "endpoint": (Endpoint, "project"),
        "model_version": (ModelVersion, "group__project"),
    }[kind]


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def object_resolve(*, project: Project, kind: str, value: Any) -> str:
    """An object argument (id or name in the project) → its id; StepFailed naming it when there is none.

    Names: datasets and endpoints are unique by name; a model name means the newest model of that name;
    a model version is its id or ``<group>:<version>``.
    """
    model, scope = _object_lookup(kind)
    rows = model.objects.filter(**{scope: project})
    found = None
    if kind == "model_version":
        text = str(value).strip()
        if text.isdigit():
            found = rows.filter(id=int(text)).first()
        elif ":" in text:
            group, _, number = text.rpartition(":")
            if number.isdigit():
                found = rows.filter(group__name=group, version=int(number)).first()
    else:
        if _is_uuid(value):
            found = rows.filter(id=value).first()
        if found is None and isinstance(value, str):
            found = rows.filter(name=value).order_by("-created_at").first()
    if found is None:
        label = kind.replace("_", " ")
        raise StepFailed(f"No {label} '{value}' in this project.")
    return str(found.id)


def _ref_value(ref: Ref, *, execution: PipelineExecution, steps: dict[str, PipelineStep]) -> Any:
    if ref.source == "parameters":
        if ref.name not in execution.parameters:
            raise StepFailed(f"The run has no parameter '{ref.name}'.")
        return execution.parameters[ref.name]
    source = steps.get(ref.name)
    if source is None:
        raise StepFailed(f"No step '{ref.name}' in this execution ({ref}).")
    outputs = source.outputs or {}
    if ref.output not in outputs:
        known = ", ".join(sorted(outputs)) or "none"
        raise StepFailed(f"Step '{ref.name}' gave no output '{ref.output}' (its outputs: {known}).")
    if not ref.metric:
        return outputs[ref.output]
    metrics = outputs.get("metrics") if isinstance(outputs.get("metrics"), dict) else {}
    if ref.metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise StepFailed(f"Step '{ref.name}' has no metric '{ref.metric}' (its metrics: {known}).")
    return metrics[ref.metric]


def _substitute(value: Any, *, execution: PipelineExecution, steps: dict[str, PipelineStep]) -> Any:
    if is_ref(value):
        try:
            ref = parse_ref(value)
        except ValueError as exc:
            raise StepFailed(str(exc)) from None
        return _ref_value(ref, execution=execution, steps=steps)
    if isinstance(value, dict):
        return {key: _substitute(item, execution=execution, steps=steps) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, execution=execution, steps=steps) for item in value]
    return value


def arguments_resolve(*, kind: StepKind, spec: dict[str, Any], execution: PipelineExecution,
                      steps: dict[str, PipelineStep]) -> dict[str, Any]:
    """The step's arguments with every ref replaced by its value and object arguments turned into ids."""
    arguments = _substitute(spec.get("arguments") or {}, execution=execution, steps=steps)
    for name, arg in kind.arguments.items():
        value = arguments.get(name)
        if arg.kind in OBJECT_KINDS and value not in (None, ""):
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise StepFailed(f"{name} must be a {arg.kind.replace('_', ' ')} id or name (got {value!r:.60}).")
            try:
                arguments[name] = object_resolve(project=execution.project, kind=arg.kind, value=value)
            except StepFailed as exc:
                raise StepFailed(f"{name}: {exc.message}") from None
    return arguments


def cache_key(*, project: Project, step_type: str, arguments: dict[str, Any]) -> str:
    """sha256 of the type and arguments, each dataset id replaced by the dataset's content hash.

    Models are immutable, so their ids stand for their content; a dataset uploaded again under a new id
    with the same bytes hits the cache, and one whose content differs misses it.
    """
    from studio.datasets.models import Dataset

    ids: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str) and _is_uuid(value):
            ids.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(arguments)
    hashes = {str(pk): sha for pk, sha in Dataset.objects.filter(project=project, id__in=ids)
              .values_list("id", "sha256")} if ids else {}

    def canonical(value: Any) -> Any:
        if isinstance(value, str) and str(value) in hashes:
            return {"dataset_sha256": hashes[value] or f"id:{value}"}
        if isinstance(value, dict):
            return {str(key): canonical(item) for key, item in value.items()}
        if isinstance(value, list):
            return [canonical(item) for item in value]
        return value

    payload = json.dumps({"type": step_type, "arguments": canonical(arguments)}, sort_keys=True,
                         separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _outputs_exist(*, project: Project, kind: StepKind, spec: dict[str, Any], outputs: dict[str, Any]) -> bool:
    try:
        kinds = dict(kind.output_kinds(spec.get("arguments") or {}))
    except Exception:
        kinds = dict(kind.outputs)
    for name, output_kind in kinds.items():
        value = outputs.get(name)
        if output_kind not in OBJECT_KINDS or value in (None, ""):
            continue
        model, scope = _object_lookup(output_kind)
        try:
            if not model.objects.filter(**{scope: project, "id": value}).exists():
                return False
        except (ValueError, TypeError, ValidationError):
            return False
    return True


def cache_hit(*, execution: PipelineExecution, kind: StepKind, spec: dict[str, Any], key: str,
               now: datetime) -> PipelineStep | None:
    cache = {**CACHE_DEFAULTS, **(spec.get("cache") or {})}
    since = now - timedelta(seconds=int(cache["expire_after_seconds"]))
    candidates = (PipelineStep.objects.filter(cache_key=key, status=StepStatus.COMPLETED, cached=False,
                                              execution__project_id=execution.project_id, ended_at__gte=since)
                  .order_by("-ended_at")[:CACHE_CANDIDATES])
    for candidate in candidates:
        if _outputs_exist(project=execution.project, kind=kind, spec=spec, outputs=candidate.outputs or {}):
            return candidate
    return None
