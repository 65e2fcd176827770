"""Helpers for dataset tests: upload through the service, and look at what storage holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from studio.datasets import services
from studio.datasets.models import Dataset


def upload(world, content: bytes, filename: str = "data.csv", *, user=None, **kwargs) -> Dataset:
    return services.dataset_upload(user=user or world.member, project=world.project,
                                   upload=SimpleUploadedFile(filename, content), **kwargs)


def stored_files(project) -> list[str]:
    """Every stored object of a project (the local storage backend is used in tests)."""
    root = Path(default_storage.location) / "projects" / str(project.id)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def upload_tmp(settings, tmp_path) -> Path:
    """A private folder for Django's temporary upload files, to prove none is left behind."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


def png_bytes(color=(200, 30, 30), size=(20, 14), fmt: str = "PNG") -> bytes:
    """A tiny solid-colour image made with Pillow."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes], *, compression: int | None = None) -> bytes:
    """A ZIP archive of ``{name: content}`` built in memory (names are written as given, even hostile ones)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name)  # a ZipInfo keeps the name as given (writestr(str) would clean it)
            info.compress_type = zipfile.ZIP_DEFLATED if compression is None else compression
            zf.writestr(info, content)
    return buf.getvalue()


def classification_zip(per_class: int = 3) -> bytes:
    colours = {"cats": (220, 20, 20), "dogs": (20, 20, 220)}
    return zip_bytes({f"{label}/{i}.png": png_bytes(colour, size=(16 + i, 12))
                      for label, colour in colours.items() for i in range(per_class)})


def detection_zip() -> bytes:
    import json

    annotations = {"images": [
        {"file": "img/a.png", "boxes": [{"label": "square", "x1": 2, "y1": 2, "x2": 10, "y2": 8}]},
        {"file": "img/b.png", "boxes": [{"label": "square", "x1": 0, "y1": 0, "x2": 40, "y2": 20},
                                        {"label": "dot", "x1": 30, "y1": 10, "x2": 35, "y2": 15}]},
    ]}
    return zip_bytes({"annotations.json": json.dumps(annotations).encode(),
                      "img/a.png": png_bytes(size=(20, 10)), "img/b.png": png_bytes(size=(40, 20)),
                      "img/c.png": png_bytes(size=(8, 8))})
