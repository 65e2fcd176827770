"""Small fitted models of every algorithm family, saved the way training saves them, and a routes helper.

Models are fitted once per test session (a few are slow to fit even when tiny) and saved to
directories: manifest.json + arrays.npz (+ preprocessing.json for tabular models).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algorithms import (
    KNN,
    PCA,
    ImageClassification,
    KMeans,
    LinearLearner,
    ObjectDetection,
    RandomCutForest,
    Summarization,
    TextClassification,
    Word2Vec,
)
from studio.datasets.preprocessing import TabularPreprocessor
from studio.datasets.tabular import TabularData

CITIES = ["Paris", "Lyon", "Nice"]


@dataclass
class Fitted:
    """A saved model and what it was fitted on."""

    directory: Path
    estimator: Any
    preprocessor: TabularPreprocessor | None
    records: list  # request records (lists in input order, texts or images)
    X: Any  # what the estimator itself takes for those records


def mixed_table(n: int = 160, seed: int = 0) -> tuple[TabularData, list[list]]:
    """Two numbers and a city; 'yes' when x1 + x2 (+1 in Paris) > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    city = rng.choice(CITIES, size=n)
    y = np.where(x[:, 0] + x[:, 1] + (city == "Paris") > 0, "yes", "no")
    data = TabularData(feature_names=["x1", "x2", "city"], numeric=x, numeric_names=["x1", "x2"],
                       text={"city": city.astype(object)}, y=y, rows=np.arange(1, n + 1), n_dropped=0,
                       target="label")
    records = [[float(a), float(b), str(c)] for (a, b), c in zip(x[:8], city[:8], strict=True)]
    return data, records


def numeric_table(X: np.ndarray, y: np.ndarray | None, names: list[str]) -> TabularData:
    return TabularData(feature_names=list(names), numeric=X, numeric_names=list(names), text={}, y=y,
                       rows=np.arange(1, X.shape[0] + 1), n_dropped=0)


def _save(root: Path, name: str, estimator: Any, preprocessor: TabularPreprocessor | None) -> Path:
    directory = root / name
    directory.mkdir()
    estimator.save(directory)
    if preprocessor is not None:
        preprocessor.save(directory)
    return directory


def _tabular(root: Path, name: str, estimator: Any, data: TabularData, records: list) -> Fitted:
    pre = TabularPreprocessor()
    prepared = pre.fit(data)
    estimator.fit(prepared.X, prepared.y)
    X = pre.transform_records(records)
    return Fitted(_save(root, name, estimator, pre), estimator, pre, records, X)


def _numeric(root: Path, name: str, estimator: Any, X: np.ndarray, y: np.ndarray | None) -> Fitted:
    names = [f"f{i + 1}" for i in range(X.shape[1])]
    pre = TabularPreprocessor()
    prepared = pre.fit(numeric_table(X, y, names))
    estimator.fit(prepared.X) if y is None else estimator.fit(prepared.X, prepared.y)
    records = X[:6].tolist()
    return Fitted(_save(root, name, estimator, pre), estimator, pre, records, X[:6])


def _blobs(n: int = 150, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [6, 6, 0], [0, 6, 6]], dtype=float)
    return centers[rng.integers(0, 3, n)] + rng.normal(scale=0.5, size=(n, 3))


