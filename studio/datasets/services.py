"""Every write to datasets: upload (validate, profile, store) and delete.

An upload is all or nothing: the file is profiled from its temporary upload file before anything is
stored, and a failure after the object is stored removes it again, so a rejected upload leaves
neither a row nor a file behind.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import get_valid_filename

from studio.accounts.models import Role
from studio.accounts.permissions import require_role
from studio.accounts.services import audit
from studio.core.errors import Conflict, PayloadTooLarge
from studio.core.storage import (
    project_storage_prefix,
    storage_delete,
    storage_delete_prefix,
    storage_save_stream,
)
from studio.datasets.images import (
    DEFAULT_IMAGE_SIZE,
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    ImageZipError,
    read_image_zip,
)
from studio.datasets.models import Dataset, DatasetKind, DatasetStatus
from studio.datasets.profiling import CsvError, profile_csv
from studio.datasets.selectors import dataset_active_job, dataset_active_tuning_job
from studio.datasets.signals import dataset_ready_on_commit
from studio.datasets.text import TextError, profile_text
from studio.datasets.uploads import max_upload_bytes, too_large_message

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from studio.accounts.models import Project, User

# What a file extension says about the kind of data, when the uploader does not say.
KIND_BY_EXTENSION = {
    ".csv": DatasetKind.TABULAR, ".tsv": DatasetKind.TABULAR, ".txt": DatasetKind.TABULAR,
    ".zip": DatasetKind.IMAGE, ".jsonl": DatasetKind.TEXT, ".json": DatasetKind.TEXT, ".ndjson": DatasetKind.TEXT,
}
ARRAYS_NAME = "arrays.npz"  # decoded images of an image dataset, stored next to the original ZIP
SUPPORTED_KINDS = (DatasetKind.TABULAR, DatasetKind.TEXT, DatasetKind.IMAGE)
UNSUPPORTED_FORMATS = {".npz": "NPZ", ".parquet": "Parquet", ".xlsx": "Excel", ".xls": "Excel",
                       ".feather": "Feather", ".pkl": "pickle", ".pickle": "pickle"}
NAME_MAX = 200


def dataset_storage_prefix(*, project_id, dataset_id) -> str:
    return f"{project_storage_prefix(project_id=project_id)}datasets/{dataset_id}/"


def _safe_filename(filename: str) -> str:
    base = Path(filename).name
    try:
        safe = get_valid_filename(base)
    except SuspiciousFileOperation:
        safe = ""
    if not safe:
        return "data.csv"
    stem, suffix = Path(safe).stem, Path(safe).suffix
    return stem[: 120 - len(suffix[:20])] + suffix[:20]


def _resolve_kind(kind: str, filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    kind = (kind or "").strip().lower()
    if kind:
        if kind not in DatasetKind.values:
            raise ValidationError({"kind": [
                f"kind must be one of {', '.join(DatasetKind.values)} (got '{kind}')."]})
        source = ""
    else:
        if suffix in UNSUPPORTED_FORMATS:
            raise ValidationError({"file": [
                f"{UNSUPPORTED_FORMATS[suffix]} files are not supported yet; upload a CSV file with a header row, "
                "CSV/JSONL text or a ZIP of images."]})
        # Anything not recognisably another format is tried as CSV: the parser says if it is not one.
        kind = KIND_BY_EXTENSION.get(suffix, DatasetKind.TABULAR)
        source = f" (inferred from '{filename}')"
    if kind not in SUPPORTED_KINDS:
        raise ValidationError({"kind": [f"kind '{kind}' is not supported yet{source}."]})
    if kind == DatasetKind.TEXT and suffix not in (".csv", ".tsv", ".txt", ".jsonl", ".json", ".ndjson"):
        raise ValidationError({"file": [
            f"a text dataset is a .csv or .jsonl file with a 'text' column (got '{filename}')."]})
    return kind


def _resolve_name(name: str, filename: str) -> str:
    name = (name or "").strip() or Path(filename).stem.strip()
    if not name:
        raise ValidationError({"name": ["Give the dataset a name."]})
    if len(name) > NAME_MAX:
        raise ValidationError({"name": [f"Dataset name must be at most {NAME_MAX} characters."]})
    return name


def _ensure_name_free(*, project: Project, name: str) -> None:
    if Dataset.objects.filter(project=project, name__iexact=name).exists():
        raise Conflict(f"a dataset named '{name}' already exists in this project; choose another name.")


@contextmanager
def _local_path(upload: UploadedFile) -> Iterator[Path]:
    """A path on local disk holding the upload: its temporary file when it has one, else a copy."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(suffix=Path(upload.name or "").suffix) as tmp:
        upload.seek(0)
        shutil.copyfileobj(upload, tmp, 1024 * 1024)
        tmp.flush()
        yield Path(tmp.name)


