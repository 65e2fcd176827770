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
