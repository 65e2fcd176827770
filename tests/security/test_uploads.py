"""Hostile uploads through the HTTP API, as an attacker would send them (raw multipart bodies, exact bytes).

Every refusal must be a 4xx with a JSON message, leave storage, the database and Django's temporary upload folder
exactly as they were, and keep the web process's memory bounded: peak RSS growth is measured with Linux's
resettable high-water mark (VmHWM, reset through /proc/self/clear_refs), so a short spike is not missed.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from studio.datasets import images
from studio.datasets.models import Dataset
from tests.conftest import api_client, regression_csv
from tests.datasets.conftest import classification_zip, png_bytes, zip_bytes

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
# Peak growth allowed while a hostile body of about 24 MB is refused (or a valid 24 MB CSV is accepted): generous,
# but far below what holding such a body (or its parsed form) in memory several times over would cost.
RSS_GROWTH_LIMIT = 160 * MB


# --- raw requests --------------------------------------------------------------------------------------------


def multipart(fields: list[tuple[str, str]] = (), files: list[tuple[str, bytes, bytes]] = (), *,
              raw_disposition: bytes | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body; each file is (field, filename bytes written as given, content)."""
    boundary = "studio-hostile-boundary-7f3a"
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, content in files:
        disposition = raw_disposition or b'form-data; name="' + name.encode() + b'"; filename="' + filename + b'"'
        parts.append(f"--{boundary}\r\n".encode() + b"Content-Disposition: " + disposition
                     + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class Uploads:
    """Posts raw bodies to the datasets API as a member, and checks that refusals leave no trace."""

    client: object
    url: str
    temp_dir: Path
    media: Path

    def post(self, body: bytes, content_type: str):
        return self.client.generic("POST", self.url, body, content_type=content_type)

    def send(self, content: bytes, filename: bytes = b"data.csv", **fields: str):
        body, content_type = multipart(list(fields.items()), [("file", filename, content)])
        return self.post(body, content_type)

    def state(self) -> tuple[int, list[str], list[str]]:
        stored = sorted(str(p.relative_to(self.media)) for p in self.media.rglob("*") if p.is_file()) \
            if self.media.exists() else []
        return Dataset.objects.count(), stored, sorted(p.name for p in self.temp_dir.iterdir())

    def refused(self, response, status: int | tuple[int, ...] = 400, before=None) -> dict:
        """Assert a JSON 4xx with a message and no trace left; return the body."""
        expected = status if isinstance(status, tuple) else (status,)
        assert response.status_code in expected, (response.status_code, response.content[:500])
        assert response["Content-Type"].startswith("application/json"), response.content[:300]
        body = response.json()
        assert isinstance(body.get("detail"), str) and body["detail"], body
        if before is not None:
            assert self.state() == before, "a refused upload left a row, a stored file or a temporary file behind"
        return body


@pytest.fixture
def uploads(world, settings, tmp_path) -> Uploads:
    temp_dir = tmp_path / "upload-tmp"
    temp_dir.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(temp_dir)  # Django's spooled upload files: none may outlive a request
    return Uploads(client=api_client(world.member), url=f"/api/v1/projects/{world.project.id}/datasets",
                   temp_dir=temp_dir, media=Path(default_storage.location))


# --- file names ------------------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    b"../../evil.csv",
    b"..%2F..%2Fevil.csv",
    b"..\\..\\evil.csv",
    b"/etc/evil.csv",
    b"C:\\Windows\\evil.csv",
    b"....//....//evil.csv",
    b"evil\x00.csv",
    b"%00evil.csv",
    b"cats/../../../../tmp/evil.csv",
    b"..",
]


