"""Image datasets: a ZIP archive decoded with Pillow here, at the dataset layer, into fixed-size arrays.

Accepted ZIP layouts (API.md "Datasets"):

- classification: one top-level folder per class, images inside (``cats/1.png``, ``dogs/a/2.jpg``;
  the class is the top-level folder). At least two classes.
- detection: images anywhere plus ``annotations.json`` at the top level::

      {"images": [{"file": "img/1.png",
                   "boxes": [{"label": "cat", "x1": 10, "y1": 5, "x2": 40, "y2": 30}]}]}

  ``file`` is the path inside the ZIP; box coordinates are pixels of the original image with
  ``0 <= x1 < x2 <= width`` and ``0 <= y1 < y2 <= height``. Images not listed have no objects.

A ZIP whose every entry sits in one wrapping folder (``flowers/daisy/1.jpg``) is read as if that
folder were the top level. Hidden files and ``__MACOSX/`` are ignored; any other file that is not
an image Pillow can decode is an error naming it.

Every image is converted to RGB and resized to ``image_size`` x ``image_size`` with a plain bilinear
resize (the aspect ratio is not kept: boxes are scaled by the same x and y factors, so they stay on
their objects). The arrays are stored as an .npz next to the original ZIP (no pickled objects):
``X`` uint8 (N, S, S, 3), ``files`` and ``labels`` fixed-width unicode (labels empty for detection),
``original_sizes`` int32 (N, 2) as (width, height), ``box_offsets`` int64 (N + 1) with image i's boxes
at ``box_coords[box_offsets[i]:box_offsets[i + 1]]`` (float32 x1, y1, x2, y2 in resized pixels) and
``box_labels`` unicode, plus ``gallery_index``/``gallery_X``, the up to 24 images the dataset page shows
(npz members inflate one at a time, so the page never reads ``X``).

Untrusted archives: absolute paths and ``..`` (zip slip) are refused before anything is read; the
file count, each file's uncompressed size, the total uncompressed size, each file's and the whole
archive's compression ratio and each image's pixel count are capped (zip and decompression bombs), and sizes are checked
against the bytes actually inflated, not only the sizes the archive declares. Nothing is extracted
to disk: members are read into memory one at a time, so paths in the archive never touch the filesystem.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

DEFAULT_IMAGE_SIZE = 32
MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 128
MAX_FILES = 20_000
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed; only checked above RATIO_MIN_BYTES (tiny files compress oddly)
RATIO_MIN_BYTES = 1024 * 1024
# The same ratio over the whole archive, past this many uncompressed bytes: many files each too small for the
# per-file check (a thousand solid-colour BMPs) still make a bomb together.
ARCHIVE_RATIO_MIN_BYTES = 32 * 1024 * 1024
MAX_PIXELS = 40_000_000
ANNOTATIONS = "annotations.json"
GALLERY_MAX = 24
BOX_COLOUR = (255, 215, 0)  # yellow: visible on most photos, unlike the red and blue people draw
_IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class ImageZipError(ValueError):
    """The archive is not a usable image dataset; the message names the file at fault."""


@dataclass
class ImageSet:
    task: str  # "classification" | "detection"
    image_size: int
    X: np.ndarray
    files: list[str]
    labels: list[str]
    original_sizes: np.ndarray
    box_offsets: np.ndarray
    box_coords: np.ndarray
    box_labels: list[str]
    class_counts: dict[str, int] = field(default_factory=dict)

    def save_npz(self, path: Path) -> None:
        # The gallery's images are stored again on their own: npz members load one by one, so the
        # dataset page reads a few KB instead of inflating every image.
        n = len(self.files)
        picks = np.unique(np.linspace(0, n - 1, num=min(GALLERY_MAX, n)).astype(np.int64))
        np.savez_compressed(
            path, X=self.X, gallery_index=picks, gallery_X=self.X[picks],
            files=np.asarray(self.files, dtype=str), labels=np.asarray(self.labels, dtype=str),
            original_sizes=self.original_sizes, box_offsets=self.box_offsets, box_coords=self.box_coords,
            box_labels=np.asarray(self.box_labels, dtype=str),
        )

    def profile(self) -> dict:
        w, h = self.original_sizes[:, 0], self.original_sizes[:, 1]

        def stats(v: np.ndarray) -> dict:
            return {"min": int(v.min()), "max": int(v.max()), "mean": float(v.mean())}

        return {"format": "zip", "task": self.task, "image_size": self.image_size, "resize": "plain",
                "channels": 3, "images": len(self.files), "class_counts": self.class_counts,
                "boxes": int(self.box_coords.shape[0]),
                "original_width": stats(w), "original_height": stats(h)}

    def columns(self) -> list[dict]:
        return [{"name": "file", "dtype": "string", "missing": 0}, {"name": "label", "dtype": "string", "missing": 0}]


def _check_name(name: str) -> None:
    if name.startswith(("/", "\\")) or _DRIVE_RE.match(name) or "\\" in name:
        raise ImageZipError(f"'{name}' has an absolute or Windows path; ZIP entries must be relative paths.")
    if ".." in name.split("/"):
        raise ImageZipError(f"'{name}' points outside the archive ('..'); such entries are refused.")


def _ignored(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts if p) or \
        parts[-1].lower() in _IGNORED_NAMES


def _members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_FILES:
        raise ImageZipError(f"the archive has {len(infos):,} entries; at most {MAX_FILES:,} are allowed.")
    total = compressed = 0
    members = []
    for info in infos:
        _check_name(info.filename)
        if info.is_dir() or _ignored(info.filename):
            continue
        if info.file_size > MAX_FILE_BYTES:
            raise ImageZipError(f"'{info.filename}' is {info.file_size:,} bytes uncompressed; each file may be at "
                                f"most {MAX_FILE_BYTES // (1024 * 1024)} MB.")
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ImageZipError(f"'{info.filename}' compresses more than {MAX_RATIO}:1, which looks like a zip "
                                "bomb; such archives are refused.")
        total += info.file_size
        compressed += info.compress_size
        if total > MAX_TOTAL_BYTES:
            raise ImageZipError(f"the archive holds more than {MAX_TOTAL_BYTES // 1024 ** 3} GB uncompressed; "
                                "that is the limit.")
        members.append(info)
    if total > ARCHIVE_RATIO_MIN_BYTES and total > MAX_RATIO * max(compressed, 1):
        raise ImageZipError(f"the archive inflates more than {MAX_RATIO}:1 ({total:,} bytes from {compressed:,}), "
                            "which looks like a zip bomb; such archives are refused.")
    if not members:
        raise ImageZipError("the archive has no files: add a folder of images per class, or images and "
                            f"{ANNOTATIONS}.")
    return members


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Read one byte past the cap: a lying header cannot make us inflate more than the cap allows.
    try:
        with zf.open(info) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ImageZipError(f"'{info.filename}' could not be extracted: {exc}.") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImageZipError(f"'{info.filename}' inflates past {MAX_FILE_BYTES // (1024 * 1024)} MB; refused.")
    return data


def _strip_wrapper(names: list[str]) -> str:
    """The single wrapping folder to read as the top level ("" when there is none)."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or any("/" not in n for n in names):
        return ""
    top = next(iter(tops)) + "/"
    inner = [n[len(top):] for n in names]
    if ANNOTATIONS in inner or all("/" in n for n in inner):
        return top
    return ""


