"""Object storage for datasets and models, on Django's storage API (local folder or S3).

Every object of a project lives under ``projects/<project id>/`` so a project can be removed whole.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)
CHUNK = 1024 * 1024


def project_storage_prefix(*, project_id) -> str:
    return f"projects/{project_id}/"


def storage_save_stream(*, name: str, stream: IO[bytes]) -> tuple[str, int, str]:
    """Save a seekable stream; return (stored name, size in bytes, sha256 hex).

    Hashing is a separate pass so it works the same whatever the storage backend reads.
    """
    digest = hashlib.sha256()
    size = 0
    stream.seek(0)
    while block := stream.read(CHUNK):
        digest.update(block)
        size += len(block)
    stream.seek(0)
    stored = default_storage.save(name, File(stream, name=Path(name).name))
    return stored, size, digest.hexdigest()


def storage_open(name: str, mode: str = "rb") -> IO[bytes]:
    return default_storage.open(name, mode)


def storage_delete(name: str) -> None:
    try:
        if name and default_storage.exists(name):
            default_storage.delete(name)
    except OSError:
        logger.exception("could not delete stored object %s", name)


def storage_delete_prefix(prefix: str) -> None:
    """Delete every object under ``prefix`` (a folder on disk, a key prefix on S3)."""
    try:
        dirs, files = default_storage.listdir(prefix)
    except (FileNotFoundError, OSError):
        return
    for name in files:
        storage_delete(prefix + name)
    for sub in dirs:
        storage_delete_prefix(f"{prefix}{sub}/")
    location = getattr(default_storage, "location", None)
    if location:  # local folders stay behind as empty directories otherwise
        shutil.rmtree(Path(location) / prefix, ignore_errors=True)


@contextmanager
def storage_local_copy(name: str, suffix: str = "") -> Iterator[Path]:
    """Yield a local path for a stored object: the file itself when local, else a temporary copy."""
    try:
        yield Path(default_storage.path(name))
        return
    except NotImplementedError:
        pass
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        with default_storage.open(name, "rb") as src:
            shutil.copyfileobj(src, tmp, CHUNK)
        tmp.flush()
        yield Path(tmp.name)


def storage_save_dir(*, prefix: str, directory: Path) -> list[str]:
    """Upload every file of a local directory under ``prefix``; return the stored names."""
    stored = []
    for path in sorted(directory.iterdir()):
        if path.is_file():
            target = prefix + path.name
            storage_delete(target)  # re-running an idempotent task rewrites the same names
            with path.open("rb") as fh:
                stored.append(default_storage.save(target, File(fh, name=path.name)))
    return stored


@contextmanager
def storage_fetch_dir(*, names: list[str]) -> Iterator[Path]:
    """Download stored objects into one temporary directory (by base name)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            with default_storage.open(name, "rb") as src, open(Path(tmp) / Path(name).name, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        yield Path(tmp)


def storage_size(name: str) -> int:
    try:
        return default_storage.size(name)
    except OSError:
        return 0
