"""Every write to models, plus loading and packaging their stored artifacts."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from algorithms import Estimator, UnknownAlgorithm, get_algorithm, load_model
from studio.core.storage import (
    project_storage_prefix,
    storage_delete_prefix,
    storage_fetch_dir,
    storage_open,
    storage_save_dir,
)
from studio.datasets.preprocessing import FILENAME as PREPROCESSING_FILENAME
from studio.datasets.preprocessing import TabularPreprocessor
from studio.registry.models import Model

if TYPE_CHECKING:
    from studio.accounts.models import Project, User
    from studio.training.models import TrainingJob


@dataclass(frozen=True)
class ModelArtifacts:
    prefix: str
    files: list[str]
    size_bytes: int


def model_artifacts_store(*, project: Project, model_id: uuid.UUID, directory: Path) -> ModelArtifacts:
    """Upload a saved model directory (manifest.json + arrays.npz + preprocessing.json) under the project's prefix.

    Done before the database row is written, outside any transaction: an upload can be slow
    and must not hold a database lock. Callers discard the prefix if the row is never written.
    """
    prefix = f"{project_storage_prefix(project_id=project.id)}models/{model_id}/"
    size = sum(path.stat().st_size for path in directory.iterdir() if path.is_file())
    try:
        files = storage_save_dir(prefix=prefix, directory=directory)
    except Exception:
        storage_delete_prefix(prefix)
        raise
    return ModelArtifacts(prefix=prefix, files=files, size_bytes=size)


def model_artifacts_discard(*, artifacts: ModelArtifacts) -> None:
    storage_delete_prefix(artifacts.prefix)


def model_create(
    *,
    project: Project,
    model_id: uuid.UUID,
    name: str,
    algorithm: str,
    artifacts: ModelArtifacts,
    training_job: TrainingJob | None = None,
    hyperparameters: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    feature_names: list[str] | None = None,
    target: str = "",
    created_by: User | None = None,
) -> Model:
    """The registry row of stored artifacts; run it in the caller's transaction (e.g. with the job's completion)."""
    return Model.objects.create(
        id=model_id, project=project, name=name[:200], algorithm=algorithm, training_job=training_job,
        hyperparameters=hyperparameters or {}, metrics=metrics or {}, feature_names=list(feature_names or []),
        target=target, artifact_prefix=artifacts.prefix, artifact_files=artifacts.files,
        size_bytes=artifacts.size_bytes, created_by=created_by,
    )


@contextmanager
def model_local_dir(*, model: Model) -> Iterator[Path]:
    """The model's files in a temporary local directory (works for local and S3 storage)."""
    with storage_fetch_dir(names=list(model.artifact_files)) as directory:
        yield directory


def model_load(*, model: Model) -> Estimator:
    """The fitted estimator of a model; loaded without pickle, so an uploaded file cannot run code."""
    with model_local_dir(model=model) as directory:
        return load_model(directory)


@dataclass
class LoadedModel:
    """A model ready to answer requests: its estimator and the preprocessing fitted with it.

    Load it once (an endpoint instance keeps it) and call :meth:`features` / :meth:`predict` per request.
    """

    estimator: Estimator
    # None for text and image models: they take texts / images as they are, with no tabular features.
    preprocessor: TabularPreprocessor | None

    @property
    def input_names(self) -> list[str]:
        return self.preprocessor.input_names if self.preprocessor is not None else []

    def features(self, rows: Sequence[Mapping[str, Any] | Sequence[Any]]) -> Any:
        """Records (``{column: value}`` or lists in :attr:`input_names` order) -> the model's feature matrix.

        Without a preprocessor (text and image models) the inputs pass through: a list of texts, or
        an image array. Raises :class:`~studio.datasets.preprocessing.InputError` (a ValueError)
        naming the record and column.
        """
        if self.preprocessor is None:
            return list(rows) if getattr(self.estimator, "input", "") == "text" else np.asarray(rows)
        return self.preprocessor.transform_records(rows)

    def predict(self, rows: Sequence[Mapping[str, Any] | Sequence[Any]]) -> np.ndarray:
        """``predict`` of the estimator on the records, or ``transform`` for a model that only projects (PCA)."""
        X = self.features(rows)
        if callable(getattr(self.estimator, "predict", None)):
            try:
                return self.estimator.predict(X)
            except NotImplementedError:
                pass
        return self.estimator.transform(X)


def model_preprocessor(*, directory: Path, model: Model) -> TabularPreprocessor | None:
    """The preprocessing saved with the model; numeric pass-through for tabular models saved before it
    existed; None for text and image models, which never have one."""
    if (directory / PREPROCESSING_FILENAME).exists():
        return TabularPreprocessor.load(directory)
    try:
        media = get_algorithm(model.algorithm).input != "tabular"
    except UnknownAlgorithm:
        media = False
    if media:
        return None
    return TabularPreprocessor.passthrough(model.feature_names or [])


def model_preprocessing(*, model: Model) -> TabularPreprocessor | None:
    """Only the preprocessing of a model (one small JSON file), for pages; None if it has none or it is unreadable."""
    name = next((n for n in model.artifact_files if PurePosixPath(n).name == PREPROCESSING_FILENAME), None)
    if name is None:
        return None
    try:
        with storage_open(name) as fh:
            return TabularPreprocessor.from_json(json.loads(fh.read().decode("utf-8")))
    except (OSError, ValueError):
        return None


def model_load_bundle(*, model: Model) -> LoadedModel:
    """Estimator + preprocessing of a model, fetched once; JSON and npz only, never pickle."""
    with model_local_dir(model=model) as directory:
        return LoadedModel(estimator=load_model(directory),
                           preprocessor=model_preprocessor(directory=directory, model=model))


def model_predict_frame(*, model: Model, rows: Sequence[Mapping[str, Any] | Sequence[Any]],
                        loaded: LoadedModel | None = None) -> np.ndarray:
    """Predictions of ``model`` for request records, preprocessed as the training rows were.

    Pass ``loaded`` (from :func:`model_load_bundle`) to skip fetching the files on every call.
    """
    return (loaded or model_load_bundle(model=model)).predict(rows)


def model_archive(*, model: Model) -> bytes:
    """A zip of the model's files (manifest.json, arrays.npz, preprocessing.json) for download; models are small."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in model.artifact_files:
            with storage_open(name) as fh:
                archive.writestr(PurePosixPath(name).name, fh.read())
    return buffer.getvalue()
