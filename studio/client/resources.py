"""Objects of the Studio client: each wraps one API object (its JSON in ``.data``) and the calls that act on it.

Fields of the JSON are attributes too (``job.status``, ``job.final_metrics``), so new server fields need no
client change. ``refresh()`` reads the object again; ``wait()`` polls until a final status.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from studio.client.http import HttpClient, JobFailed, StudioError

if TYPE_CHECKING:
    from typing import Self

    from studio.client.session import Project

JOB_FINAL = ("completed", "failed", "stopped")
# Polling starts quick (a small job may finish in a second) and slows to ``poll`` seconds between reads.
FIRST_POLL = 0.25
POLL_GROWTH = 1.5


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def ref_id(value: Any) -> str:
    """The id of a resource object, or the value itself when it already is an id."""
    if isinstance(value, Resource):
        return value.id
    if isinstance(value, dict) and "id" in value:
        return str(value["id"])
    return str(value)


class Resource:
    """One API object. ``path`` is its address under /api/v1, set by each kind from the project and id."""

    kind: ClassVar[str] = "object"
    collection: ClassVar[str] = ""

    def __init__(self, project: Project, data: dict[str, Any]) -> None:
        self._project = project
        self.data = data

    @property
    def http(self) -> HttpClient:
        return self._project.http

    @property
    def project(self) -> Project:
        return self._project

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.id)

    @property
    def path(self) -> str:
        return f"projects/{self._project.id}/{self.collection}/{self.id}"

    def __getattr__(self, item: str) -> Any:
        # Only reached for names that are not real attributes: the JSON fields of the object.
        data = self.__dict__.get("data")
        if data is not None and item in data:
            return data[item]
        raise AttributeError(f"{type(self).__name__} has no attribute or field '{item}'")

    def __getitem__(self, item: str) -> Any:
        return self.data[item]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.id == self.id

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))

    def __repr__(self) -> str:
        status = f" status={self.data['status']}" if "status" in self.data else ""
        return f"<{type(self).__name__} {self.name!r} id={self.id}{status}>"

    def refresh(self) -> Resource:
        self.data = self.http.get(self.path)
        return self

    def delete(self) -> None:
        self.http.delete(self.path)

    def _poll(self, done: Callable[[], bool], *, timeout: float | None, poll: float, what: str,
              on_tick: Callable[[], None] | None = None) -> None:
        """Refresh until ``done()``; ``on_tick`` runs after every read (log printing)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(FIRST_POLL, poll)
        while True:
            self.refresh()
            if on_tick is not None:
                on_tick()
            if done():
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise StudioError(f"{what} {self.name!r} is still {self.data.get('status')} after {timeout:g}s.")
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, poll)

    def _raise_if_unsuccessful(self) -> None:
        status = self.data.get("status")
        if status in ("failed", "stopped"):
            reason = self.data.get("failure_reason") or self.data.get("status_message") or ""
            raise JobFailed(f"{type(self).__name__} {self.name!r} {status}" + (f": {reason}" if reason else "."),
                            resource=self)


class Dataset(Resource):
    kind = "dataset"
    collection = "datasets"

    def preview(self, rows: int = 50) -> dict[str, Any]:
        return self.http.get(f"{self.path}/preview", params={"rows": rows})

    def download(self, destination: str | Path) -> Path:
        """Save the original file; ``destination`` may be a folder (the file keeps its name)."""
        target = Path(destination)
        if target.is_dir():
            target = target / (self.data.get("original_filename") or f"{self.name}.csv")
        return self.http.download(f"{self.path}/download", target)


class _Job(Resource):
    """An object that runs to a final status: training, tuning and transform jobs, pipeline executions."""

    # The final statuses wait() raises JobFailed on (unless raise_on_failure is False).
    unsuccessful: ClassVar[tuple[str, ...]] = ("failed", "stopped")

    @property
    def status(self) -> str:
        return str(self.data.get("status"))

    def stop(self) -> Self:
        self.data = self.http.post(f"{self.path}/stop")
        return self

    def wait(self, *, timeout: float | None = None, poll: float = 2.0, raise_on_failure: bool = True) -> Self:
        self._poll(lambda: self.status in JOB_FINAL, timeout=timeout, poll=poll, what=self.kind.capitalize())
        if raise_on_failure and self.status in self.unsuccessful:
            self._raise_if_unsuccessful()
        return self


