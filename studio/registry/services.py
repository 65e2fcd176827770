"""Every write to models, model groups and versions, plus loading and packaging models' stored artifacts."""

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
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from algorithms import Estimator, UnknownAlgorithm, get_algorithm, load_model
from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict
from studio.core.storage import (
    project_storage_prefix,
    storage_delete,
    storage_delete_prefix,
    storage_fetch_dir,
    storage_open,
    storage_save_dir,
)
from studio.datasets.preprocessing import FILENAME as PREPROCESSING_FILENAME
from studio.datasets.preprocessing import TabularPreprocessor
from studio.registry import selectors
from studio.registry.models import ApprovalStatus, Model, ModelGroup, ModelVersion
from studio.registry.signals import model_version_approved_on_commit

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


# --- deleting a model -------------------------------------------------------------------------


@transaction.atomic
def model_delete(*, user: User, model: Model) -> None:
    """Delete a model and, once the transaction commits, its stored files.

    Raises PermissionDenied below member and Conflict (409) while an endpoint serves the model, a
    pending or running transform job or training job (a Hyperband rung resuming it) reads it, or it
    is a version of a model group. Finished transform jobs keep their record, without the model.
    """
    require_role(user=user, team=model.project.team, role=Role.MEMBER)
    # Lock the row so an endpoint or registration created concurrently (their services lock it too) cannot slip in.
    Model.objects.select_for_update().filter(id=model.id).first()
    if (variant := selectors.model_endpoint_variant(model=model)) is not None:
        raise Conflict(f"model '{model.name}' is used by endpoint '{variant.endpoint.name}' (variant "
                       f"'{variant.name}'); delete the endpoint or point its variant at another model first.")
    if (transform := selectors.model_active_transform_job(model=model)) is not None:
        raise Conflict(f"model '{model.name}' is used by {transform.status} transform job '{transform.name}'; "
                       "stop it or wait for it to end.")
    if (job := selectors.model_resuming_job(model=model)) is not None:
        raise Conflict(f"model '{model.name}' is used by {job.status} training job '{job.name}', which continues "
                       "training from it; stop it or wait for it to end.")
    if (version := selectors.model_versions_of(model=model).first()) is not None:
        raise Conflict(f"model '{model.name}' is version {version.version} of model group '{version.group.name}'; "
                       "delete that version or the group first.")
    model_files_delete_on_commit(model=model)
    audit(actor=user, verb="deleted model", project=model.project, target=model.name, data={"model": str(model.id)})
    model.delete()


def model_files_delete_on_commit(*, model: Model) -> None:
    """Delete the model's stored files once the current transaction commits (a rolled-back delete keeps them)."""
    files, prefix = list(model.artifact_files or []), _own_prefix(model)
    transaction.on_commit(lambda: _delete_model_files(files, prefix))


def _own_prefix(model: Model) -> str:
    """The model's storage folder, if it is one of the project's model folders (never a parent of other objects)."""
    base = f"{project_storage_prefix(project_id=model.project_id)}models/"
    prefix = model.artifact_prefix or ""
    return prefix if prefix.startswith(base) and len(prefix) > len(base) and prefix.endswith("/") else ""


def _delete_model_files(files: list[str], prefix: str) -> None:
    for name in files:
        storage_delete(name)
    if prefix:
        storage_delete_prefix(prefix)


# --- model groups and versions ----------------------------------------------------------------

GROUP_NAME_MAX = 200


def _group_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the model group a name."]})
    if len(name) > GROUP_NAME_MAX:
        raise ValidationError({"name": [f"Model group name must be at most {GROUP_NAME_MAX} characters."]})
    return name


def _group_exists_message(name: str) -> str:
    return f"a model group named '{name}' already exists in this project; choose another name."


@transaction.atomic
def model_group_create(*, user: User, project: Project, name: str, description: str = "") -> ModelGroup:
    """A new, empty model group of ``project``; member+. Conflict (409) when the name is taken (any case)."""
    require_role(user=user, team=project.team, role=Role.MEMBER)
    name = _group_name(name)
    if ModelGroup.objects.filter(project=project, name__iexact=name).exists():
        raise Conflict(_group_exists_message(name))
    try:
        with transaction.atomic():
            group = ModelGroup.objects.create(project=project, name=name, description=(description or "").strip(),
                                              created_by=user)
    except IntegrityError:
        raise Conflict(_group_exists_message(name)) from None
    audit(actor=user, verb="created model group", project=project, target=name, data={"model_group": str(group.id)})
    return group


@transaction.atomic
def model_group_delete(*, user: User, group: ModelGroup) -> None:
    """Delete a group and its versions (their models stay); admin+. Conflict (409) while a version is deployed."""
    require_role(user=user, team=group.project.team, role=Role.ADMIN)
    ModelGroup.objects.select_for_update().filter(id=group.id).first()
    deployed = selectors.model_group_deployed_version(group=group)
    if deployed is not None:
        version, variant = deployed
        raise Conflict(f"version {version.version} of model group '{group.name}' (model '{variant.model.name}') is "
                       f"deployed on endpoint '{variant.endpoint.name}'; delete the endpoint first.")
    audit(actor=user, verb="deleted model group", project=group.project, target=group.name,
          data={"model_group": str(group.id), "versions": group.versions.count()})
    group.delete()


def _not_in_project(model_id: Any) -> ValidationError:
    return ValidationError({"model": [f"No model '{model_id}' in this project."]})


