"""Helpers shared by training, registry and live tests: stored datasets and jobs in known states."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from studio.core.storage import storage_save_stream
from studio.datasets import services as dataset_services
from studio.datasets.models import Dataset
from studio.training import services
from studio.training.models import TrainingJob
from studio.training.tasks import training_job_run_task
from tests.conftest import classification_csv, csv_bytes, regression_csv


def dataset_from_csv(project, *, name: str = "houses", content: bytes | None = None, target: str = "",
                     status: str = "ready") -> Dataset:
    """A ready tabular dataset whose CSV is really stored, without going through the upload service."""
    content = regression_csv() if content is None else content
    header = content.decode().splitlines()[0].split(",")
    stored, size, sha = storage_save_stream(name=f"projects/{project.id}/datasets/{name}.csv",
                                            stream=io.BytesIO(content))
    rows = len(content.decode().strip().splitlines()) - 1
    return Dataset.objects.create(
        project=project, name=name, kind="tabular", status=status, file=stored, original_filename=f"{name}.csv",
        size_bytes=size, sha256=sha, rows=rows, columns=[{"name": c, "dtype": "float"} for c in header],
        target=target,
    )


def uploaded_dataset(world, content: bytes, *, name: str, target: str = "") -> Dataset:
    """A dataset through the real upload service, so its columns are profiled (text columns are 'string')."""
    return dataset_services.dataset_upload(user=world.member, project=world.project, name=name, target=target,
                                           upload=SimpleUploadedFile(f"{name}.csv", content))


def mixed_classification_csv(n: int = 300, seed: int = 0) -> bytes:
    """Churn from two numbers and a city, with gaps: a text feature and missing cells of both kinds.

    plan is 'pro' for a third of the rows, and pro customers churn less; age has ~5% empty cells and
    city ~5% empty cells.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    city = rng.choice(["Paris", "Lyon", "Nice", "Lille"], size=n)
    plan = np.where(rng.random(n) < 1 / 3, "pro", "basic")
    score = x[:, 0] + x[:, 1] + np.where(plan == "pro", -1.5, 0.5)
    label = np.where(score > 0, "yes", "no")
    rows = []
    for i in range(n):
        age = "" if rng.random() < 0.05 else round(40 + 10 * x[i, 0], 2)
        rows.append([age, round(x[i, 1], 4), "" if rng.random() < 0.05 else city[i], plan[i], label[i]])
    return csv_bytes(rows, ["age", "usage", "city", "plan", "churned"])


def blobs_csv(n: int = 240, seed: int = 0, *, label_column: str = "") -> bytes:
    """Three well separated blobs in three numeric columns (and their blob as a text label, if asked)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [8, 8, 0], [0, 8, 8]], dtype=float)
    blob = rng.integers(0, 3, size=n)
    x = centers[blob] + rng.normal(scale=0.6, size=(n, 3))
    rows = [[round(float(v), 4) for v in x[i]] + ([f"g{blob[i]}"] if label_column else []) for i in range(n)]
    return csv_bytes(rows, ["a", "b", "c", *([label_column] if label_column else [])])


def anomalies_csv(n: int = 300, n_anomalies: int = 12, seed: int = 0) -> bytes:
    """Normal rows around 0 and a few far away, labelled 0/1 in 'is_anomaly'."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n - n_anomalies, 2))
    far = rng.normal(loc=7, size=(n_anomalies, 2))
    x = np.vstack([normal, far])
    label = np.r_[np.zeros(n - n_anomalies, dtype=int), np.ones(n_anomalies, dtype=int)]
    order = rng.permutation(n)
    rows = [[round(float(x[i, 0]), 4), round(float(x[i, 1]), 4), int(label[i])] for i in order]
    return csv_bytes(rows, ["x1", "x2", "is_anomaly"])


IMAGE_SIZE = 8  # pixels square: tiny images keep an image job to a second


