"""Every read of datasets, scoped to projects the user's teams can see."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.http import Http404

from studio.accounts.selectors import project_list
from studio.core.storage import storage_open
from studio.datasets.models import Dataset
from studio.datasets.profiling import CsvError, read_preview
from studio.training.models import ACTIVE_STATUSES, TrainingJob

if TYPE_CHECKING:
    from studio.accounts.models import Project, User


def dataset_list(*, user: User, project: Project) -> QuerySet[Dataset]:
    return Dataset.objects.filter(project=project, project__in=project_list(user=user)).select_related("created_by")


def dataset_get(*, user: User, project: Project, dataset_id) -> Dataset:
    try:
        return dataset_list(user=user, project=project).get(id=dataset_id)
    except (Dataset.DoesNotExist, ValueError, TypeError):
        raise Http404("No such dataset in this project.") from None


PREVIEW_MAX_ROWS = 1000


def dataset_preview(*, dataset: Dataset, rows: int = 50) -> dict:
    """``{"columns": [...names], "rows": [[...strings], ...]}``: the first ``rows`` data rows as stored."""
    rows = max(0, min(int(rows), PREVIEW_MAX_ROWS))
    delimiter = (dataset.profile or {}).get("delimiter", ",")
    try:
        # Streamed from storage, not copied: on S3 a 1 GB dataset must not be fetched to show 50 rows.
        return read_preview(storage_open(dataset.file), delimiter=delimiter, rows=rows)
    except (CsvError, FileNotFoundError, OSError):
        # The file was validated at upload; if it has gone or changed since, show no rows, not a 500.
        return {"columns": dataset.column_names, "rows": []}


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