@transaction.atomic
def model_version_create(*, user: User, group: ModelGroup, model: Model, description: str = "") -> ModelVersion:
    """Register ``model`` as the next version of ``group`` (1, 2, 3...), pending approval; member+.

    ValidationError naming ``model`` when it belongs to another project (or has just been deleted);
    Conflict (409) when it is already a version of the group. Numbers come from the locked group
    row, so two registrations at once never share one, and a deleted version's number is not reused.
    """
    require_role(user=user, team=group.project.team, role=Role.MEMBER)
    if model.project_id != group.project_id:
        raise _not_in_project(model.id)
    # Model first, as model_delete locks it: a registration and a delete of the same model take turns.
    if Model.objects.select_for_update().filter(id=model.id).first() is None:
        raise _not_in_project(model.id)
    locked = ModelGroup.objects.select_for_update().get(id=group.id)
    existing = ModelVersion.objects.filter(group=locked, model=model).first()
    if existing is not None:
        raise Conflict(f"model '{model.name}' is already version {existing.version} of model group "
                       f"'{locked.name}'.")
    number = locked.last_version + 1
    try:
        with transaction.atomic():
            version = ModelVersion.objects.create(group=locked, version=number, model=model, created_by=user,
                                                  description=(description or "").strip())
    except IntegrityError:
        # Only a registration that ignored the lock (a database without row locks) gets here.
        raise Conflict(f"model group '{locked.name}' changed while registering; try again.") from None
    locked.last_version = number
    locked.save(update_fields=["last_version"])
    audit(actor=user, verb="registered model version", project=locked.project, target=f"{locked.name} v{number}",
          data={"model_group": str(locked.id), "version": number, "model": str(model.id)})
    version.group = locked
    return version


def model_register(*, user: User, model: Model, group: ModelGroup | None = None, group_name: str = "",
                   description: str = "") -> ModelVersion:
    """Register ``model`` in ``group``, or in a new group named ``group_name`` (all or nothing); member+."""
    with transaction.atomic():
        if group is None:
            group = model_group_create(user=user, project=model.project, name=group_name)
        return model_version_create(user=user, group=group, model=model, description=description)


_APPROVAL_VERBS = {
    ApprovalStatus.APPROVED: "approved model version",
    ApprovalStatus.REJECTED: "rejected model version",
    ApprovalStatus.PENDING: "returned model version to pending",
}


def _approval_status(value: Any) -> str:
    if value not in ApprovalStatus.values:
        choices = ", ".join(ApprovalStatus.values)
        raise ValidationError({"approval_status": [f"approval_status must be one of {choices} (got '{value}')."]})
    return str(value)


@transaction.atomic
def model_version_update(*, user: User, version: ModelVersion, approval_status: str | None = None,
                         description: str | None = None) -> ModelVersion:
    """Change a version's approval status and/or description; member+.

    A change of status records who and when (``status_changed_by/at``); approving also records
    ``approved_by/at``, which are cleared when the version leaves "approved". Setting the status it
    already has changes nothing.
    """
    require_role(user=user, team=version.group.project.team, role=Role.MEMBER)
    status = _approval_status(approval_status) if approval_status is not None else None
    group = version.group
    version = ModelVersion.objects.select_for_update().get(id=version.id)
    fields: list[str] = []
    if status is not None and status != version.approval_status:
        now = timezone.now()
        previous = version.approval_status
        version.approval_status = status
        version.status_changed_by, version.status_changed_at = user, now
        approved = status == ApprovalStatus.APPROVED
        version.approved_by, version.approved_at = (user, now) if approved else (None, None)
        fields += ["approval_status", "status_changed_by", "status_changed_at", "approved_by", "approved_at"]
        audit(actor=user, verb=_APPROVAL_VERBS[ApprovalStatus(status)], project=group.project,
              target=f"{group.name} v{version.version}",
              data={"model_group": str(group.id), "version": version.version, "model": str(version.model_id),
                    "from": previous, "to": status})
        if approved:
            model_version_approved_on_commit(version, user=user)
    if description is not None and description.strip() != version.description:
        version.description = description.strip()
        fields.append("description")
    if fields:
        version.save(update_fields=fields)
    version.group = group
    return version


def model_version_set_approval(*, user: User, version: ModelVersion, approval_status: str) -> ModelVersion:
    """Approve, reject or return a version to pending, recording who and when; member+."""
    return model_version_update(user=user, version=version, approval_status=approval_status)


@transaction.atomic
def model_version_delete(*, user: User, version: ModelVersion) -> None:
    """Take a version out of its group (the model stays; its number is not reused); admin+.

    Conflict (409) while its model is deployed, as for the whole group.
    """
    group = version.group
    require_role(user=user, team=group.project.team, role=Role.ADMIN)
    ModelGroup.objects.select_for_update().filter(id=group.id).first()
    variant = selectors.model_endpoint_variant(model=version.model)
    if variant is not None:
        raise Conflict(f"version {version.version} of model group '{group.name}' (model '{version.model.name}') is "
                       f"deployed on endpoint '{variant.endpoint.name}'; delete the endpoint first.")
    audit(actor=user, verb="deleted model version", project=group.project, target=f"{group.name} v{version.version}",
          data={"model_group": str(group.id), "version": version.version, "model": str(version.model_id)})
    version.delete()