def _topics(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    fruit = ["apple", "pear", "banana", "cherry", "plum"]
    cars = ["engine", "wheel", "brake", "tyre", "gear"]
    texts, labels = [], []
    for i in range(n):
        words = rng.choice(fruit if i % 2 else cars, 6)
        texts.append(" ".join(words))
        labels.append("fruit" if i % 2 else "vehicle")
    return texts, labels


def _bars(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 60, (n, 8, 8, 1))
    labels = np.array(["horizontal", "vertical"])[np.arange(n) % 2]
    for i, label in enumerate(labels):
        k = int(rng.integers(1, 7))
        if label == "horizontal":
            X[i, k, 1:7, 0] = 230
        else:
            X[i, 1:7, k, 0] = 230
    return X.astype(np.uint8), labels


def _squares(n: int = 32, size: int = 16, seed: int = 0) -> tuple[np.ndarray, list[list[dict]]]:
    rng = np.random.default_rng(seed)
    images = rng.normal(40, 10, (n, size, size, 3))
    boxes = []
    for i in range(n):
        side = int(rng.integers(5, 8))
        x, y = (int(v) for v in rng.integers(0, size - side, 2))
        images[i, y:y + side, x:x + side] = 220
        boxes.append([{"label": "box", "x1": x, "y1": y, "x2": x + side, "y2": y + side}])
    return np.clip(images, 0, 255).astype(np.uint8), boxes


DOCUMENTS = [
    "The council approved the new budget on Monday. Parks get more money this year. "
    "Roads will be repaired in spring. The mayor thanked the volunteers.",
    "A storm hit the coast last night. Thousands lost power for hours. Crews restored most lines by noon.",
    "The team won the final match. Fans celebrated in the streets. The coach praised the young players.",
]


class ModelBank:
    """Builds each named model on first use, in one folder for the whole session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Fitted] = {}
        self._builders: dict[str, Callable[[], Fitted]] = {
            "logistic": self._logistic,
            "multiclass": self._multiclass,
            "regressor": self._regressor,
            "knn-classifier": self._knn_classifier,
            "knn-regressor": self._knn_regressor,
            "kmeans": lambda: _numeric(self.root, "kmeans", KMeans(k=3, random_state=0), _blobs(), None),
            "pca": lambda: _numeric(self.root, "pca", PCA(num_components=2), _blobs(), None),
            "random-cut-forest": lambda: _numeric(
                self.root, "random-cut-forest", RandomCutForest(num_trees=50, num_samples_per_tree=32, random_state=0),
                _blobs(), None),
            "text-classification": self._text_classification,
            "summarization": self._summarization,
            "word2vec": self._word2vec,
            "image-classification": self._image_classification,
            "object-detection": self._object_detection,
        }

    def __call__(self, name: str) -> Fitted:
        if name not in self._built:
            self._built[name] = self._builders[name]()
        return self._built[name]

    def _logistic(self) -> Fitted:
        data, records = mixed_table()
        return _tabular(self.root, "logistic", LinearLearner(epochs=5, random_state=0), data, records)

    def _multiclass(self) -> Fitted:
        X = _blobs()
        y = np.array(["a", "b", "c"])[np.argmin(((X[:, None, :] - np.array([[0, 0, 0], [6, 6, 0], [0, 6, 6]])) ** 2)
                                               .sum(axis=2), axis=1)]
        names = ["f1", "f2", "f3"]
        pre = TabularPreprocessor()
        prepared = pre.fit(numeric_table(X, y, names))
        est = LinearLearner(epochs=5, random_state=0).fit(prepared.X, prepared.y)
        return Fitted(_save(self.root, "multiclass", est, pre), est, pre, X[:6].tolist(), X[:6])

    def _regressor(self) -> Fitted:
        rng = np.random.default_rng(1)
        X = rng.normal(size=(120, 3))
        y = X @ np.array([3.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=120)
        return _numeric(self.root, "regressor", LinearLearner(epochs=5, random_state=0), X, y)

    def _knn_classifier(self) -> Fitted:
        data, records = mixed_table()
        return _tabular(self.root, "knn-classifier", KNN(k=5), data, records)

    def _knn_regressor(self) -> Fitted:
        rng = np.random.default_rng(2)
        X = rng.normal(size=(80, 2))
        y = X[:, 0] * 2 + X[:, 1]
        return _numeric(self.root, "knn-regressor", KNN(k=3, predictor_type="regressor"), X, y)

    def _text_classification(self) -> Fitted:
        texts, labels = _topics(200)
        est = TextClassification(epochs=3, vector_dim=8, buckets=1000).fit(texts, labels)
        queries = ["apple pear plum", "engine brake gear", "banana"]
        return Fitted(_save(self.root, "text-classification", est, None), est, None, queries, queries)

    def _summarization(self) -> Fitted:
        est = Summarization(max_sentences=1).fit(DOCUMENTS)
        return Fitted(_save(self.root, "summarization", est, None), est, None, DOCUMENTS[:2], DOCUMENTS[:2])

    def _word2vec(self) -> Fitted:
        texts, _ = _topics(200)
        est = Word2Vec(vector_dim=8, epochs=1, min_count=1).fit(texts)
        words = ["apple", "engine", "unknownword"]
        return Fitted(_save(self.root, "word2vec", est, None), est, None, words, words)

    def _image_classification(self) -> Fitted:
        X, y = _bars()
        est = ImageClassification(epochs=2, width=4, mini_batch_size=16).fit(X, y)
        images = X[:3]
        return Fitted(_save(self.root, "image-classification", est, None), est, None, images.tolist(), images)

    def _object_detection(self) -> Fitted:
        X, boxes = _squares()
        est = ObjectDetection(epochs=1, base_filters=4, mini_batch_size=16).fit(X, boxes)
        images = X[:2]
        return Fitted(_save(self.root, "object-detection", est, None), est, None, images.tolist(), images)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> ModelBank:
    return ModelBank(tmp_path_factory.mktemp("endpoint-models"))


def json_body(records: list) -> bytes:
    return json.dumps({"instances": records}).encode()