def dataset_upload(*, user: User, project: Project, upload: UploadedFile, name: str = "", kind: str = "",
                   target: str = "", image_size: int | str | None = None) -> Dataset:
    """Validate, profile and store an uploaded file as a new dataset of ``project``.

    Raises PermissionDenied (below member), ValidationError naming the problem (400), Conflict for a
    duplicate name (409) or PayloadTooLarge (413). On any error nothing is stored.

    ``kind`` is tabular (CSV), text (CSV or JSONL with a ``text`` column, see text.py) or image (a ZIP,
    see images.py; decoded to ``image_size`` square arrays stored as ``arrays.npz`` beside the ZIP).
    """
    require_role(user=user, team=project.team, role=Role.MEMBER)
    if upload is None:
        raise ValidationError({"file": ["Choose a file to upload."]})
    if upload.size is not None and upload.size > max_upload_bytes():
        raise PayloadTooLarge(too_large_message())
    filename = Path(upload.name or "").name or "data.csv"
    kind = _resolve_kind(kind, filename)
    name = _resolve_name(name, filename)
    # Cheap checks first: a name clash should not cost a pass over a large file.
    _ensure_name_free(project=project, name=name)

    with tempfile.TemporaryDirectory() as workdir, _local_path(upload) as path:
        profiled = _profile(kind=kind, path=path, filename=filename, image_size=image_size, workdir=Path(workdir))
        target = (target or "").strip()
        if target and kind != DatasetKind.TABULAR and target != "label":
            raise ValidationError({"target": [f"a {kind} dataset's target can only be 'label' (got '{target}')."]})
        if target and target not in profiled.column_names:
            names = profiled.column_names
            shown = ", ".join(names[:30]) + (f", … ({len(names)} in all)" if len(names) > 30 else "")
            raise ValidationError({"target": [f"target '{target}' is not a column; columns: {shown}"]})
        return _store(user=user, project=project, upload=upload, filename=filename, name=name, kind=kind,
                      target=target, profiled=profiled)


@dataclass
class _Profiled:
    rows: int
    columns: list[dict]
    profile: dict
    arrays: Path | None = None  # the decoded images of an image dataset, to store next to the original

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]


def _image_size(value) -> int:
    if value in (None, ""):
        return DEFAULT_IMAGE_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = -1
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ValidationError({"image_size": [
            f"image_size must be a whole number from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (got '{value}')."]})
    return size


def _profile(*, kind: str, path: Path, filename: str, image_size, workdir: Path) -> _Profiled:
    """Validate and profile the upload by kind; any problem is a ValidationError on ``file``."""
    try:
        if kind == DatasetKind.TEXT:
            text = profile_text(path, filename=filename)
            return _Profiled(rows=text.rows, columns=text.as_columns(), profile=text.as_profile())
        if kind == DatasetKind.IMAGE:
            size = _image_size(image_size)
            images = read_image_zip(path, image_size=size)
            arrays = workdir / ARRAYS_NAME
            images.save_npz(arrays)
            return _Profiled(rows=len(images.files), columns=images.columns(), profile=images.profile(),
                             arrays=arrays)
        profile = profile_csv(path, filename=filename)
    except (CsvError, TextError, ImageZipError) as exc:
        raise ValidationError({"file": [str(exc)]}) from None
    return _Profiled(rows=profile.rows, columns=profile.as_columns(), profile=profile.as_profile())


def _store(*, user: User, project: Project, upload: UploadedFile, filename: str, name: str, kind: str,
           target: str, profiled: _Profiled) -> Dataset:
    dataset_id = uuid.uuid4()
    prefix = dataset_storage_prefix(project_id=project.id, dataset_id=dataset_id)
    profile = profiled.profile
    try:
        stored, size, sha256 = storage_save_stream(name=prefix + _safe_filename(filename), stream=upload)
        if profiled.arrays is not None:
            with profiled.arrays.open("rb") as fh:
                arrays, _, _ = storage_save_stream(name=prefix + ARRAYS_NAME, stream=fh)
            profile = {**profile, "arrays": arrays}
        with transaction.atomic():
            dataset = Dataset.objects.create(
                id=dataset_id, project=project, name=name, kind=kind, status=DatasetStatus.READY,
                file=stored, original_filename=filename[:255], size_bytes=size, sha256=sha256,
                rows=profiled.rows, columns=profiled.columns, profile=profile,
                target=target, created_by=user,
            )
            audit(actor=user, verb="uploaded dataset", project=project, target=name,
                  data={"dataset": str(dataset.id), "kind": kind, "rows": profiled.rows, "size_bytes": size})
            dataset_ready_on_commit(dataset)
    except IntegrityError:
        storage_delete_prefix(prefix)
        raise Conflict(f"a dataset named '{name}' already exists in this project; choose another name.") from None
    except BaseException:
        storage_delete_prefix(prefix)  # a half-written object or one whose row failed: neither may stay
        raise
    return dataset


@transaction.atomic
def dataset_delete(*, user: User, dataset: Dataset) -> None:
    """Delete a dataset and, once the transaction commits, its stored file; 409 while a job uses it."""
    require_role(user=user, team=dataset.project.team, role=Role.MEMBER)
    # Lock the row so a job created concurrently (its service locks the dataset too) cannot slip in.
    Dataset.objects.select_for_update().filter(id=dataset.id).first()
    job = dataset_active_job(dataset=dataset)
    if job is not None:
        raise Conflict(f"dataset is used by {job.status} training job '{job.name}'; stop it or wait for it to end.")
    tuning = dataset_active_tuning_job(dataset=dataset)
    if tuning is not None:
        raise Conflict(f"dataset is used by {tuning.status} tuning job '{tuning.name}'; stop it or wait for it to end.")
    prefix = dataset_storage_prefix(project_id=dataset.project_id, dataset_id=dataset.id)
    file_name = dataset.file
    # Files go only once the row is gone for good; a rolled-back delete keeps both.
    transaction.on_commit(lambda: _delete_stored(file_name, prefix))
    audit(actor=user, verb="deleted dataset", project=dataset.project, target=dataset.name,
          data={"dataset": str(dataset.id)})
    dataset.delete()


def _delete_stored(file_name: str, prefix: str) -> None:
    storage_delete(file_name)  # the stored name may sit outside the prefix for rows made by older code
    storage_delete_prefix(prefix)
