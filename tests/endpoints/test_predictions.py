"""Request bodies to per-record predictions, compared with the estimators' own predict / predict_proba."""

from __future__ import annotations

import json

import numpy as np
import pytest

from algorithms import LinearLearner
from studio.endpoints.predictions import PayloadError, Predictor
from tests.endpoints.conftest import json_body, numeric_table

JSON = "application/json"
CSV = "text/csv"


def load(models, name: str) -> tuple[Predictor, object]:
    fitted = models(name)
    return Predictor.from_directory(fitted.directory), fitted


def answer(predictor: Predictor, body: bytes, content_type: str = JSON) -> dict:
    return json.loads(predictor.invoke(body, content_type, variant="blue"))


def test_it_answers_a_binary_classifier_like_its_predict_proba(models):
    predictor, fitted = load(models, "logistic")
    assert predictor.input_names == ["x1", "x2", "city"]
    out = answer(predictor, json_body(fitted.records))
    assert out["variant"] == "blue"
    labels = fitted.estimator.predict(fitted.X)
    proba = fitted.estimator.predict_proba(fitted.X)
    assert [p["label"] for p in out["predictions"]] == labels.tolist()
    got = np.array([[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in out["predictions"]])
    np.testing.assert_allclose(got, proba, rtol=1e-12)


def test_it_takes_objects_csv_and_csv_with_a_header_alike(models):
    predictor, fitted = load(models, "logistic")
    from_lists = answer(predictor, json_body(fitted.records))
    objects = [dict(zip(["x1", "x2", "city"], r, strict=True)) for r in fitted.records]
    assert answer(predictor, json_body(objects)) == from_lists
    assert answer(predictor, json.dumps(objects).encode()) == from_lists  # a bare list of records
    rows = "\n".join(",".join(str(v) for v in r) for r in fitted.records)
    assert answer(predictor, rows.encode(), CSV) == from_lists
    assert answer(predictor, ("x1,x2,city\n" + rows + "\n").encode(), "text/csv; charset=utf-8") == from_lists


def test_it_answers_multiclass_and_regression(models):
    predictor, fitted = load(models, "multiclass")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    assert [p["label"] for p in out] == fitted.estimator.predict(fitted.X).tolist()
    proba = fitted.estimator.predict_proba(fitted.X)
    np.testing.assert_allclose([[p["probabilities"][c] for c in ("a", "b", "c")] for p in out], proba)

    predictor, fitted = load(models, "regressor")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    assert set(out[0]) == {"score"}
    np.testing.assert_allclose([p["score"] for p in out], fitted.estimator.predict(fitted.X), rtol=1e-12)


def test_it_matches_scikit_learn_on_a_plain_logistic_model(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.3, size=300) > 0).astype(int)
    from studio.datasets.preprocessing import TabularPreprocessor

    pre = TabularPreprocessor()
    prepared = pre.fit(numeric_table(X, y.astype(float), ["a", "b", "c", "d"]))
    LinearLearner(epochs=30, random_state=0).fit(prepared.X, prepared.y).save(tmp_path)
    pre.save(tmp_path)
    out = answer(Predictor.from_directory(tmp_path), json_body(X[:50].tolist()))["predictions"]
    reference = LogisticRegression().fit(X, y).predict(X[:50])
    agree = np.mean([int(float(p["label"])) == r for p, r in zip(out, reference, strict=True)])
    assert agree >= 0.95


def test_it_answers_knn_with_neighbors(models):
    predictor, fitted = load(models, "knn-classifier")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    distances, indices = fitted.estimator.kneighbors(fitted.X)
    assert [p["label"] for p in out] == fitted.estimator.predict(fitted.X).tolist()
    first = out[0]["neighbors"]
    assert [n["index"] for n in first] == indices[0].tolist()
    np.testing.assert_allclose([n["distance"] for n in first], distances[0])
    train_labels = fitted.estimator.classes_[fitted.estimator.train_y_]
    assert [n["label"] for n in first] == train_labels[indices[0]].tolist()

    predictor, fitted = load(models, "knn-regressor")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    np.testing.assert_allclose([p["score"] for p in out], fitted.estimator.predict(fitted.X))
    _, indices = fitted.estimator.kneighbors(fitted.X)
    assert np.mean([n["score"] for n in out[0]["neighbors"]]) == pytest.approx(out[0]["score"])
    assert [n["index"] for n in out[0]["neighbors"]] == indices[0].tolist()