class TrainingJob(_Job):
    kind = "training job"
    collection = "training-jobs"

    def __init__(self, project: Project, data: dict[str, Any]) -> None:
        super().__init__(project, data)
        self._log_offset = 0  # characters of the log already printed by wait(logs=True)

    def logs(self) -> str:
        return self.http.get(f"{self.path}/logs") or ""

    def new_logs(self) -> str:
        """The log text written since the last call (whole lines only)."""
        text = self.logs()
        end = text.rfind("\n", self._log_offset) + 1
        if end <= self._log_offset:
            return ""
        fresh = text[self._log_offset:end]
        self._log_offset = end
        return fresh

    def metrics(self) -> dict[str, list[list[float]]]:
        """``{"train:loss": [[step, value, unix_ts], ...], ...}``."""
        return self.http.get(f"{self.path}/metrics")["series"]

    def wait(self, *, logs: bool = False, timeout: float | None = None, poll: float = 2.0,
             out: IO[str] | None = None, raise_on_failure: bool = True) -> TrainingJob:
        """Poll until the job completes; with ``logs`` print new log lines as they come. A failed or stopped
        job raises JobFailed (with the reason) unless ``raise_on_failure`` is False."""
        stream = out if out is not None else sys.stdout

        def print_logs() -> None:
            if logs and (fresh := self.new_logs()):
                stream.write(fresh)
                stream.flush()

        self._poll(lambda: self.status in JOB_FINAL, timeout=timeout, poll=poll, what="Training job",
                   on_tick=print_logs)
        print_logs()  # lines written between the last read of the log and the final status
        if raise_on_failure:
            self._raise_if_unsuccessful()
        return self

    @property
    def model(self) -> Model | None:
        """The model a completed job made (None before it completes)."""
        model_id = self.data.get("model")
        if not model_id and self.status not in JOB_FINAL:
            self.refresh()
            model_id = self.data.get("model")
        return self._project.models.get(model_id) if model_id else None


class TuningJob(_Job):
    kind = "tuning job"
    collection = "tuning-jobs"
    unsuccessful = ("failed",)

    def trials(self) -> list[dict[str, Any]]:
        return list(self.http.paginate(f"{self.path}/trials"))

    @property
    def best_training_job(self) -> TrainingJob | None:
        best = self.data.get("best_training_job")
        return self._project.training_jobs.get(best["id"]) if best else None


class Model(Resource):
    kind = "model"
    collection = "models"

    def register(self, group: str | ModelGroup, *, description: str = "", approve: bool = False) -> ModelVersion:
        """Add this model as the next version of a model group (made when no group has that name)."""
        if not isinstance(group, ModelGroup):
            group = self._project.model_groups.get_or_create(group)
        version = group.add_version(self, description=description)
        return version.approve() if approve else version

    def deploy(self, name: str | None = None, *, type: str = "realtime", instance_count: int = 1,
               max_instances: int | None = None, variant: str = "primary", serverless: dict[str, Any] | None = None,
               autoscaling: dict[str, Any] | None = None, wait: bool = False,
               timeout: float | None = None) -> Endpoint:
        """Serve the model on a new endpoint. Real-time keeps ``instance_count`` instances up; serverless
        scales from zero to ``instance_count`` (or ``max_instances``)."""
        low = 0 if type in ("serverless", "async") else instance_count
        high = max_instances or max(instance_count, 1)
        body: dict[str, Any] = {
            "name": name or endpoint_name_for(self.name), "type": type,
            "variants": [{"name": variant, "model": self.id, "weight": 1.0, "min_instances": low,
                          "max_instances": high}],
        }
        if serverless is not None:
            body["serverless"] = serverless
        if autoscaling is not None:
            body["autoscaling"] = autoscaling
        endpoint = self._project.endpoints.create(body)
        return endpoint.wait(timeout=timeout) if wait else endpoint

    def download(self, destination: str | Path) -> Path:
        target = Path(destination)
        if target.is_dir():
            target = target / f"{self.name}.zip"
        return self.http.download(f"{self.path}/download", target)


