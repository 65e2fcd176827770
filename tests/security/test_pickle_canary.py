"""Pickle canaries: model files and datasets that would create a marker file the moment anything unpickled them.

A model file or dataset from an untrusted user must never run code. Each canary holds a pickled object whose
``__reduce__`` opens the marker for writing; every path that takes such a file (dataset upload, model and dataset
loading, registering, deploying, the endpoint instance process, pages and previews) is driven with it, and the
marker must not exist afterwards. The first test proves the canary is live: unpickling it does write the marker.
Pickle appears here only to craft the hostile files (and, once, to prove they bite).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage

from algorithms import get_algorithm, load_model
from studio.datasets.loading import DatasetError, load_images
from studio.datasets.models import Dataset
from studio.endpoints.predictions import Predictor
from studio.registry import services as registry_services
from studio.registry.models import Model
from tests.conftest import api_client
from tests.datasets.conftest import classification_zip, upload, zip_bytes

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


class Canary:
    """Unpickling this calls open(marker, "w"): the file appearing is proof that something deserialized it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / f"pwned-{uuid.uuid4().hex}"
    yield path
    assert not path.exists(), f"the canary fired: something unpickled an untrusted file ({path})"


def canary_pickle(marker: Path) -> bytes:
    return pickle.dumps(Canary(marker), protocol=4)


def canary_npy(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Canary(marker), 1.0], dtype=object), allow_pickle=True)
    return buf.getvalue()


def canary_npz(marker: Path, **names: str) -> bytes:
    """An npz whose members (``names`` maps member name to "object" or "float") hold object arrays of canaries."""
    buf = io.BytesIO()
    arrays = {name: np.array([Canary(marker)], dtype=object) if kind == "object" else np.zeros(3)
              for name, kind in names.items()}
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_it_uses_canaries_that_fire_when_unpickled(tmp_path):
    """The control: loading the crafted files with pickle allowed writes the marker, so its absence elsewhere means
    nothing unpickled them (not that the canary was a dud)."""
    for make in (lambda m: pickle.loads(canary_pickle(m)),  # the point of the control
                 lambda m: np.load(io.BytesIO(canary_npy(m)), allow_pickle=True),
                 lambda m: np.load(io.BytesIO(canary_npz(m, coef_="object")), allow_pickle=True)["coef_"]):
        live = tmp_path / f"live-{uuid.uuid4().hex}"
        make(live)
        assert live.exists()


# --- model files -------------------------------------------------------------------------------------------------


def _saved_model(directory: Path) -> dict:
    """A real fitted linear learner saved to ``directory``; returns its manifest."""
    X = np.random.default_rng(0).normal(size=(40, 2))
    get_algorithm("linear-learner")(epochs=2).fit(X, X[:, 0] * 2).save(directory)
    return json.loads((directory / "manifest.json").read_text())


def _tamper(directory: Path, how: str, marker: Path) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    arrays = manifest["arrays"]
    if how == "object array":  # every fitted array replaced by an object array of canaries
        (directory / "arrays.npz").write_bytes(canary_npz(marker, **dict.fromkeys(arrays, "object")))
    elif how == "one object array among floats":
        names = dict.fromkeys(arrays, "float")
        names[arrays[-1]] = "object"
        (directory / "arrays.npz").write_bytes(canary_npz(marker, **names))
    elif how == "pickle as npz":
        (directory / "arrays.npz").write_bytes(canary_pickle(marker))
    elif how == "npy as npz":
        (directory / "arrays.npz").write_bytes(canary_npy(marker))
    elif how == "manifest points at a pickle":
        (directory / "arrays.npz").unlink()
        (directory / "model.pkl").write_bytes(canary_pickle(marker))
        manifest.update(arrays_file="model.pkl", weights="model.pkl", format_version=1)
        (directory / "manifest.json").write_text(json.dumps(manifest))
    elif how == "pickle manifest":
        (directory / "manifest.json").write_bytes(canary_pickle(marker))
    elif how == "pickle preprocessing":
        (directory / "preprocessing.json").write_bytes(canary_pickle(marker))
    else:  # pragma: no cover
        raise AssertionError(how)


TAMPERINGS = ["object array", "one object array among floats", "pickle as npz", "npy as npz",
              "manifest points at a pickle", "pickle manifest", "pickle preprocessing"]


@pytest.mark.parametrize("how", TAMPERINGS)
def test_it_refuses_a_model_directory_holding_pickles(tmp_path, marker, how):
    directory = tmp_path / "model"
    _saved_model(directory)
    _tamper(directory, how, marker)
    # What training (warm start), the registry and pages use, and what an endpoint instance or batch transform uses.
    if how != "pickle preprocessing":  # the estimator itself is fine then; only the preprocessing file is hostile
        with pytest.raises(ValueError):
            load_model(directory)
    with pytest.raises(ValueError):
        Predictor.from_directory(directory)


def _stored_model(world, directory: Path) -> Model:
    model_id = uuid.uuid4()
    artifacts = registry_services.model_artifacts_store(project=world.project, model_id=model_id,
                                                        directory=directory)
    return registry_services.model_create(project=world.project, model_id=model_id, name="canary",
                                          algorithm="linear-learner", artifacts=artifacts, feature_names=["a", "b"],
                                          created_by=world.member)