def test_it_answers_kmeans_pca_and_random_cut_forest(models):
    predictor, fitted = load(models, "kmeans")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    assert [p["cluster"] for p in out] == fitted.estimator.predict(fitted.X).tolist()
    np.testing.assert_allclose([p["distance"] for p in out], fitted.estimator.transform(fitted.X).min(axis=1))

    predictor, fitted = load(models, "pca")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    np.testing.assert_allclose([p["projection"] for p in out], fitted.estimator.transform(fitted.X))

    predictor, fitted = load(models, "random-cut-forest")
    out = answer(predictor, json_body([*fitted.records, [40.0, -40.0, 40.0]]))["predictions"]
    X = np.vstack([fitted.X, [[40.0, -40.0, 40.0]]])
    np.testing.assert_allclose([p["score"] for p in out], fitted.estimator.score_samples(X))
    assert [p["anomaly"] for p in out] == (fitted.estimator.predict(X) == 1).tolist()
    assert out[-1]["anomaly"] is True


def test_it_answers_text_models(models):
    predictor, fitted = load(models, "text-classification")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    assert [p["label"] for p in out] == fitted.estimator.predict(fitted.X).tolist()
    np.testing.assert_allclose([[p["probabilities"]["fruit"], p["probabilities"]["vehicle"]] for p in out],
                               fitted.estimator.predict_proba(fitted.X))
    # Bare lists, {"text": ...} objects and one text per CSV row (quoted when it has commas) are the same.
    assert answer(predictor, json.dumps(fitted.records).encode())["predictions"] == out
    assert answer(predictor, json_body([{"text": t} for t in fitted.records]))["predictions"] == out
    csv_body = "text\n" + "\n".join(f'"{t}"' for t in fitted.records)
    assert answer(predictor, csv_body.encode(), CSV)["predictions"] == out

    predictor, fitted = load(models, "summarization")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    assert [p["summary"] for p in out] == fitted.estimator.predict(fitted.X)

    predictor, fitted = load(models, "word2vec")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    np.testing.assert_allclose([p["vector"] for p in out], fitted.estimator.transform(fitted.X), rtol=1e-6)
    assert out[-1]["vector"] == [0.0] * len(out[-1]["vector"])  # an unknown word


def test_it_answers_image_models(models):
    predictor, fitted = load(models, "image-classification")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    assert [p["label"] for p in out] == fitted.estimator.predict(fitted.X).tolist()
    keys = fitted.estimator.classes_.tolist()
    np.testing.assert_allclose([[p["probabilities"][k] for k in keys] for p in out],
                               fitted.estimator.predict_proba(fitted.X), rtol=1e-5)
    # A grayscale image may come without its channel axis.
    flat = [np.asarray(r)[:, :, 0].tolist() for r in fitted.records]
    assert answer(predictor, json_body(flat))["predictions"] == out

    predictor, fitted = load(models, "object-detection")
    out = answer(predictor, json_body(fitted.records))["predictions"]
    expected = fitted.estimator.predict(fitted.X)
    assert len(out) == 2
    for got, want in zip(out, expected, strict=True):
        assert [b["label"] for b in got["boxes"]] == [b["label"] for b in want]
        np.testing.assert_allclose([[b["score"], b["x1"], b["y1"], b["x2"], b["y2"]] for b in got["boxes"]],
                                   [[b["score"], b["x1"], b["y1"], b["x2"], b["y2"]] for b in want], rtol=1e-6)


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"", JSON, "body is empty"),
    (b"{not json", JSON, "not valid JSON"),
    (b'{"rows": []}', JSON, 'no "instances"'),
    (b'{"instances": []}', JSON, "is empty"),
    (b'{"instances": 3}', JSON, "must be a list"),
    (b'{"instances": [[1.0, 2.0, "Paris"], [1.0, "Nice"]]}', JSON, "record 2 has 2 values, the model expects 3"),
    (b'{"instances": [{"x1": 1, "city": "Paris"}]}', JSON, "record 1 lacks column(s) 'x2'"),
    (b'{"instances": [[1.0, "abc", "Paris"]]}', JSON, "record 1: column 'x2' must be a number"),
    (b'{"instances": ["hello"]}', JSON, "record 1 must be an object"),
    (b"1,2\n", CSV, "record 1 has 2 values"),
    (b"<xml/>", "application/xml", "unsupported Content-Type"),
])
def test_it_names_what_is_wrong_with_a_tabular_body(models, body, content_type, message):
    predictor, _ = load(models, "logistic")
    with pytest.raises(PayloadError) as caught:
        predictor.invoke(body, content_type)
    assert message in str(caught.value)