def endpoint_name_for(model_name: str) -> str:
    """A valid endpoint name (letters, digits, ``.-_``) from a model's name."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-._") or "model"
    return f"{base[:180]}-endpoint"


class ModelGroup(Resource):
    kind = "model group"
    collection = "model-groups"

    def add_version(self, model: Model | str, *, description: str = "") -> ModelVersion:
        data = self.http.post(f"{self.path}/versions", {"model": ref_id(model), "description": description})
        return ModelVersion(self._project, data)

    def versions(self) -> list[ModelVersion]:
        return [ModelVersion(self._project, d) for d in self.http.paginate(f"{self.path}/versions")]

    def version(self, number: int) -> ModelVersion:
        return ModelVersion(self._project, self.http.get(f"{self.path}/versions/{int(number)}"))


class ModelVersion(Resource):
    """Version ``number`` of a model group; its model is ``.model``."""

    kind = "model version"

    @property
    def id(self) -> str:
        return f"{self.data['group']}/{self.data['version']}"

    @property
    def name(self) -> str:
        return f"{self.data.get('model_name', '')} v{self.data['version']}"

    @property
    def number(self) -> int:
        return int(self.data["version"])

    @property
    def path(self) -> str:
        return f"projects/{self._project.id}/model-groups/{self.data['group']}/versions/{self.number}"

    def _set(self, **fields: Any) -> ModelVersion:
        self.data = self.http.patch(self.path, fields)
        return self

    def approve(self) -> ModelVersion:
        return self._set(approval_status="approved")

    def reject(self) -> ModelVersion:
        return self._set(approval_status="rejected")

    @property
    def model(self) -> Model:
        return self._project.models.get(self.data["model"])

    def deploy(self, name: str | None = None, **kwargs: Any) -> Endpoint:
        return self.model.deploy(name, **kwargs)


class Endpoint(Resource):
    kind = "endpoint"
    collection = "endpoints"

    def __init__(self, project: Project, data: dict[str, Any], *, key: str | None = None) -> None:
        super().__init__(project, data)
        self.key = key  # an invoke key: sent as X-Api-Key instead of the user's token

    @property
    def status(self) -> str:
        return str(self.data.get("status"))

    @property
    def invocation_url(self) -> str:
        return str(self.data.get("invocation_url") or self.http.url_for(f"endpoints/{self.id}/invocations"))

    def wait(self, *, timeout: float | None = 300, poll: float = 1.0) -> Endpoint:
        """Poll until the endpoint is in service; a failed endpoint raises JobFailed with the reason."""
        self._poll(lambda: self.status in ("in_service", "failed"), timeout=timeout, poll=poll, what="Endpoint")
        if self.status == "failed":
            self._raise_if_unsuccessful()
        return self

    def predict(self, data: Any, content_type: str | None = None, *, target_variant: str | None = None,
                key: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Invoke the endpoint: rows (a list) are sent as ``{"instances": rows}``, a dict as it is, str/bytes
        as they are (say ``content_type="text/csv"`` for CSV). Returns ``{"predictions": [...], "variant"}``."""
        return invoke(self.http, self.invocation_url, data, content_type=content_type,
                      target_variant=target_variant, key=key or self.key, timeout=timeout)

    def update(self, **fields: Any) -> Endpoint:
        """PATCH variants, serverless, autoscaling or async settings."""
        self.data = self.http.patch(self.path, fields)
        return self

    def instances(self) -> list[dict[str, Any]]:
        return list(self.http.paginate(f"{self.path}/instances"))

    def endpoint_metrics(self) -> dict[str, Any]:
        return self.http.get(f"{self.path}/metrics")

    def create_key(self, name: str = "") -> str:
        """A new invoke key for this endpoint; the secret is returned once, keep it."""
        return str(self.http.post(f"{self.path}/keys", {"name": name})["key"])

    def delete(self, *, wait: bool = False, timeout: float | None = 120) -> None:
        """Stop the endpoint's instances and remove it. With ``wait``, return once no instance is left running
        (the row itself goes at the server's next reconcile pass, and meanwhile reads as ``deleting``)."""
        self.http.delete(self.path)
        if not wait:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = FIRST_POLL
        while True:
            try:
                self.refresh()
                if self.status == "deleting" and not any(
                        i.get("status") not in ("stopped", "failed") for i in self.instances()):
                    return
            except StudioError as exc:
                if exc.status == 404:
                    return
                raise
            if deadline is not None and time.monotonic() >= deadline:
                raise StudioError(f"Endpoint {self.name!r} is still {self.status} after {timeout:g}s.")
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, 1.0)


def invoke(http: HttpClient, url: str, data: Any, *, content_type: str | None = None,
           target_variant: str | None = None, key: str | None = None, timeout: float | None = None
           ) -> dict[str, Any]:
    headers: dict[str, str] = {}
    if target_variant:
        headers["X-Target-Variant"] = target_variant
    if key:
        headers["X-Api-Key"] = key
    if isinstance(data, bytes | str):
        body = data.encode() if isinstance(data, str) else data
        ctype = content_type or ("application/json" if body.lstrip()[:1] in (b"{", b"[") else "text/csv")
        return http.request("POST", url, data=body, content_type=ctype, headers=headers, auth=not key,
                            timeout=timeout)
    if isinstance(data, list | tuple) or hasattr(data, "tolist"):
        data = {"instances": data}
    if not isinstance(data, dict):
        raise StudioError(f"predict takes rows (a list), a dict, str or bytes, not {type(data).__name__}.")
    return http.request("POST", url, json_body=data, headers=headers, auth=not key, timeout=timeout)


class TransformJob(_Job):
    kind = "transform job"
    collection = "transform-jobs"

    @property
    def output_dataset(self) -> Dataset | None:
        found = self.data.get("output_dataset")
        return self._project.datasets.get(found) if found else None