def _decode(name: str, data: bytes, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageZipError(f"'{name}' is {width}x{height} pixels; at most {MAX_PIXELS:,} pixels per "
                                        "image are allowed.")
                img.load()
                rgb = img.convert("RGB")
    except ImageZipError:
        raise
    except UnidentifiedImageError:
        raise ImageZipError(f"'{name}' is not an image (Pillow cannot identify it); remove it from the archive.") \
            from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageZipError(f"'{name}' is a corrupt or unsupported image: {exc}.") from None
    resized = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8), (width, height)


def read_image_zip(path: Path, *, image_size: int = DEFAULT_IMAGE_SIZE) -> ImageSet:
    """Validate and decode an image ZIP; raise :class:`ImageZipError` naming the first problem."""
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ImageZipError(f"image_size must be from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (got {image_size}).")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise ImageZipError("this is not a ZIP archive: image datasets are a ZIP of class folders, or of images "
                            f"and {ANNOTATIONS}.") from None
    with zf:
        members = _members(zf)
        wrapper = _strip_wrapper([m.filename for m in members])
        by_name = {m.filename[len(wrapper):]: m for m in members}
        if ANNOTATIONS in by_name:
            return _detection(zf, by_name, image_size)
        return _classification(zf, by_name, image_size)


def _classification(zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], size: int) -> ImageSet:
    loose = sorted(n for n in by_name if "/" not in n)
    if loose:
        raise ImageZipError(f"'{loose[0]}' is not inside a class folder: a classification ZIP holds one folder per "
                            f"class (e.g. cats/1.png, dogs/2.png); a detection ZIP needs {ANNOTATIONS}.")
    names = sorted(by_name)
    labels = [n.split("/", 1)[0] for n in names]
    counts = Counter(labels)
    if len(counts) < 2:
        raise ImageZipError(f"only one class folder ('{labels[0]}'): classification needs a folder per class, at "
                            "least two.")
    X = np.empty((len(names), size, size, 3), dtype=np.uint8)
    sizes = np.empty((len(names), 2), dtype=np.int32)
    for i, name in enumerate(names):
        X[i], sizes[i] = _decode(name, _read(zf, by_name[name]), size)
    return ImageSet(task="classification", image_size=size, X=X, files=names, labels=labels, original_sizes=sizes,
                    box_offsets=np.zeros(len(names) + 1, dtype=np.int64), box_coords=np.zeros((0, 4), np.float32),
                    box_labels=[], class_counts=dict(sorted(counts.items())))


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ImageZipError(f"{ANNOTATIONS}: {where} must be a number (got {json.dumps(value)[:40]}).")
    return float(value)