def test_it_names_what_is_wrong_with_text_and_image_bodies(models):
    predictor, _ = load(models, "text-classification")
    with pytest.raises(PayloadError, match="record 2 must be a text"):
        predictor.invoke(b'{"instances": ["fine", 3]}', JSON)
    with pytest.raises(PayloadError, match="record 1 has 2 values"):
        predictor.invoke(b"apple, pear\n", CSV)

    predictor, fitted = load(models, "image-classification")
    with pytest.raises(PayloadError, match=r"record 2 has shape \(4, 4, 1\), the model expects \(8, 8, 1\)"):
        predictor.invoke(json_body([fitted.records[0], np.zeros((4, 4, 1)).tolist()]), JSON)
    with pytest.raises(PayloadError, match="record 1 is not a rectangular array"):
        predictor.invoke(b'{"instances": [[[1], [2, 3]]]}', JSON)
    with pytest.raises(PayloadError, match="record 1 must be an image"):
        predictor.invoke(b'{"instances": ["cat.png"]}', JSON)
    with pytest.raises(PayloadError, match="image models take application/json"):
        predictor.invoke(b"1,2,3\n", CSV)


def test_it_serves_old_tabular_models_by_column_names(tmp_path, models):
    fitted = models("regressor")
    fitted.estimator.save(tmp_path)  # no preprocessing.json: numbers pass through
    predictor = Predictor.from_directory(tmp_path, feature_names=["a", "b", "c"])
    assert predictor.input_names == ["a", "b", "c"]
    out = answer(predictor, json_body([dict(zip("abc", r, strict=True)) for r in fitted.records]))["predictions"]
    np.testing.assert_allclose([p["score"] for p in out], fitted.estimator.predict(fitted.X))
    assert Predictor.from_directory(tmp_path).input_names == ["x1", "x2", "x3"]


def by_records(predictor: Predictor, columns: dict[str, list[str]]) -> list[dict]:
    rows = zip(*columns.values(), strict=True)
    return predictor.predict_records([dict(zip(columns, row, strict=True)) for row in rows])


def test_it_answers_columns_as_it_answers_the_same_records(models):
    logistic, _ = load(models, "logistic")
    cells = {"x1": ["0.5", "", "NA", " 1.5 ", "true", "-2", "nan"], "x2": ["1", "2", "3", "4", "5", "6", "7"],
             "city": ["Paris", "", "NA", " Paris ", "Oslo", "Lyon", "null"], "ignored": list("abcdefg")}
    answer = logistic.predict_columns(cells)
    records = by_records(logistic, cells)
    assert answer["label"].tolist() == [r["label"] for r in records]
    assert {k: v.tolist() for k, v in answer["probabilities"].items()} == {
        k: [r["probabilities"][k] for r in records] for k in records[0]["probabilities"]}
    regressor, _ = load(models, "regressor")
    numbers = {"f1": ["1", "2", "3"], "f2": ["0.25", "1e-3", "+4"], "f3": ["-1", "0", "2"]}
    assert regressor.predict_columns(numbers)["score"].tolist() == [r["score"] for r in by_records(regressor, numbers)]
    knn, _ = load(models, "knn-regressor")
    assert knn.predict_columns(numbers) is None and not knn.answers_by_columns  # neighbors: record by record


@pytest.mark.parametrize("bad", ["1_000", "inf", "1e400", "lots", "0x10"])
def test_it_refuses_a_column_cell_with_the_per_record_message(models, bad):
    regressor, _ = load(models, "regressor")
    numbers = {"f1": ["1", "2", "3"], "f2": ["0.25", bad, "4"], "f3": ["-1", "0", bad]}
    with pytest.raises(PayloadError) as by_columns:
        regressor.predict_columns(numbers)
    with pytest.raises(PayloadError) as per_record:
        by_records(regressor, numbers)
    assert str(by_columns.value) == str(per_record.value)
    assert f"record 2: column 'f2' must be a number (got '{bad}'); record 3: column 'f3'" in str(by_columns.value)