@pytest.mark.parametrize("filename", HOSTILE_NAMES, ids=[repr(n)[2:-1] for n in HOSTILE_NAMES])
def test_it_never_lets_a_file_name_choose_where_the_file_is_stored(uploads, world, settings, filename):
    before = uploads.state()
    response = uploads.send(regression_csv(20), filename, name="named")
    if response.status_code != 201:  # refusing a name outright is as good as cleaning it
        uploads.refused(response, 400, before)
        return
    dataset = Dataset.objects.get(id=response.json()["id"])
    prefix = f"projects/{world.project.id}/datasets/{dataset.id}/"
    _, stored_before, _ = before
    _, stored_after, _ = uploads.state()
    new = sorted(set(stored_after) - set(stored_before))
    assert new and all(name.startswith(prefix) for name in new), new
    assert all("/" not in name[len(prefix):] and "\\" not in name and "\x00" not in name for name in new), new
    # Nothing landed anywhere else in the data folder either (the classic ../ escape from MEDIA_ROOT).
    escaped = [p for p in settings.DATA_DIR.rglob("*evil*")
               if len(p.relative_to(uploads.media).parts) != 5 if uploads.media in p.parents]
    escaped += [p for p in settings.DATA_DIR.rglob("*evil*") if uploads.media not in p.parents]
    assert not escaped and not Path("/etc/evil.csv").exists() and not Path("/tmp/evil.csv").exists(), escaped
    assert all(c not in dataset.original_filename for c in ("/", "\\", "\x00")), dataset.original_filename
    download = uploads.client.get(f"{uploads.url}/{dataset.id}/download")
    assert download.status_code == 200
    disposition = download["Content-Disposition"]
    assert "/" not in disposition.split("filename", 1)[1] and "\\" not in disposition, disposition


def test_it_reads_rfc2231_encoded_names_without_following_their_paths(uploads, world):
    body, content_type = multipart(files=[("file", b"", regression_csv(20))], raw_disposition=(
        b"form-data; name=\"file\"; filename*=UTF-8''..%2F..%2F..%2Fevil.csv"))
    response = uploads.post(body, content_type)
    assert response.status_code == 201, response.content
    assert response.json()["original_filename"] == "evil.csv"


# --- archives --------------------------------------------------------------------------------------------------


def _two_classes(extra: dict[str, bytes]) -> bytes:
    return zip_bytes({"cats/1.png": png_bytes(), "dogs/1.png": png_bytes(), **extra})


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cats/1.png", png_bytes())
        zf.writestr("dogs/1.png", png_bytes())
        link = zipfile.ZipInfo("dogs/link.png")
        link.external_attr = (0o120777 << 16)  # a symbolic link whose "content" is its target
        zf.writestr(link, "../../../../etc/passwd")
    return buf.getvalue()


def _lying_sizes_zip() -> bytes:
    """An entry whose central directory claims 100 bytes while its data inflates to 2 MB of zeros."""
    content = _two_classes({"dogs/2.png": b"\0" * (2 * MB)})
    data = bytearray(content)
    # Patch every central directory record of dogs/2.png: uncompressed size at +24.
    name = b"dogs/2.png"
    start = 0
    while (offset := data.find(b"PK\x01\x02", start)) != -1:
        name_len = struct.unpack("<H", data[offset + 28:offset + 30])[0]
        if data[offset + 46:offset + 46 + name_len] == name:
            data[offset + 24:offset + 28] = struct.pack("<I", 100)
        start = offset + 4
    return bytes(data)


def _huge_png_header() -> bytes:
    """A PNG whose header claims 100,000 x 100,000 pixels (a decompression bomb for a naive decoder)."""
    raw = png_bytes(size=(4, 4))
    # signature (8) | IHDR length (4) | "IHDR" (4) | width, height, depth... (13) | CRC of type + data (4)
    data = bytearray(raw[16:29])
    data[0:8] = struct.pack(">II", 100_000, 100_000)
    return raw[:16] + bytes(data) + struct.pack(">I", zlib.crc32(b"IHDR" + bytes(data))) + raw[33:]


def _bmp(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 10)).save(buf, format="BMP")
    return buf.getvalue()


def _archive_ratio_bomb() -> bytes:
    """Valid, highly compressible images, each below the per-file ratio threshold: the archive as a whole
    inflates hundreds of times over."""
    bmp = _bmp(560)  # ~0.9 MB each, compresses ~1000:1
    return zip_bytes({f"{label}/{i}.bmp": bmp for label in ("a", "b") for i in range(40)})