def _parse_annotations(raw: bytes) -> dict[str, list[tuple[str, float, float, float, float]]]:
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageZipError(f"{ANNOTATIONS} is not valid JSON: {exc}.") from None
    entries = document.get("images") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ImageZipError(f'{ANNOTATIONS} must be an object with an "images" list: '
                            '{"images": [{"file": ..., "boxes": [{"label", "x1", "y1", "x2", "y2"}]}]}.')
    out: dict[str, list] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry["file"]:
            raise ImageZipError(f'{ANNOTATIONS}: images[{i}] needs a "file" (the image\'s path in the ZIP).')
        file = entry["file"]
        if file in out:
            raise ImageZipError(f"{ANNOTATIONS}: '{file}' is listed twice.")
        boxes = entry.get("boxes", [])
        if not isinstance(boxes, list):
            raise ImageZipError(f'{ANNOTATIONS}: "boxes" of \'{file}\' must be a list.')
        parsed = []
        for j, box in enumerate(boxes):
            where = f"box {j + 1} of '{file}'"
            if not isinstance(box, dict):
                raise ImageZipError(f"{ANNOTATIONS}: {where} must be an object with label, x1, y1, x2, y2.")
            label = box.get("label")
            if isinstance(label, int | float) and not isinstance(label, bool):
                label = str(label)
            if not isinstance(label, str) or not label.strip():
                raise ImageZipError(f'{ANNOTATIONS}: {where} needs a "label".')
            coords = [_number(box.get(k), f"{where}: {k}") for k in ("x1", "y1", "x2", "y2")]
            parsed.append((label.strip(), *coords))
        out[file] = parsed
    return out


def _detection(zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], size: int) -> ImageSet:
    annotations = _parse_annotations(_read(zf, by_name[ANNOTATIONS]))
    names = sorted(n for n in by_name if n != ANNOTATIONS)
    missing = sorted(set(annotations) - set(names))
    if missing:
        raise ImageZipError(f"{ANNOTATIONS} lists '{missing[0]}', which is not in the archive"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") + ".")
    if not names:
        raise ImageZipError(f"the archive has {ANNOTATIONS} but no images.")
    X = np.empty((len(names), size, size, 3), dtype=np.uint8)
    sizes = np.empty((len(names), 2), dtype=np.int32)
    offsets = [0]
    coords: list[list[float]] = []
    box_labels: list[str] = []
    for i, name in enumerate(names):
        X[i], (width, height) = _decode(name, _read(zf, by_name[name]), size)
        sizes[i] = (width, height)
        sx, sy = size / width, size / height
        for j, (label, x1, y1, x2, y2) in enumerate(annotations.get(name, []), start=1):
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise ImageZipError(
                    f"{ANNOTATIONS}: box {j} of '{name}' ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is not inside the "
                    f"{width}x{height} image with x1 < x2 and y1 < y2.")
            coords.append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
            box_labels.append(label)
        offsets.append(len(coords))
    if not coords:
        raise ImageZipError(f"{ANNOTATIONS} has no boxes: a detection dataset needs at least one labelled box.")
    return ImageSet(task="detection", image_size=size, X=X, files=names, labels=[""] * len(names),
                    original_sizes=sizes, box_offsets=np.asarray(offsets, dtype=np.int64),
                    box_coords=np.asarray(coords, dtype=np.float32), box_labels=box_labels,
                    class_counts=dict(sorted(Counter(box_labels).items())))


def load_npz(source, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a stored npz (only ``keys`` when given; members are inflated one by one)."""
    with np.load(source, allow_pickle=False) as npz:
        return {key: npz[key] for key in (npz.files if keys is None else keys)}


def image_boxes(arrays: dict[str, np.ndarray], i: int) -> list[tuple[str, float, float, float, float]]:
    lo, hi = int(arrays["box_offsets"][i]), int(arrays["box_offsets"][i + 1])
    return [(str(arrays["box_labels"][k]), *map(float, arrays["box_coords"][k])) for k in range(lo, hi)]


def thumbnail_data_uri(image: np.ndarray, boxes: list[tuple[str, float, float, float, float]],
                       *, display: int = 96) -> str:
    """A PNG data URI of one stored image, enlarged to ``display`` pixels with its boxes drawn."""
    size = image.shape[0]
    scale = display / size
    img = Image.fromarray(image, "RGB").resize((display, display), Image.Resampling.NEAREST)
    if boxes:
        draw = ImageDraw.Draw(img)
        for label, x1, y1, x2, y2 in boxes:
            draw.rectangle([x1 * scale, y1 * scale, x2 * scale - 1, y2 * scale - 1], outline=BOX_COLOUR, width=2)
            # The label on a dark tag, so it reads on any image.
            left, top, right, bottom = draw.textbbox((x1 * scale + 2, y1 * scale + 2), label[:12])
            draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=(0, 0, 0))
            draw.text((x1 * scale + 2, y1 * scale + 2), label[:12], fill=BOX_COLOUR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
