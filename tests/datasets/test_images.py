"""Image datasets: ZIP upload (classification and detection), hostile archives, loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from studio.datasets import images
from studio.datasets.loading import DatasetError, load_images
from studio.datasets.models import Dataset
from tests.datasets.conftest import classification_zip, detection_zip, png_bytes, stored_files, upload, zip_bytes

pytestmark = pytest.mark.django_db


def test_it_decodes_a_zip_of_class_folders_into_arrays(world):
    dataset = upload(world, classification_zip(per_class=3), "pets.zip")
    assert dataset.kind == "image" and dataset.status == "ready" and dataset.rows == 6
    profile = dataset.profile
    assert profile["task"] == "classification" and profile["image_size"] == 32 and profile["resize"] == "plain"
    assert profile["class_counts"] == {"cats": 3, "dogs": 3}
    assert profile["original_width"] == {"min": 16, "max": 18, "mean": 17.0} and profile["original_height"]["max"] == 12
    assert sorted(stored_files(world.project)) == sorted(
        [f"datasets/{dataset.id}/pets.zip", f"datasets/{dataset.id}/arrays.npz"])

    data = load_images(dataset=dataset)
    assert data.X.shape == (6, 32, 32, 3) and data.X.dtype == np.uint8 and data.boxes is None
    assert data.y.tolist() == ["cats"] * 3 + ["dogs"] * 3 and data.classes == ["cats", "dogs"]
    assert data.files[0] == "cats/0.png"
    # Solid colours survive the resize: cats are red, dogs blue.
    assert tuple(data.X[0, 5, 5]) == (220, 20, 20) and tuple(data.X[5, 5, 5]) == (20, 20, 220)
    with np.load(next(world_path for world_path in [_npz_path(dataset)]), allow_pickle=False) as npz:
        assert npz["labels"].dtype.kind == "U" and npz["files"].dtype.kind == "U"


def _npz_path(dataset):
    from django.core.files.storage import default_storage

    return default_storage.path(dataset.profile["arrays"])


def test_it_reads_detection_boxes_scaled_to_the_image_size(world):
    dataset = upload(world, detection_zip(), "shapes.zip", image_size=16)
    profile = dataset.profile
    assert profile["task"] == "detection" and profile["images"] == 3 and profile["boxes"] == 3
    assert profile["class_counts"] == {"dot": 1, "square": 2}
    data = load_images(dataset=dataset)
    assert data.X.shape == (3, 16, 16, 3) and data.y is None and data.files == ["img/a.png", "img/b.png", "img/c.png"]
    # a.png is 20x10: x scales by 16/20, y by 16/10.
    assert data.boxes[0].tolist()[0] == pytest.approx([1.6, 3.2, 8.0, 12.8])
    assert data.boxes[1].shape == (2, 4) and data.box_labels[1].tolist() == ["square", "dot"]
    assert data.boxes[2].shape == (0, 4)  # not listed in annotations.json: an image without objects
    assert data.classes == ["dot", "square"]


def test_it_reads_a_zip_wrapped_in_one_folder_and_ignores_hidden_files(world):
    content = zip_bytes({"pets/cats/1.png": png_bytes(), "pets/dogs/2.png": png_bytes(),
                         "pets/.DS_Store": b"junk", "__MACOSX/pets/._1.png": b"junk"})
    dataset = upload(world, content, "pets.zip")
    assert dataset.profile["class_counts"] == {"cats": 1, "dogs": 1}


def test_it_decodes_jpeg_grayscale_and_palette_images_as_rgb(world):
    import io

    from PIL import Image

    def encoded(mode: str, fmt: str) -> bytes:
        buf = io.BytesIO()
        Image.new(mode, (10, 10)).save(buf, format=fmt)
        return buf.getvalue()

    content = zip_bytes({"a/1.jpg": encoded("RGB", "JPEG"), "a/2.png": encoded("L", "PNG"),
                         "b/3.gif": encoded("P", "GIF"), "b/4.png": encoded("RGBA", "PNG")})
    data = load_images(dataset=upload(world, content, "mixed.zip", image_size=8))
    assert data.X.shape == (4, 8, 8, 3)


def _noise_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _bomb() -> bytes:
    return zip_bytes({"cats/1.png": png_bytes(), "dogs/bomb.png": b"\0" * (3 * 1024 * 1024)})


BAD_ZIPS = [
    ("absolute path", lambda: zip_bytes({"/etc/cats/1.png": png_bytes(), "dogs/1.png": png_bytes()}),
     "'/etc/cats/1.png' has an absolute or Windows path"),
    ("dot-dot", lambda: zip_bytes({"cats/../../evil.png": png_bytes(), "dogs/1.png": png_bytes()}),
     "'cats/../../evil.png' points outside the archive"),
    ("windows path", lambda: zip_bytes({"C:/x/cats/1.png": png_bytes(), "dogs/1.png": png_bytes()}),
     "has an absolute or Windows path"),
    ("bomb", _bomb, "'dogs/bomb.png' compresses more than 100:1"),
    ("not an image", lambda: zip_bytes({"cats/1.png": png_bytes(), "dogs/notes.txt": b"hello"}),
     "'dogs/notes.txt' is not an image"),
    ("corrupt image", lambda: zip_bytes({"cats/1.png": png_bytes(), "dogs/2.png": _noise_png()[:300]}),
     "'dogs/2.png' is a corrupt or unsupported image"),
    ("loose image", lambda: zip_bytes({"cats/1.png": png_bytes(), "x.png": png_bytes()}),
     "'x.png' is not inside a class folder"),
    ("one class", lambda: zip_bytes({"cats/1.png": png_bytes(), "cats/2.png": png_bytes()}),
     "only one class folder ('cats')"),
    ("empty zip", lambda: zip_bytes({}), "the archive has no files"),
    ("not a zip", lambda: b"hello", "this is not a ZIP archive"),
]


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in BAD_ZIPS], ids=[c[0] for c in BAD_ZIPS])
def test_it_rejects_hostile_or_broken_zips_and_stores_nothing(world, make, message):
    with pytest.raises(ValidationError) as exc:
        upload(world, make(), "images.zip")
    assert message in " ".join(exc.value.messages)
    assert not Dataset.objects.exists() and stored_files(world.project) == []


@pytest.mark.parametrize(("cap", "value", "message"), [
    ("MAX_FILES", 2, "the archive has 3 entries; at most 2"),
    ("MAX_FILE_BYTES", 50, "uncompressed; each file may be at most"),
    ("MAX_TOTAL_BYTES", 100, "uncompressed; that is the limit"),
    ("MAX_PIXELS", 100, "pixels per image are allowed"),
])
def test_it_enforces_each_cap(world, monkeypatch, cap, value, message):
    monkeypatch.setattr(images, cap, value)
    with pytest.raises(ValidationError) as exc:
        upload(world, zip_bytes({"a/1.png": png_bytes(), "b/2.png": png_bytes(), "b/3.png": png_bytes()}), "i.zip")
    assert message in " ".join(exc.value.messages)
    assert not Dataset.objects.exists() and stored_files(world.project) == []


def _annotated(annotations, files=None) -> bytes:
    files = files if files is not None else {"a.png": png_bytes(size=(20, 10))}
    raw = annotations if isinstance(annotations, bytes) else json.dumps(annotations).encode()
    return zip_bytes({"annotations.json": raw, **files})


def _box(**overrides) -> dict:
    return {"label": "cat", "x1": 1, "y1": 1, "x2": 5, "y2": 5, **overrides}


BAD_ANNOTATIONS = [
    ("not json", b"{nope", "annotations.json is not valid JSON"),
    ("no images list", {"files": []}, 'must be an object with an "images" list'),
    ("no file", {"images": [{"boxes": []}]}, 'images[0] needs a "file"'),
    ("missing image", {"images": [{"file": "b.png", "boxes": [_box()]}]}, "lists 'b.png', which is not in the archive"),
    ("boxes not list", {"images": [{"file": "a.png", "boxes": {}}]}, "must be a list"),
    ("no label", {"images": [{"file": "a.png", "boxes": [_box(label="")]}]}, 'box 1 of \'a.png\' needs a "label"'),
    ("bad coordinate", {"images": [{"file": "a.png", "boxes": [_box(x2="5")]}]}, "x2 must be a number"),
    ("outside", {"images": [{"file": "a.png", "boxes": [_box(y2=11)]}]}, "is not inside the 20x10 image"),
    ("inverted", {"images": [{"file": "a.png", "boxes": [_box(x1=6)]}]}, "with x1 < x2 and y1 < y2"),
    ("no boxes", {"images": [{"file": "a.png", "boxes": []}]}, "has no boxes"),
    ("listed twice", {"images": [{"file": "a.png"}, {"file": "a.png"}]}, "'a.png' is listed twice"),
]


@pytest.mark.parametrize(("annotations", "message"), [c[1:] for c in BAD_ANNOTATIONS],
                         ids=[c[0] for c in BAD_ANNOTATIONS])
def test_it_rejects_bad_annotations_and_stores_nothing(world, annotations, message):
    with pytest.raises(ValidationError) as exc:
        upload(world, _annotated(annotations), "boxes.zip")
    assert message in " ".join(exc.value.messages)
    assert not Dataset.objects.exists() and stored_files(world.project) == []


@pytest.mark.parametrize("size", ["4", "500", "big"])
def test_it_rejects_an_image_size_out_of_range(world, size):
    with pytest.raises(ValidationError, match="image_size must be a whole number from 8 to 128"):
        upload(world, classification_zip(), "pets.zip", image_size=size)
    assert not Dataset.objects.exists()


def test_it_refuses_to_load_other_kinds_or_missing_arrays_as_images(world):
    with pytest.raises(DatasetError, match="is tabular, not image"):
        load_images(dataset=upload(world, b"a,b\n1,2\n", "tab.csv"))
    dataset = upload(world, classification_zip(), "pets.zip")
    from django.core.files.storage import default_storage

    default_storage.delete(dataset.profile["arrays"])
    with pytest.raises(DatasetError, match="stored arrays of dataset 'pets' are missing"):
        load_images(dataset=dataset)