HOSTILE_ZIPS: list[tuple[str, Callable[[], bytes], str]] = [
    ("dot-dot", lambda: _two_classes({"../../evil.png": png_bytes()}), "points outside the archive"),
    ("nested dot-dot", lambda: _two_classes({"cats/../../../evil.png": png_bytes()}), "points outside the archive"),
    ("absolute", lambda: _two_classes({"/tmp/evil.png": png_bytes()}), "absolute or Windows path"),
    ("backslash", lambda: _two_classes({"cats\\..\\..\\evil.png": png_bytes()}), "absolute or Windows path"),
    ("drive", lambda: _two_classes({"C:/evil.png": png_bytes()}), "absolute or Windows path"),
    ("symlink", _symlink_zip, "dogs/link.png"),
    ("ratio bomb", lambda: _two_classes({"dogs/bomb.png": b"\0" * (3 * MB)}), "looks like a zip bomb"),
    ("lying sizes", _lying_sizes_zip, "dogs/2.png"),
    ("archive ratio bomb", _archive_ratio_bomb, "zip bomb"),
    ("nested zip", lambda: _two_classes({"dogs/inner.zip": classification_zip()}), "is not an image"),
    ("pixel bomb", lambda: _two_classes({"dogs/huge.png": _huge_png_header()}), "pixels"),
    ("corrupt image", lambda: _two_classes({"dogs/2.png": png_bytes()[:40]}), "'dogs/2.png' is"),
    ("empty image", lambda: _two_classes({"dogs/2.png": b""}), "dogs/2.png"),
    ("truncated zip", lambda: classification_zip()[:300], "not a ZIP archive"),
    ("not a zip", lambda: b"PK\x05\x06" + b"\0" * 18, "no files"),
]


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in HOSTILE_ZIPS], ids=[c[0] for c in HOSTILE_ZIPS])
def test_it_refuses_hostile_archives_with_a_message_and_stores_nothing(uploads, make, message):
    content = make()
    before = uploads.state()
    body = uploads.refused(uploads.send(content, b"images.zip", kind="image"), 400, before)
    assert message in body["detail"], body


def test_it_caps_the_declared_total_size_of_an_archive(uploads, monkeypatch):
    monkeypatch.setattr(images, "MAX_TOTAL_BYTES", 100)
    before = uploads.state()
    body = uploads.refused(uploads.send(_two_classes({"dogs/2.png": png_bytes(size=(40, 40))}), b"i.zip"), 400,
                           before)
    assert "uncompressed; that is the limit" in body["detail"]


def test_it_still_accepts_an_ordinary_image_archive(uploads):
    response = uploads.send(classification_zip(), b"pets.zip")
    assert response.status_code == 201, response.content


# --- form limits and body size ---------------------------------------------------------------------------------


def test_it_refuses_ten_thousand_form_fields_with_400(uploads):
    before = uploads.state()
    body, content_type = multipart([(f"f{i}", "x") for i in range(10_000)], [("file", b"d.csv", b"a,b\n1,2\n")])
    detail = uploads.refused(uploads.post(body, content_type), 400, before)["detail"]
    assert "fields" in detail.lower()


