"""``Studio`` (a connection to one server as one user) and ``Project`` (where datasets, jobs and endpoints live)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from studio.client.http import DEFAULT_TIMEOUT, HttpClient, StudioError
from studio.client.resources import (
    Collection,
    Dataset,
    Datasets,
    Endpoint,
    Model,
    ModelGroups,
    Pipelines,
    TrainingJob,
    TransformJob,
    TuningJob,
    invoke,
    is_uuid,
    ref_id,
)


def config_path() -> Path:
    """Where `studio login` keeps the URL and token: $XDG_CONFIG_HOME/studio/config.json (~/.config by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "studio" / "config.json"


def read_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StudioError(f"Cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def write_config(values: dict[str, Any], path: Path | None = None) -> Path:
    """Write the config readable by its owner only (0600): it holds a token."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out, indent=2)
        out.write("\n")
    os.chmod(tmp, 0o600)  # the mode of os.open is only used when the file is new
    os.replace(tmp, path)
    return path


class Studio:
    """A connection to a Studio server.

    ``Studio(url, token)``; either may come from the environment (STUDIO_URL, STUDIO_TOKEN) or from what
    ``studio login`` saved. ``project`` (or STUDIO_PROJECT) picks the project that ``studio.datasets``,
    ``studio.train(...)`` and the other project shortcuts use.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, project: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        saved: dict[str, Any] = {}
        if not (url or os.environ.get("STUDIO_URL")) or not (token or os.environ.get("STUDIO_TOKEN")):
            saved = read_config()
        url = url or os.environ.get("STUDIO_URL") or saved.get("url")
        token = token or os.environ.get("STUDIO_TOKEN") or saved.get("token")
        self.http = HttpClient(url or "", token, timeout=timeout)
        self._default_project = project or os.environ.get("STUDIO_PROJECT") or saved.get("project")
        self._project: Project | None = None
        self.projects = Projects(self)

    @property
    def url(self) -> str:
        return self.http.base_url

    def __repr__(self) -> str:
        return f"<Studio {self.url}>"

    def me(self) -> dict[str, Any]:
        """``{id, username, teams: [{slug, name, role}]}``: also a quick check that the token works."""
        return self.http.get("me")

    def teams(self) -> list[dict[str, Any]]:
        return list(self.http.paginate("teams"))

    def create_team(self, name: str) -> dict[str, Any]:
        return self.http.post("teams", {"name": name})

    def algorithms(self) -> list[dict[str, Any]]:
        return list(self.http.paginate("algorithms"))

    def project(self, id_or_name: Any) -> Project:
        """A project by id, name, slug or ``team/name``."""
        return self.projects.get(id_or_name)

    def use(self, project: Any) -> Project:
        """Make ``project`` the one the shortcuts below act on."""
        self._project = project if isinstance(project, Project) else self.project(project)
        return self._project

    @property
    def default_project(self) -> Project:
        if self._project is None:
            if not self._default_project:
                raise StudioError("No project chosen: pass Studio(..., project=...), set STUDIO_PROJECT, "
                                  "or call studio.use(project).")
            self._project = self.project(self._default_project)
        return self._project

    def invoke(self, endpoint: Any, data: Any, content_type: str | None = None, *, key: str | None = None,
               target_variant: str | None = None) -> dict[str, Any]:
        """Invoke an endpoint by id, with the token or an invoke key, without reading the endpoint first."""
        url = self.http.url_for(f"endpoints/{ref_id(endpoint)}/invocations")
        return invoke(self.http, url, data, content_type=content_type, key=key, target_variant=target_variant)

    # --- shortcuts to the default project, as the sagemaker SDK's session has them ---------------

    @property
    def datasets(self) -> Datasets:
        return self.default_project.datasets

    @property
    def training_jobs(self) -> Collection:
        return self.default_project.training_jobs

    @property
    def tuning_jobs(self) -> Collection:
        return self.default_project.tuning_jobs

    @property
    def models(self) -> Collection:
        return self.default_project.models

    @property
    def model_groups(self) -> ModelGroups:
        return self.default_project.model_groups

    @property
    def endpoints(self) -> Collection:
        return self.default_project.endpoints

    @property
    def transform_jobs(self) -> Collection:
        return self.default_project.transform_jobs

    @property
    def pipelines(self) -> Pipelines:
        return self.default_project.pipelines

    def train(self, algorithm: str, dataset: Any, **kwargs: Any) -> TrainingJob:
        return self.default_project.train(algorithm, dataset, **kwargs)

    def tune(self, algorithm: str, dataset: Any, **kwargs: Any) -> TuningJob:
        return self.default_project.tune(algorithm, dataset, **kwargs)

    def transform(self, model: Any, dataset: Any, **kwargs: Any) -> TransformJob:
        return self.default_project.transform(model, dataset, **kwargs)


class Projects:
    def __init__(self, studio: Studio) -> None:
        self._studio = studio

    def list(self, team: str | None = None) -> list[Project]:
        found = self._studio.http.paginate("projects", params={"team": team} if team else None)
        return [Project(self._studio, d) for d in found]

    def create(self, team: str, name: str, description: str = "") -> Project:
        """A new project in ``team`` (its slug)."""
        data = self._studio.http.post("projects", {"team": team, "name": name, "description": description})
        return Project(self._studio, data)

    def get(self, id_or_name: Any) -> Project:
        if isinstance(id_or_name, Project):
            return id_or_name
        key = ref_id(id_or_name)
        if is_uuid(key):
            return Project(self._studio, self._studio.http.get(f"projects/{key}"))
        team, _, wanted = key.rpartition("/")
        matches = [p for p in self.list(team=team or None) if wanted in (p.data.get("name"), p.data.get("slug"))]
        if not matches:
            raise StudioError(f"No project '{key}' (or it is not visible to you).", status=404)
        if len(matches) > 1:
            names = ", ".join(f"{p.team}/{p.slug}" for p in matches)
            raise StudioError(f"Several projects are named '{key}': {names}. Say which as team/name or by id.",
                              status=409)
        return matches[0]


class Project:
    """One project: its datasets, jobs, models, endpoints and pipelines."""

    def __init__(self, studio: Studio, data: dict[str, Any]) -> None:
        self.studio = studio
        self.data = data
        self.datasets = Datasets(self)
        self.training_jobs = Collection(self, TrainingJob)
        self.tuning_jobs = Collection(self, TuningJob)
        self.models = Collection(self, Model)
        self.model_groups = ModelGroups(self)
        self.endpoints = Collection(self, Endpoint)
        self.transform_jobs = Collection(self, TransformJob)
        self.pipelines = Pipelines(self)

    @property
    def http(self) -> HttpClient:
        return self.studio.http

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str:
        return str(self.data.get("name", self.id))

    @property
    def slug(self) -> str:
        return str(self.data.get("slug", ""))

    @property
    def team(self) -> str:
        return str(self.data.get("team", ""))

    def __repr__(self) -> str:
        return f"<Project {self.team}/{self.name} id={self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Project) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def refresh(self) -> Project:
        self.data = self.http.get(f"projects/{self.id}")
        return self

    def algorithms(self) -> list[dict[str, Any]]:
        return list(self.http.paginate(f"projects/{self.id}/algorithms"))

    def _dataset_id(self, dataset: Any) -> str | None:
        return None if dataset is None else self.datasets.id_of(dataset)

    def train(self, algorithm: str, dataset: Dataset | str, *, target: str | None = None,
              hyperparameters: dict[str, Any] | None = None, name: str | None = None,
              validation_dataset: Dataset | str | None = None, validation_fraction: float | None = None,
              max_runtime_seconds: int | None = None, wait: bool = False, logs: bool = False,
              **fields: Any) -> TrainingJob:
        """Start a training job (datasets by object, id or name). Other API fields go in ``fields``
        (``missing_values=...``, ``debugger_rules=[...]``). ``wait`` blocks until it ends, ``logs`` prints them."""
        body: dict[str, Any] = {"algorithm": algorithm, "dataset": self._dataset_id(dataset),
                                "hyperparameters": hyperparameters or {}}
        optional = {"name": name, "target": target, "validation_dataset": self._dataset_id(validation_dataset),
                    "validation_fraction": validation_fraction, "max_runtime_seconds": max_runtime_seconds}
        body.update({k: v for k, v in {**optional, **fields}.items() if v is not None})
        job = self.training_jobs.create(body)
        return job.wait(logs=logs) if wait or logs else job

    def tune(self, algorithm: str, dataset: Dataset | str, *, target: str | None = None,
             objective: str | dict[str, Any] | None = None, ranges: dict[str, Any] | None = None,
             strategy: str | None = None, max_jobs: int | None = None, max_parallel_jobs: int | None = None,
             autotune: bool = False, static_hyperparameters: dict[str, Any] | None = None,
             validation_fraction: float | None = None, validation_dataset: Dataset | str | None = None,
             early_stopping: str | None = None, name: str | None = None, wait: bool = False,
             **fields: Any) -> TuningJob:
        """Start a tuning job. ``objective`` is a metric name (its goal is the metric's direction) or
        ``{"metric", "goal"}``; ``ranges`` as in the API (``{"learning_rate": {"type": "continuous", ...}}``)."""
        if isinstance(objective, str):
            objective = {"metric": objective}
        body: dict[str, Any] = {"algorithm": algorithm, "dataset": self._dataset_id(dataset), "autotune": autotune}
        optional = {"name": name, "target": target, "objective": objective, "ranges": ranges, "strategy": strategy,
                    "max_jobs": max_jobs, "max_parallel_jobs": max_parallel_jobs,
                    "static_hyperparameters": static_hyperparameters, "validation_fraction": validation_fraction,
                    "validation_dataset": self._dataset_id(validation_dataset), "early_stopping": early_stopping}
        body.update({k: v for k, v in {**optional, **fields}.items() if v is not None})
        job = self.tuning_jobs.create(body)
        return job.wait() if wait else job

    def transform(self, model: Model | str, dataset: Dataset | str, *, name: str | None = None,
                  wait: bool = False, **fields: Any) -> TransformJob:
        """Batch transform: every record of ``dataset`` through ``model``. ``fields``: split_type,
        batch_strategy, max_payload_mb, max_concurrent, input_filter, join_source, output_filter."""
        body: dict[str, Any] = {"model": self.models.id_of(model), "input_dataset": self._dataset_id(dataset)}
        body.update({k: v for k, v in {"name": name, **fields}.items() if v is not None})
        job = self.transform_jobs.create(body)
        return job.wait() if wait else job