def colour_images_zip(per_class: int = 24, seed: int = 0) -> bytes:
    """A ZIP of two class folders of noisy PNGs, reddish 'warm' and bluish 'cool': easy to tell apart."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for label, colour in (("warm", (200, 60, 40)), ("cool", (40, 60, 200))):
            for i in range(per_class):
                pixels = np.clip(np.array(colour) + rng.normal(scale=30, size=(IMAGE_SIZE, IMAGE_SIZE, 3)), 0, 255)
                png = io.BytesIO()
                Image.fromarray(pixels.astype(np.uint8), "RGB").save(png, format="PNG")
                zf.writestr(f"{label}/{i}.png", png.getvalue())
    return buf.getvalue()


def reviews_jsonl(n: int = 120, seed: int = 0) -> bytes:
    """Short 'pos' and 'neg' reviews as JSONL with 'text' and 'label', told apart by their words."""
    rng = np.random.default_rng(seed)
    words = {"pos": ["great", "lovely", "superb", "fun", "moving"], "neg": ["awful", "boring", "dull", "bad", "slow"]}
    filler = ["the", "film", "plot", "was", "a", "cast", "and"]
    lines = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        tokens = list(rng.choice(words[label], size=3)) + list(rng.choice(filler, size=3))
        rng.shuffle(tokens)
        lines.append(json.dumps({"text": " ".join(tokens), "label": label}))
    return ("\n".join(lines) + "\n").encode()


DETECTION_SIZE = 16  # the detector wants sides that are multiples of 8


def squares_detection_zip(n: int = 24, seed: int = 0) -> bytes:
    """Noisy grey images, each with one bright red square, and its box in annotations.json (original pixels)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    size = DETECTION_SIZE
    entries = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            pixels = np.clip(90 + rng.normal(scale=15, size=(size, size, 3)), 0, 255)
            side = int(rng.integers(5, 9))
            x, y = (int(v) for v in rng.integers(0, size - side, size=2))
            pixels[y:y + side, x:x + side] = (230, 30, 30)
            png = io.BytesIO()
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(png, format="PNG")
            zf.writestr(f"img/{i}.png", png.getvalue())
            entries.append({"file": f"img/{i}.png",
                            "boxes": [{"label": "square", "x1": x, "y1": y, "x2": x + side, "y2": y + side}]})
        zf.writestr("annotations.json", json.dumps({"images": entries}))
    return buf.getvalue()


def documents_jsonl(n: int = 40, seed: int = 0) -> bytes:
    """Documents of a few sentences whose 'label' is a reference summary (their first sentence)."""
    rng = np.random.default_rng(seed)
    topics = ["rain", "markets", "football", "elections", "science"]
    lines = []
    for i in range(n):
        topic = topics[i % len(topics)]
        lead = f"The {topic} story of day {i} made headlines across the country."
        rest = [f"Observers said the {topic} news was {w}." for w in rng.choice(["big", "small", "odd", "new"], 3)]
        lines.append(json.dumps({"text": " ".join([lead, *rest]), "label": lead}))
    return ("\n".join(lines) + "\n").encode()


def classification_dataset(project, name: str = "churn") -> Dataset:
    return dataset_from_csv(project, name=name, content=classification_csv(), target="churned")


def new_job(world, *, dataset: Dataset | None = None, user=None, **kwargs) -> TrainingJob:
    dataset = dataset or Dataset.objects.filter(project=world.project, name="houses").first() or dataset_from_csv(
        world.project)
    kwargs.setdefault("target", "price")
    kwargs.setdefault("hyperparameters", {"epochs": 4})
    return services.training_job_create(user=user or world.member, project=world.project,
                                        algorithm=kwargs.pop("algorithm", "linear-learner"), dataset=dataset, **kwargs)


def run_job(job: TrainingJob) -> TrainingJob:
    """Run the Celery task in this process, as a worker would."""
    training_job_run_task.apply(args=[str(job.id)])
    job.refresh_from_db()
    return job


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """Job ids handed to the broker; nothing is sent, so no worker or broker is needed."""
    sent: list[str] = []
    monkeypatch.setattr(training_job_run_task, "apply_async", lambda args=None, **kw: sent.append(args[0]))
    return sent