def test_it_refuses_ten_thousand_urlencoded_fields_with_400(world):
    client = api_client(world.member)
    body = "&".join(f"f{i}=x" for i in range(10_000))
    response = client.generic("POST", "/api/v1/projects", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")
    assert "fields" in response.json()["detail"].lower()


def test_it_refuses_a_thousand_files_with_400(uploads):
    before = uploads.state()
    body, content_type = multipart(files=[("file", f"{i}.csv".encode(), b"a,b\n1,2\n") for i in range(1000)])
    detail = uploads.refused(uploads.post(body, content_type), 400, before)["detail"]
    assert "files" in detail.lower()


def test_it_refuses_an_oversize_upload_with_413_and_keeps_nothing(uploads, settings):
    settings.STUDIO_MAX_UPLOAD_MB = 1
    before = uploads.state()
    detail = uploads.refused(uploads.send(b"a,b\n" + b"1,2\n" * (MB // 2), b"big.csv"), 413, before)["detail"]
    assert "1 MB limit" in detail


def test_it_refuses_an_oversize_json_body_with_413(world):
    client = api_client(world.member)
    body = b'{"team": "x", "name": "' + b"a" * (8 * MB) + b'"}'
    response = client.generic("POST", "/api/v1/projects", body, content_type="application/json")
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"].startswith("application/json")


# --- malformed content -------------------------------------------------------------------------------------------

MALFORMED = [
    ("empty csv", b"", b"d.csv", {}, "empty"),
    ("blank csv", b"\n\n  \n", b"d.csv", {}, "empty"),
    ("binary garbage", bytes(range(256)) * 64, b"d.csv", {}, "binary data"),
    ("png as csv", png_bytes(), b"d.csv", {}, "PNG image"),
    ("npy as csv", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"d.csv", {},
     "NumPy"),
    ("latin-1", "a,b\ncafé,1\n".encode("latin-1"), b"d.csv", {}, "UTF-8"),
    ("ragged", b"a,b\n1,2\n1,2,3\n", b"d.csv", {}, "row 2"),
    ("unterminated quote", b'a,b\n"1,2\n', b"d.csv", {}, ""),
    ("huge field", b"a,b\n" + b"x" * 200_000 + b",1\n", b"d.csv", {}, "field larger than field limit"),
    ("too many columns", ",".join(f"c{i}" for i in range(10_001)).encode() + b"\n" + b"1," * 10_000 + b"1\n",
     b"d.csv", {}, "at most 10000 are supported"),
    ("json as csv", b'{"a": 1}\n', b"d.csv", {}, "JSON"),
    ("jsonl not json", b'{"text": "a", "label": "x"}\n{nope\n', b"d.jsonl", {}, "line 2 is not valid JSON"),
    ("jsonl array", b'["text", "label"]\n', b"d.jsonl", {}, "not a JSON object"),
    ("jsonl no text", b'{"body": "a"}\n', b"d.jsonl", {}, "no 'text' field"),
    ("jsonl bad utf-8", b'{"text": "a"}\n{"text": "\xff\xfe"}\n', b"d.jsonl", {}, "UTF-8"),
    ("jsonl text not string", b'{"text": {"a": 1}, "label": "x"}\n', b"d.jsonl", {}, "text"),
    ("text csv no text column", b"body,label\nhello,x\n", b"d.csv", {"kind": "text"}, "no 'text' column"),
    ("unknown kind", b"a,b\n1,2\n", b"d.csv", {"kind": "video"}, "kind must be one of"),
    ("pickle", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94.", b"d.pkl", {}, "pickle"),
    ("npz", zip_bytes({"x.npy": b"\x93NUMPY"}), b"d.npz", {}, "NPZ"),
]


@pytest.mark.parametrize(("content", "filename", "fields", "message"), [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_it_answers_malformed_files_with_400_naming_the_problem(uploads, content, filename, fields, message):
    before = uploads.state()
    body = uploads.refused(uploads.send(content, filename, **fields), 400, before)
    assert message in body["detail"], body


def test_it_refuses_a_request_without_a_file(uploads):
    before = uploads.state()
    body, content_type = multipart([("name", "nothing")])
    assert "file" in uploads.refused(uploads.post(body, content_type), 400, before).get("errors", {})


# --- memory ---------------------------------------------------------------------------------------------------


def _peak_rss_meter() -> Callable[[], int] | None:
    """A function returning the peak RSS growth (bytes) since the meter was made; None where Linux's resettable
    high-water mark is not available."""
    status, clear = Path("/proc/self/status"), Path("/proc/self/clear_refs")

    def field(name: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(name)

    try:
        clear.write_text("5")  # resets VmHWM to the current RSS
        base = field("VmRSS")
    except (OSError, KeyError):
        return None
    return lambda: field("VmHWM") - base


def _wide_row() -> bytes:
    return b"a,b\n" + b"1," * (12 * MB) + b"1\n"


def _long_jsonl_line() -> bytes:
    return b'{"text": "' + b"word " * (5 * MB) + b'", "label": "x"}\n'


def _many_small_pngs() -> bytes:
    png = png_bytes(size=(8, 8))
    return zip_bytes({f"{label}/{i}.png": png for label in ("a", "b") for i in range(3000)})


def _wide_csv() -> bytes:
    """2,000 columns of distinct numbers: few rows, but millions of cells (each a Python string once parsed)."""
    import numpy as np

    values = np.random.default_rng(0).random((1_400, 2_000))
    out = io.BytesIO()
    out.write(",".join(f"c{i}" for i in range(2_000)).encode() + b"\n")
    np.savetxt(out, values, fmt="%.6f", delimiter=",")
    return out.getvalue()


MEMORY_CASES: list[tuple[str, Callable[[], bytes], bytes, dict, int]] = [
    ("valid 24 MB csv", lambda: regression_csv(600_000), b"big.csv", {}, 201),
    ("valid 2000-column csv", _wide_csv, b"wide.csv", {}, 201),
    ("one 24 MB row of fields", _wide_row, b"wide.csv", {}, 400),
    ("one 25 MB jsonl line", _long_jsonl_line, b"long.jsonl", {}, 400),
    ("24 MB of newlines in a quoted field", lambda: b'a,b\n"' + b"\n" * (24 * MB) + b'",1\n', b"q.csv", {}, 400),
    ("oversize body", lambda: b"a,b\n" + b"1,2\n" * (6 * MB), b"big.csv", {"limit_mb": 4}, 413),
    ("6000 images", _many_small_pngs, b"many.zip", {}, 201),
]


@pytest.mark.parametrize(("make", "filename", "options", "status"), [c[1:] for c in MEMORY_CASES],
                         ids=[c[0] for c in MEMORY_CASES])
def test_it_keeps_memory_bounded_whatever_the_body(uploads, settings, make, filename, options, status):
    if "limit_mb" in options:
        settings.STUDIO_MAX_UPLOAD_MB = options["limit_mb"]
    content = make()
    body, content_type = multipart([], [("file", filename, content)])
    del content
    meter = _peak_rss_meter()
    if meter is None:
        pytest.skip("no resettable peak RSS (/proc/self/clear_refs) on this system")
    before = uploads.state()
    response = uploads.post(body, content_type)
    growth = meter()
    if status == 201:
        assert response.status_code == 201, response.content[:500]
    else:
        uploads.refused(response, status, before)
    print(f"peak RSS growth {growth / MB:.1f} MB for a {len(body) / MB:.1f} MB body")  # a figure for the report
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / MB:.0f} MB for a {len(body) / MB:.0f} MB body"


# --- the upload page takes the same path -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["dot-dot", "ratio bomb", "lying sizes"])
def test_the_upload_page_refuses_the_same_archives_and_stores_nothing(uploads, world, case):
    from django.test import Client

    make = next(c[1] for c in HOSTILE_ZIPS if c[0] == case)
    client = Client()
    client.force_login(world.member)
    before = uploads.state()
    body, content_type = multipart([("kind", "image")], [("file", b"images.zip", make())])
    response = client.generic("POST", f"/projects/{world.project.id}/data/", body, content_type=content_type)
    assert response.status_code == 400
    assert uploads.state() == before


def test_the_upload_page_refuses_ten_thousand_fields_with_400(uploads, world):
    from django.test import Client

    client = Client()
    client.force_login(world.member)
    before = uploads.state()
    body, content_type = multipart([(f"f{i}", "x") for i in range(10_000)], [("file", b"d.csv", b"a,b\n1,2\n")])
    response = client.generic("POST", f"/projects/{world.project.id}/data/", body, content_type=content_type)
    assert response.status_code == 400
    assert uploads.state() == before