@pytest.mark.parametrize("how", ["object array", "pickle as npz", "manifest points at a pickle"])
def test_it_never_unpickles_a_stored_model_when_loading_registering_or_deploying_it(world, tmp_path, marker, how):
    directory = tmp_path / "model"
    _saved_model(directory)
    _tamper(directory, how, marker)
    model = _stored_model(world, directory)
    with pytest.raises(ValueError):
        registry_services.model_load(model=model)
    with pytest.raises(ValueError):
        registry_services.model_load_bundle(model=model)

    client = api_client(world.member)
    base = f"/api/v1/projects/{world.project.id}"
    assert client.get(f"{base}/models/{model.id}").status_code == 200  # metadata only: nothing is loaded
    assert client.get(f"{base}/models/{model.id}/download").status_code == 200  # the bytes as stored, never loaded
    group = client.post(f"{base}/model-groups", {"name": f"g-{uuid.uuid4().hex[:6]}"}, format="json").json()["id"]
    registered = client.post(f"{base}/model-groups/{group}/versions", {"model": str(model.id)}, format="json")
    assert registered.status_code in (201, 400), registered.content
    deployed = client.post(f"{base}/endpoints", {
        "name": f"canary-{uuid.uuid4().hex[:6]}", "type": "realtime",
        "variants": [{"name": "main", "model": str(model.id), "weight": 1.0, "min_instances": 1,
                      "max_instances": 1}]}, format="json")
    # Accepted for deployment (instances load models, see the next test) or refused outright: never unpickled.
    assert deployed.status_code in (201, 400, 409), deployed.content
    page = client.get(f"/projects/{world.project.id}/models/{model.id}/")
    assert page.status_code in (200, 302, 404)


def test_the_endpoint_instance_process_refuses_every_hostile_model(tmp_path, marker):
    """The real deploy path: an instance process (python -m studio.endpoints.instance) is assigned each hostile
    model directory in turn, as the agent would, and must answer an error for each."""
    directories = []
    for i, how in enumerate(TAMPERINGS):
        directory = tmp_path / f"model{i}"
        _saved_model(directory)
        _tamper(directory, how, marker)
        directories.append(directory)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "studio.endpoints.instance", "--port", "0"], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert json.loads(proc.stdout.readline())["event"] == "listening"
        events = []
        for directory in directories:
            proc.stdin.write(json.dumps({"model_dir": str(directory), "variant": "main"}) + "\n")
            proc.stdin.flush()
            events.append(json.loads(proc.stdout.readline()))
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert [e["event"] for e in events] == ["error"] * len(TAMPERINGS), events


# --- datasets ----------------------------------------------------------------------------------------------------


def _disguised(marker: Path) -> list[tuple[str, bytes, bytes, dict[str, str]]]:
    pkl, npy = canary_pickle(marker), canary_npy(marker)
    npz = canary_npz(marker, X="object", labels="object")
    return [
        ("pickle as csv", pkl, b"data.csv", {}),
        ("pickle as pkl", pkl, b"data.pkl", {}),
        ("pickle as jsonl", pkl, b"data.jsonl", {}),
        ("pickle as text csv", pkl, b"data.csv", {"kind": "text"}),
        ("npy as csv", npy, b"data.csv", {}),
        ("npy as npy", npy, b"data.npy", {}),
        ("npz as npz", npz, b"data.npz", {}),
        ("npz as zip", npz, b"data.zip", {}),
        ("npz as image zip", npz, b"data.zip", {"kind": "image"}),
        ("npz in class folders", zip_bytes({"a/x.npy": npy, "b/y.npy": npy}), b"data.zip", {}),
        ("pickle in class folders", zip_bytes({"a/x.png": pkl, "b/y.png": pkl}), b"data.zip", {}),
        ("npz as tabular", npz, b"data.npz", {"kind": "tabular"}),
    ]


def test_it_refuses_every_disguised_pickle_upload_with_400(world, marker):
    from tests.security.test_uploads import multipart

    client = api_client(world.member)
    url = f"/api/v1/projects/{world.project.id}/datasets"
    for label, content, filename, fields in _disguised(marker):
        body, content_type = multipart(list(fields.items()), [("file", filename, content)])
        response = client.generic("POST", url, body, content_type=content_type)
        assert response.status_code == 400, (label, response.status_code, response.content[:300])
        assert response.json()["detail"], label
    assert not Dataset.objects.filter(project=world.project).exists()


def test_it_never_unpickles_a_tampered_image_dataset(world, marker):
    """Stored arrays swapped for a canary npz (storage written by someone else): training's loader refuses them,
    and the dataset page, preview and download still answer without running anything."""
    dataset = upload(world, classification_zip(), "pets.zip")
    name = dataset.profile["arrays"]
    default_storage.delete(name)
    default_storage.save(name, io.BytesIO(canary_npz(
        marker, X="object", files="object", labels="object", box_offsets="object", box_coords="object",
        box_labels="object", gallery_index="object", gallery_X="object")))
    with pytest.raises(DatasetError, match="could not be read"):
        load_images(dataset=dataset)
    client = api_client(world.member)
    base = f"/api/v1/projects/{world.project.id}/datasets/{dataset.id}"
    assert client.get(f"{base}/preview").status_code == 200
    assert client.get(f"{base}/download").status_code == 200
    client.force_login(world.member)
    assert client.get(f"/projects/{world.project.id}/data/{dataset.id}/").status_code == 200
