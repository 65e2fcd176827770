"""Storage full during an upload: a 4 MB tmpfs mounted as the web server's object storage (MEDIA_ROOT).

An upload that does not fit is answered 507 Insufficient Storage, leaves no dataset row and no partial file; once
space is freed the same upload succeeds. Needs root and mount(8) (skipped with the reason otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import regression_csv
from tests.faults.conftest import count, ok, sql

pytestmark = pytest.mark.faults

SIZE_MB = 4


@pytest.fixture
def small_disk(stack):
    """MEDIA_ROOT of ``stack`` on a tmpfs of SIZE_MB, mounted before its web server starts."""
    media = Path(stack.env["STUDIO_DATA_DIR"]) / "media"
    media.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(media)],
                            capture_output=True, text=True, check=False)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield media
    finally:
        subprocess.run(["umount", "-l", str(media)], check=False)


def stored_files(media: Path) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def test_it_answers_507_and_stores_nothing_when_storage_is_full_then_recovers(stack, small_disk):
    media = small_disk
    stack.web()
    me = stack.account()
    api, db = stack.api(me.token), stack.database
    first = ok(api.upload(me.project, "small", regression_csv(n=200), target="price"), 201)
    files_before = stored_files(media)
    assert len(files_before) == 1 and files_before[0].endswith("small.csv"), files_before

    # Larger than the whole disk: the write fails part way.
    big = regression_csv(n=150_000)  # ~5 MB
    assert len(big) > SIZE_MB * 1024 * 1024
    reply = api.upload(me.project, "big", big, target="price")
    assert reply.status == 507, (reply.status, reply.body[:500])
    assert "storage is full" in reply.json()["detail"]
    assert count(db, "SELECT count(*) FROM datasets_dataset WHERE name = 'big'") == 0
    assert stored_files(media) == files_before  # no partial file left behind

    # Nearly full: a small upload fails too; freeing space makes the same upload succeed.
    filler = media / "filler"
    free = shutil.disk_usage(media).free
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (free - 16 * 1024))
    medium = regression_csv(n=2_000)  # ~100 KB
    reply = api.upload(me.project, "medium", medium, target="price")
    assert reply.status == 507, (reply.status, reply.body[:500])
    assert count(db, "SELECT count(*) FROM datasets_dataset WHERE name = 'medium'") == 0
    filler.unlink()
    stored = ok(api.upload(me.project, "medium", medium, target="price"), 201)
    assert stored["size_bytes"] == len(medium)
    assert sorted(name for (name,) in sql(db, "SELECT name FROM datasets_dataset")) == ["medium", "small"]
    download = api.get(f"/api/v1/projects/{me.project}/datasets/{stored['id']}/download")
    assert download.status == 200 and download.body == medium
    assert ok(api.get(f"/api/v1/projects/{me.project}/datasets/{first['id']}"))["rows"] == 200
