"""Every read of datasets, scoped to projects the user's teams can see."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.http import Http404

from studio.accounts.selectors import project_list
from studio.core.storage import storage_local_copy, storage_open
from studio.datasets.images import GALLERY_MAX, image_boxes, load_npz, thumbnail_data_uri
from studio.datasets.models import Dataset, DatasetKind
from studio.datasets.profiling import CsvError, read_preview
from studio.datasets.text import LABEL_COLUMN, TEXT_COLUMN, TextError, read_text_preview
from studio.training.models import ACTIVE_STATUSES, TrainingJob

if TYPE_CHECKING:
    from studio.accounts.models import Project, User
    from studio.tuning.models import TuningJob


def dataset_list(*, user: User, project: Project) -> QuerySet[Dataset]:
    return Dataset.objects.filter(project=project, project__in=project_list(user=user)).select_related("created_by")


def dataset_get(*, user: User, project: Project, dataset_id) -> Dataset:
    try:
        return dataset_list(user=user, project=project).get(id=dataset_id)
    except (Dataset.DoesNotExist, ValueError, TypeError):
        raise Http404("No such dataset in this project.") from None


PREVIEW_MAX_ROWS = 1000


def dataset_preview(*, dataset: Dataset, rows: int = 50) -> dict:
    """``{"columns": [...names], "rows": [[...strings], ...]}``: the first ``rows`` data rows as stored.

    Text datasets give ``text``, ``label`` rows; image datasets give ``file``, ``label`` rows (for
    detection, the labels of the image's boxes joined by ", ").
    """
    rows = max(0, min(int(rows), PREVIEW_MAX_ROWS))
    if dataset.kind == DatasetKind.TEXT:
        return _text_preview(dataset, rows)
    if dataset.kind == DatasetKind.IMAGE:
        return _image_preview(dataset, rows)
    delimiter = (dataset.profile or {}).get("delimiter", ",")
    try:
        # Streamed from storage, not copied: on S3 a 1 GB dataset must not be fetched to show 50 rows.
        return read_preview(storage_open(dataset.file), delimiter=delimiter, rows=rows)
    except (CsvError, FileNotFoundError, OSError):
        # The file was validated at upload; if it has gone or changed since, show no rows, not a 500.
        return {"columns": dataset.column_names, "rows": []}


def _text_preview(dataset: Dataset, rows: int) -> dict:
    profile = dataset.profile or {}
    try:
        return read_text_preview(storage_open(dataset.file), fmt=profile.get("format", "csv"),
                                 delimiter=profile.get("delimiter", ","), rows=rows)
    except (TextError, FileNotFoundError, OSError):
        return {"columns": [TEXT_COLUMN, LABEL_COLUMN], "rows": []}


_LABEL_KEYS = ("files", "labels", "box_offsets", "box_coords", "box_labels")


def _image_arrays(dataset: Dataset, keys: tuple[str, ...] = _LABEL_KEYS) -> dict | None:
    name = (dataset.profile or {}).get("arrays")
    if not name:
        return None
    try:
        with storage_local_copy(name, suffix=".npz") as path:
            return load_npz(path, keys)
    except (FileNotFoundError, OSError, ValueError, KeyError):
        return None


def _image_label(arrays: dict, i: int) -> str:
    label = str(arrays["labels"][i])
    return label or ", ".join(box[0] for box in image_boxes(arrays, i))


def _image_preview(dataset: Dataset, rows: int) -> dict:
    arrays = _image_arrays(dataset)
    count = 0 if arrays is None else min(rows, len(arrays["files"]))
    return {"columns": ["file", "label"],
            "rows": [[str(arrays["files"][i]), _image_label(arrays, i)] for i in range(count)]}


def dataset_gallery(*, dataset: Dataset, limit: int = GALLERY_MAX) -> list[dict]:
    """Up to ``limit`` images of an image dataset as ``{file, label, src}``, ``src`` a PNG data URI with
    the boxes drawn (spread over the dataset, so every class shows up in a sorted class-folder ZIP)."""
    arrays = _image_arrays(dataset, (*_LABEL_KEYS, "gallery_index", "gallery_X"))
    if arrays is None:
        return []
    picks = [int(i) for i in arrays["gallery_index"][:limit]]
    return [{"file": str(arrays["files"][i]), "label": _image_label(arrays, i),
             "src": thumbnail_data_uri(arrays["gallery_X"][k], image_boxes(arrays, i))} for k, i in enumerate(picks)]


def dataset_open(*, dataset: Dataset) -> IO[bytes]:
    """The stored file, opened for streaming; 404 when the object has gone from storage."""
    try:
        return storage_open(dataset.file)
    except (FileNotFoundError, OSError):
        raise Http404("The stored file of this dataset is missing.") from None


def dataset_download_name(*, dataset: Dataset) -> str:
    return dataset.original_filename or f"{dataset.name}.csv"


def dataset_active_job(*, dataset: Dataset) -> TrainingJob | None:
    """A pending or running training job reading ``dataset`` (as training or validation data), if any."""
    return (
        TrainingJob.objects.filter(Q(dataset=dataset) | Q(validation_dataset=dataset), status__in=ACTIVE_STATUSES)
        .order_by("created_at").first()
    )


def dataset_active_tuning_job(*, dataset: Dataset) -> TuningJob | None:
    """A pending or running tuning job whose trials read ``dataset``: it starts new trials on it at any time."""
    # Through the reverse relations, so datasets need not import the tuning app that depends on it.
    for relation in ("tuning_jobs", "validation_tuning_jobs"):
        job = getattr(dataset, relation).filter(status__in=("pending", "running")).order_by("created_at").first()
        if job is not None:
            return job
    return None