class Pipeline(Resource):
    kind = "pipeline"
    collection = "pipelines"

    def start(self, parameters: dict[str, Any] | None = None, *, wait: bool = False,
              timeout: float | None = None) -> Execution:
        """Run the pipeline; ``parameters`` override the definition's defaults (datasets by id or name)."""
        body = {"parameters": parameters} if parameters else {}
        execution = Execution(self._project, self.http.post(f"{self.path}/executions", body))
        return execution.wait(timeout=timeout) if wait else execution

    def update(self, **fields: Any) -> Pipeline:
        """PATCH name, description and/or definition."""
        self.data = self.http.patch(self.path, fields)
        return self

    def executions(self, status: str | None = None) -> list[Execution]:
        return [Execution(self._project, d)
                for d in self.http.paginate(f"{self.path}/executions", params={"status": status})]


class Execution(_Job):
    kind = "pipeline execution"
    collection = "pipeline-executions"

    @property
    def name(self) -> str:
        return f"#{self.data.get('number', '?')}"

    @property
    def steps(self) -> dict[str, dict[str, Any]]:
        """Steps by name: ``{"train": {"status", "outputs", ...}}``."""
        return {s["name"]: s for s in self.data.get("steps", [])}

    def retry(self) -> Execution:
        self.data = self.http.post(f"{self.path}/retry")
        return self


class Collection:
    """A project's objects of one kind: list, get by id or name, create."""

    def __init__(self, project: Project, cls: type[Resource]) -> None:
        self._project = project
        self._cls = cls

    @property
    def path(self) -> str:
        return f"projects/{self._project.id}/{self._cls.collection}"

    def _wrap(self, data: dict[str, Any]) -> Any:
        return self._cls(self._project, data)

    def __iter__(self) -> Iterator[Any]:
        return (self._wrap(d) for d in self._project.http.paginate(self.path))

    def list(self, **filters: Any) -> list[Any]:
        return [self._wrap(d) for d in self._project.http.paginate(self.path, params=filters or None)]

    def get(self, id_or_name: Any) -> Any:
        """By id (one request) or by name (a scan of the list); an unknown one is a 404 StudioError."""
        if isinstance(id_or_name, self._cls):
            return id_or_name
        key = ref_id(id_or_name)
        if is_uuid(key):
            return self._wrap(self._project.http.get(f"{self.path}/{key}"))
        for data in self._project.http.paginate(self.path):
            if data.get("name") == key:
                return self._wrap(data)
        raise StudioError(f"No {self._cls.kind} '{key}' in project '{self._project.name}'.", status=404)

    def id_of(self, id_or_name: Any) -> str:
        """An id for a request body: ids pass through (the server checks them), names are looked up."""
        key = ref_id(id_or_name)
        return key if is_uuid(key) else self.get(key).id

    def create(self, body: dict[str, Any]) -> Any:
        return self._wrap(self._project.http.post(self.path, body))


class Datasets(Collection):
    def __init__(self, project: Project) -> None:
        super().__init__(project, Dataset)

    def upload(self, path: str | Path, name: str | None = None, *, kind: str | None = None,
               target: str | None = None, image_size: int | None = None) -> Dataset:
        """Upload a CSV, JSONL, ZIP or NPZ file (streamed, never read whole into memory)."""
        file_path = Path(path)
        if not file_path.is_file():
            raise StudioError(f"No such file: {file_path}")
        fields = {"name": name, "kind": kind, "target": target, "image_size": image_size}
        return Dataset(self._project, self._project.http.upload(self.path, file_path, fields))


class ModelGroups(Collection):
    def __init__(self, project: Project) -> None:
        super().__init__(project, ModelGroup)

    def get_or_create(self, name: str, description: str = "") -> ModelGroup:
        try:
            return self.get(name)
        except StudioError as exc:
            if exc.status != 404:
                raise
        try:
            return self.create({"name": name, "description": description})
        except StudioError as exc:
            if exc.status == 409:  # made by someone else meanwhile
                return self.get(name)
            raise


class Pipelines(Collection):
    def __init__(self, project: Project) -> None:
        super().__init__(project, Pipeline)

    def create(self, name: str | dict[str, Any], definition: dict[str, Any] | None = None, *,  # type: ignore[override]
               description: str = "") -> Pipeline:
        body = name if isinstance(name, dict) else {"name": name, "definition": definition or {},
                                                    "description": description}
        return Pipeline(self._project, self._project.http.post(self.path, body))

    def execution(self, execution_id: str) -> Execution:
        path = f"projects/{self._project.id}/pipeline-executions/{ref_id(execution_id)}"
        return Execution(self._project, self._project.http.get(path))
