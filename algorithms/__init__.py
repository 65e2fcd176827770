"""Built-in algorithms of Studio: pure numpy estimators behind one contract (see ``base``).

Use :func:`get_algorithm` to find a class by its API name, :func:`list_algorithms` for the
catalogue and :func:`load_model` to load any saved model directory.
"""

from __future__ import annotations

from pathlib import Path

from algorithms.base import (
    Callback,
    Estimator,
    Hyperparameter,
    HyperparameterError,
    Metric,
    NotFittedError,
    read_manifest,
)
from algorithms.image_classification import ImageClassification
from algorithms.kmeans import KMeans
from algorithms.knn import KNN
from algorithms.linear_learner import LinearLearner
from algorithms.object_detection import ObjectDetection
from algorithms.pca import PCA
from algorithms.random_cut_forest import RandomCutForest
from algorithms.summarization import Summarization
from algorithms.text_classification import TextClassification
from algorithms.word2vec import Word2Vec

__all__ = [
    "KNN",
    "PCA",
    "Callback",
    "Estimator",
    "Hyperparameter",
    "HyperparameterError",
    "ImageClassification",
    "KMeans",
    "LinearLearner",
    "Metric",
    "NotFittedError",
    "ObjectDetection",
    "RandomCutForest",
    "Summarization",
    "TextClassification",
    "UnknownAlgorithm",
    "Word2Vec",
    "get_algorithm",
    "list_algorithms",
    "load_model",
]

# One entry per algorithm module; the API lists them in this order.
_ALGORITHMS: tuple[type[Estimator], ...] = (
    LinearLearner, RandomCutForest, KMeans, PCA, KNN, ImageClassification, TextClassification, Word2Vec, Summarization,
    ObjectDetection,
)
_REGISTRY: dict[str, type[Estimator]] = {cls.name: cls for cls in _ALGORITHMS}


class UnknownAlgorithm(KeyError):
    """No algorithm has the requested name; the message lists the known names."""

    def __str__(self) -> str:
        # KeyError.__str__ would show the repr of the message, quotes included.
        return str(self.args[0]) if self.args else ""


def get_algorithm(name: str) -> type[Estimator]:
    """Return the estimator class registered under ``name``.

    Parameters
    ----------
    name : str
        API name such as ``"linear-learner"``.

    Returns
    -------
    type[Estimator]

    Raises
    ------
    UnknownAlgorithm
        If no algorithm has that name.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownAlgorithm(f"unknown algorithm {name!r}; known: {', '.join(_REGISTRY)}") from None


def list_algorithms() -> list[type[Estimator]]:
    """Return every registered estimator class, in catalogue order."""
    return list(_ALGORITHMS)


def load_model(path: str | Path) -> Estimator:
    """Load a saved model of any algorithm, chosen by the ``algorithm`` field of its manifest.

    Parameters
    ----------
    path : str or Path
        Directory written by :meth:`Estimator.save`.

    Returns
    -------
    Estimator
        The fitted estimator.

    Raises
    ------
    ValueError
        If the directory is not a Studio model or names an unknown algorithm.
    """
    name = read_manifest(path)["algorithm"]
    try:
        cls = get_algorithm(name)
    except UnknownAlgorithm as exc:
        raise ValueError(f"{path}: {exc}") from None
    return cls.load(path)
