"""Request bodies -> records -> the per-record prediction shapes of API.md, for one loaded model.

No Django here: an endpoint instance imports only numpy, the algorithms and the preprocessing rules,
so a process can start, load a model and answer in a fraction of a second.

Bodies:

- ``application/json``: ``{"instances": [...]}`` or a bare list. Tabular records are lists of values in
  :attr:`Predictor.input_names` order or ``{column: value}`` objects; text models take strings (or
  ``{"text": ...}``); image models take nested arrays of shape (height, width, channels).
- ``text/csv``: one record per row in :attr:`Predictor.input_names` order, with no header or with a header
  equal to the input names; text models take one (quoted if needed) text per row.

Every problem with a body raises :class:`PayloadError` naming the record and column, which the instance
answers with 400 and the message.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from algorithms import Estimator, load_model
from studio.datasets.preprocessing import FILENAME as PREPROCESSING_FILENAME
from studio.datasets.preprocessing import InputError, TabularPreprocessor

JSON_TYPES = ("application/json", "")
CSV_TYPES = ("text/csv", "application/csv")
MAX_LISTED = 5


class PayloadError(ValueError):
    """The request body cannot be predicted on; the message says which record and column, and why."""


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(document: Any) -> bytes:
    """JSON bytes of a response document; NaN becomes null (orjson), numpy scalars plain numbers."""
    return orjson.dumps(document, default=_json_default)


def media_type(content_type: str) -> str:
    """``"text/csv; charset=utf-8"`` -> ``"text/csv"``."""
    return content_type.split(";", 1)[0].strip().lower()


class Predictor:
    """A fitted estimator plus the preprocessing fitted with it, answering request bodies.

    Parameters
    ----------
    estimator : Estimator
        The fitted model.
    preprocessor : TabularPreprocessor or None
        How tabular records become features; None for text and image models.
    """

    def __init__(self, estimator: Estimator, preprocessor: TabularPreprocessor | None) -> None:
        self.estimator = estimator
        self.preprocessor = preprocessor
        self.algorithm = estimator.name
        self.kind = estimator.input if estimator.input in ("text", "image") else "tabular"
        if self.kind == "tabular" and preprocessor is None:
            raise ValueError("a tabular model needs its preprocessing (or the names of its input columns)")
        self._answer = self._answerer()
        shape = getattr(estimator, "image_shape_", None)
        self.image_shape: tuple[int, ...] | None = tuple(int(v) for v in shape) if shape is not None else None

    # --- loading ------------------------------------------------------------------------------------

    @classmethod
    def from_directory(cls, path: Path, *, feature_names: Sequence[str] | None = None) -> Predictor:
        """Load a saved model directory (manifest.json, arrays.npz and preprocessing.json if any).

        Parameters
        ----------
        path : Path
            The directory written at training time.
        feature_names : sequence of str, optional
            The model's input columns, for tabular models saved before preprocessing.json existed
            (their numbers pass through as they are). Defaults to ``x1..xn``.

        Returns
        -------
        Predictor

        Raises
        ------
        ValueError
            If the directory is not a readable Studio model.
        """
        path = Path(path)
        estimator = load_model(path)
        preprocessor: TabularPreprocessor | None = None
        if (path / PREPROCESSING_FILENAME).exists():
            preprocessor = TabularPreprocessor.load(path)
        elif estimator.input not in ("text", "image"):
            names = list(feature_names or [])
            if not names:
                count = int(getattr(estimator, "n_features_in_", 0) or 0)
                names = [f"x{i + 1}" for i in range(count)]
            preprocessor = TabularPreprocessor.passthrough(names)
        return cls(estimator, preprocessor)

    @property
    def input_names(self) -> list[str]:
        """The columns a tabular record must hold, in order (empty for text and image models)."""
        return self.preprocessor.input_names if self.preprocessor is not None else []

    # --- bodies -------------------------------------------------------------------------------------

    def parse(self, body: bytes, content_type: str) -> list:
        """Records of a request body.

        Parameters
        ----------
        body : bytes
            The raw request body.
        content_type : str
            Its Content-Type header (parameters such as charset are ignored).

        Returns
        -------
        list
            One entry per record: list or dict (tabular), str (text), ndarray (image).

        Raises
        ------
        PayloadError
            Empty or malformed body, unsupported media type, or a record of the wrong kind.
        """
        kind = media_type(content_type)
        if not body.strip():
            raise PayloadError('the request body is empty: send {"instances": [...]} as application/json'
                               + ("" if self.kind == "image" else ", or text/csv rows"))
        if kind in JSON_TYPES or kind.endswith("+json"):
            records = self._parse_json(body)
        elif kind in CSV_TYPES:
            records = self._parse_csv(body)
        else:
            allowed = "application/json" if self.kind == "image" else "application/json or text/csv"
            raise PayloadError(f"unsupported Content-Type {content_type!r}: send {allowed}")
        if self.kind == "text":
            return _texts(records)
        if self.kind == "image":
            return self._images(records)
        return records

    def _parse_json(self, body: bytes) -> list:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"the body is not valid JSON: {exc}") from None
        if isinstance(document, Mapping):
            if "instances" not in document:
                raise PayloadError('send {"instances": [...]}: the JSON object has no "instances" list')
            document = document["instances"]
        if not isinstance(document, list):
            raise PayloadError('"instances" must be a list of records')
        if not document:
            raise PayloadError('"instances" is empty: send at least one record')
        return document

    def _parse_csv(self, body: bytes) -> list:
        if self.kind == "image":
            raise PayloadError("image models take application/json: "
                               '{"instances": [[[r, g, b], ...], ...]} with one (height, width, channels) array '
                               "per image")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"the CSV body is not UTF-8: {exc}") from None
        try:
            rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
        except csv.Error as exc:
            raise PayloadError(f"the CSV body cannot be read: {exc}") from None
        header = self.input_names if self.kind == "tabular" else ["text"]
        if rows and [cell.strip() for cell in rows[0]] == header:
            rows = rows[1:]
        if not rows:
            raise PayloadError("the CSV body has no data rows")
        if self.kind == "text":
            bad = [i + 1 for i, row in enumerate(rows) if len(row) != 1]
            if bad:
                raise PayloadError(f"record {bad[0]} has {len(rows[bad[0] - 1])} values: send one text per row, "
                                   "in double quotes when it contains commas")
            return [row[0] for row in rows]
        return rows

    def _images(self, records: list) -> list[np.ndarray]:
        expected = self.image_shape
        out = []
        for i, record in enumerate(records):
            number = i + 1
            if not isinstance(record, list):
                raise PayloadError(f"record {number} must be an image: a nested list of shape "
                                   f"{_shape_text(expected)} (height, width, channels)")
            try:
                array = np.asarray(record, dtype=np.float32)
            except (ValueError, TypeError):
                raise PayloadError(f"record {number} is not a rectangular array of numbers") from None
            if expected is not None and array.ndim == 2 and len(expected) == 3 and expected[2] == 1:
                array = array[:, :, None]  # a grayscale image sent without its channel axis
            if expected is not None and array.shape != expected:
                raise PayloadError(f"record {number} has shape {_shape_text(array.shape)}, the model expects "
                                   f"{_shape_text(expected)} (height, width, channels)")
            if not np.isfinite(array).all():
                raise PayloadError(f"record {number} has NaN or infinite pixel values")
            out.append(array)
        return out

    # --- predicting ---------------------------------------------------------------------------------

    def features(self, records: Sequence[Any]) -> Any:
        """What the estimator takes for these records: a feature matrix, a list of texts or an image batch."""
        if self.kind == "tabular":
            assert self.preprocessor is not None
            try:
                return self.preprocessor.transform_records(records)
            except InputError as exc:
                raise PayloadError(str(exc)) from None
        if self.kind == "text":
            return _texts(list(records))
        images = [r if isinstance(r, np.ndarray) else None for r in records]
        if any(image is None for image in images):
            images = self._images(list(records))
        return np.stack(images)

    def predict_records(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        """One prediction document per record, shaped as API.md says for the model's algorithm.

        Parameters
        ----------
        records : sequence
            Records from :meth:`parse` (or built by a caller in the same forms).

        Returns
        -------
        list of dict
            classifier ``{label, probabilities}``, regressor ``{score}``, knn ``{label|score, neighbors}``,
            kmeans ``{cluster, distance}``, pca ``{projection}``, random-cut-forest ``{score, anomaly}``,
            summarization ``{summary}``, object-detection ``{boxes}``, word2vec ``{vector}``.

        Raises
        ------
        PayloadError
            A record does not fit the model (the message names it).
        """
        if isinstance(records, str | bytes | Mapping) or not isinstance(records, Sequence) or not records:
            raise PayloadError("send a non-empty list of records")
        X = self.features(records)
        try:
            return self._answer(X)
        except (ValueError, TypeError, KeyError) as exc:
            # The estimators check their inputs and say what is wrong: that is the client's mistake.
            raise PayloadError(str(exc)) from None

    @property
    def answers_by_columns(self) -> bool:
        """Whether :meth:`predict_columns` answers for this model (tabular, with plain answers)."""
        return self._column_answerer() is not None

    def predict_columns(self, columns: Mapping[str, Sequence[str]]) -> dict[str, Any] | None:
        """The answers of :meth:`predict_records` for tabular cells given column by column, as columns.

        One feature matrix and one estimator call for every record (no per-record objects), for batch
        transform parts.

        Parameters
        ----------
        columns : mapping of str to sequence of str
            ``{column: [cell, ...]}``, the input columns of every record (extra columns are ignored).

        Returns
        -------
        dict or None
            The per-record answer's keys, each with a 1-d array of one value per record, or for a nested
            answer a dict of such arrays (classifier ``probabilities``) or a 2-d array (pca ``projection``):
            record i of ``predict_records`` is these values at i. None when the model is not tabular, or its
            answers do not come as plain columns (knn neighbors): use :meth:`predict_records`.

        Raises
        ------
        PayloadError
            The same error :meth:`predict_records` raises for those records.
        """
        answer = self._column_answerer()
        if answer is None:
            return None
        assert self.preprocessor is not None
        try:
            X = self.preprocessor.transform_columns(columns)
        except InputError as exc:
            raise PayloadError(str(exc)) from None
        try:
            return answer(X)
        except (ValueError, TypeError, KeyError) as exc:
            raise PayloadError(str(exc)) from None

    def invoke(self, body: bytes, content_type: str, *, variant: str | None = None) -> bytes:
        """The response body for a request body: ``{"predictions": [...], "variant": name}`` as JSON bytes."""
        predictions = self.predict_records(self.parse(body, content_type))
        document: dict[str, Any] = {"predictions": predictions}
        if variant is not None:
            document["variant"] = variant
        return dumps(document)

    # --- per-algorithm answers ----------------------------------------------------------------------

    def _answerer(self) -> Callable[[Any], list[dict[str, Any]]]:
        est = self.estimator
        name = self.algorithm
        task = getattr(est, "task_", "")
        if name == "knn":
            return self._knn
        if name == "kmeans":
            return self._kmeans
        if name == "pca":
            return lambda X: [{"projection": row} for row in est.transform(X).tolist()]
        if name == "random-cut-forest":
            return self._random_cut_forest
        if name == "summarization":
            return lambda X: [{"summary": text} for text in est.predict(X)]
        if name == "object-detection":
            return lambda X: [{"boxes": boxes} for boxes in est.predict(X)]
        if name == "word2vec":
            return lambda X: [{"vector": row} for row in est.transform(X).tolist()]
        if task == "regression":
            return lambda X: [{"score": value} for value in np.asarray(est.predict(X), dtype=np.float64).tolist()]
        if callable(getattr(est, "predict_proba", None)) and getattr(est, "classes_", None) is not None:
            return self._classifier
        return lambda X: [{"prediction": value} for value in _plain_list(est.predict(X))]

    def _column_answerer(self) -> Callable[[Any], dict[str, Any]] | None:
        """:meth:`_answerer` by columns, for the algorithms whose answers are plain values (None for others)."""
        est = self.estimator
        name = self.algorithm
        if self.kind != "tabular" or name in ("knn", "summarization", "object-detection", "word2vec"):
            return None
        if name == "kmeans":
            def kmeans(X: Any) -> dict[str, Any]:
                distances = est.transform(X)
                clusters = est.predict(X)
                return {"cluster": np.asarray(clusters), "distance": distances[np.arange(distances.shape[0]), clusters]}
            return kmeans
        if name == "pca":
            return lambda X: {"projection": np.asarray(est.transform(X))}
        if name == "random-cut-forest":
            def random_cut_forest(X: Any) -> dict[str, Any]:
                scores = np.asarray(est.score_samples(X))
                return {"score": scores, "anomaly": scores > est.threshold_}
            return random_cut_forest
        if getattr(est, "task_", "") == "regression":
            return lambda X: {"score": np.asarray(est.predict(X), dtype=np.float64)}
        if callable(getattr(est, "predict_proba", None)) and getattr(est, "classes_", None) is not None:
            def classifier(X: Any) -> dict[str, Any]:
                labels = np.asarray(est.predict(X))
                proba = np.asarray(est.predict_proba(X), dtype=np.float64)
                # dict() of the keys, as per record: a repeated class text keeps its first place, last value
                return {"label": labels, "probabilities": dict(zip(self._class_keys(), proba.T, strict=True))}
            return classifier
        return lambda X: {"prediction": np.asarray(est.predict(X))}

    def _class_keys(self) -> list[str]:
        return [str(c) for c in self.estimator.classes_.tolist()]

    def _classifier(self, X: Any) -> list[dict[str, Any]]:
        est = self.estimator
        labels = _plain_list(est.predict(X))
        proba = np.asarray(est.predict_proba(X), dtype=np.float64).tolist()
        keys = self._class_keys()
        return [{"label": label, "probabilities": dict(zip(keys, row, strict=True))}
                for label, row in zip(labels, proba, strict=True)]

    def _knn(self, X: Any) -> list[dict[str, Any]]:
        est = self.estimator
        distances, indices = est.kneighbors(X)
        regressor = est.predictor_type_ == "regressor"
        train_y = est.train_y_
        if regressor:
            heads = [{"score": v} for v in np.asarray(est.predict(X), dtype=np.float64).tolist()]
            neighbor_values = train_y[indices].astype(np.float64).tolist()
            field = "score"
        else:
            labels = _plain_list(est.predict(X))
            proba = np.asarray(est.predict_proba(X), dtype=np.float64).tolist()
            keys = self._class_keys()
            heads = [{"label": label, "probabilities": dict(zip(keys, row, strict=True))}
                     for label, row in zip(labels, proba, strict=True)]
            neighbor_values = _plain_list(est.classes_[train_y[indices]])
            field = "label"
        out = []
        for head, row_idx, row_dist, row_val in zip(heads, indices.tolist(), distances.tolist(), neighbor_values,
                                                    strict=True):
            head["neighbors"] = [{"index": i, "distance": d, field: v}
                                 for i, d, v in zip(row_idx, row_dist, row_val, strict=True)]
            out.append(head)
        return out

    def _kmeans(self, X: Any) -> list[dict[str, Any]]:
        distances = self.estimator.transform(X)
        clusters = self.estimator.predict(X)
        nearest = distances[np.arange(distances.shape[0]), clusters]
        return [{"cluster": c, "distance": d} for c, d in zip(clusters.tolist(), nearest.tolist(), strict=True)]

    def _random_cut_forest(self, X: Any) -> list[dict[str, Any]]:
        est = self.estimator
        scores = est.score_samples(X)
        flags = scores > est.threshold_
        return [{"score": s, "anomaly": a} for s, a in zip(scores.tolist(), flags.tolist(), strict=True)]


def _plain_list(values: Any) -> list:
    """numpy values -> JSON-ready Python values (labels may be ints, floats or strings)."""
    return np.asarray(values).tolist()


def _texts(records: list) -> list[str]:
    texts = []
    for i, record in enumerate(records):
        if isinstance(record, Mapping) and isinstance(record.get("text"), str):
            record = record["text"]
        if not isinstance(record, str):
            raise PayloadError(f'record {i + 1} must be a text: a JSON string (or {{"text": "..."}})')
        texts.append(record)
    return texts


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "(height, width, channels)" if shape is None else "(" + ", ".join(str(int(v)) for v in shape) + ")"
