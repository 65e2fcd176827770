from __future__ import annotations

import json
import math

import numpy as np
import pytest

from studio.datasets.loading import DatasetError, TabularData, load_tabular
from studio.datasets.preprocessing import MISSING, OTHER, InputError, TabularPreprocessor
from tests.conftest import csv_bytes
from tests.datasets.conftest import upload


def table(columns: dict[str, list], y: list | None = None) -> TabularData:
    """TabularData built in memory: lists of numbers (None = missing) or of strings ("" = missing)."""
    numeric_names = [n for n, v in columns.items() if not any(isinstance(x, str) for x in v)]
    n = len(next(iter(columns.values())))
    numeric = np.array([[np.nan if columns[c][i] is None else columns[c][i] for c in numeric_names]
                        for i in range(n)], dtype=np.float64).reshape(n, len(numeric_names))
    text = {}
    for name, values in columns.items():
        if name not in numeric_names:
            array = np.empty(n, dtype=object)
            array[:] = values
            text[name] = array
    return TabularData(feature_names=list(columns), numeric=numeric, numeric_names=numeric_names, text=text,
                       y=None if y is None else np.asarray(y), rows=np.arange(1, n + 1), n_dropped=0)


def test_it_one_hot_encodes_text_columns_with_a_vocabulary_learned_on_training_rows():
    data = table({"age": [30, 40, 50, 60], "city": ["Paris", "Lyon", "Paris", ""]}, y=["a", "b", "a", "b"])
    pre = TabularPreprocessor()
    train = pre.fit(data)
    assert pre.output_names == ["age", "city=Paris", "city=Lyon", f"city={MISSING}"]
    np.testing.assert_array_equal(train.X, [[30, 1, 0, 0], [40, 0, 1, 0], [50, 1, 0, 0], [60, 0, 0, 1]])
    assert train.y.tolist() == ["a", "b", "a", "b"]
    assert "One-hot encoded 'city' (2 values); 1 missing value becomes '__missing__'." in train.notes
    assert "Encoded 2 columns into 4 features." in train.notes

    # An unseen value and a missing one, with no __other__ column: no column is set, and the notes say so.
    val = pre.transform(table({"age": [35, 45], "city": ["Nice", "Lyon"]}))
    np.testing.assert_array_equal(val.X, [[35, 0, 0, 0], [45, 0, 1, 0]])
    assert any("1 value of 'city' in the validation rows was not seen in training (e.g. 'Nice') and goes to no "
               "column (all zeros)" in note for note in val.notes)


def test_it_caps_the_vocabulary_and_sends_rare_and_unseen_values_to_other():
    cities = ["A"] * 5 + ["B"] * 3 + ["C"] * 2 + ["D"]
    pre = TabularPreprocessor(max_categories=2)
    train = pre.fit(table({"city": cities}))
    assert pre.output_names == ["city=A", "city=B", f"city={OTHER}"]
    assert train.X[:, 2].sum() == 3  # C, C, D
    assert any("kept the 2 most frequent of 4 values, the other 2 (3 rows) become '__other__'" in n
               for n in train.notes)
    X = pre.transform_records([{"city": "Z"}, {"city": "A"}, {"city": None}])
    np.testing.assert_array_equal(X, [[0, 0, 1], [1, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize(("strategy", "fill", "words"), [
    ("mean", 20.0, "Imputed 1 missing value in 'age' with the mean 20."),
    ("median", 12.0, "Imputed 1 missing value in 'age' with the median 12."),
    ("zero", 0.0, "Imputed 1 missing value in 'age' with 0."),
])
def test_it_imputes_missing_numbers_with_the_chosen_statistic_of_the_training_rows(strategy, fill, words):
    pre = TabularPreprocessor(missing_values=strategy)
    train = pre.fit(table({"age": [10, None, 12, 38]}))
    assert train.X[1, 0] == fill and words in train.notes
    val = pre.transform(table({"age": [None, 5]}))
    assert val.X[:, 0].tolist() == [fill, 5]
    assert any("of the validation rows with" in n for n in val.notes)


def test_it_drops_rows_with_missing_numbers_and_refuses_them_at_prediction():
    data = table({"age": [10, None, 20, 30], "city": ["a", "b", "a", "b"]}, y=[1, 2, 3, 4])
    pre = TabularPreprocessor(missing_values="drop_rows")
    train = pre.fit(data)
    assert train.X.shape == (3, 3) and train.y.tolist() == [1, 3, 4] and train.rows.tolist() == [1, 3, 4]
    assert "Dropped 1 row of 4 training rows with missing values (in 'age' (1))." in train.notes
    with pytest.raises(InputError, match=r"record 1 has no value for 'age'.*missing_values='drop_rows'"):
        pre.transform_records([{"age": None, "city": "a"}])


def test_it_fails_on_missing_numbers_when_told_to_naming_the_rows():
    pre = TabularPreprocessor(missing_values="fail")
    with pytest.raises(DatasetError, match=r"column 'age' has missing values in rows 2, 4 of the training data, "
                                           r"and missing_values is 'fail'"):
        pre.fit(table({"age": [10, None, 20, None]}))


def test_it_refuses_drop_rows_when_no_row_is_left():
    with pytest.raises(DatasetError, match="every row of the training data has a missing value"):
        TabularPreprocessor(missing_values="drop_rows").fit(table({"age": [None, None], "b": [1, None]}))


def test_it_fills_a_column_without_any_value_with_zero():
    pre = TabularPreprocessor()
    train = pre.fit(table({"a": [None, None], "b": [1, 2]}))
    assert train.X[:, 0].tolist() == [0, 0] and "Column 'a' has no values at all; filled it with 0." in train.notes


def test_it_round_trips_through_json_and_transforms_records_the_same_way(tmp_path):
    data = table({"age": [30, None, 50], "city": ["Paris", "Lyon", ""], "n": [1, 2, 3]})
    pre = TabularPreprocessor()
    train = pre.fit(data)
    pre.save(tmp_path)
    document = json.loads((tmp_path / "preprocessing.json").read_text())
    assert document["format"] == "studio-preprocessing" and document["missing_values"] == "mean"
    assert document["features"] == pre.output_names
    loaded = TabularPreprocessor.load(tmp_path)
    records = [{"age": 30, "city": "Paris", "n": 1}, [None, "Lyon", "2"], {"age": "50", "city": None, "n": 3}]
    np.testing.assert_array_equal(loaded.transform_records(records), train.X)


@pytest.mark.parametrize(("records", "message"), [
    ([{"age": 1}], r"record 1 lacks column\(s\) 'city'"),
    ([[1, "a", 3]], "record 1 has 3 values, the model expects 2: age, city"),
    ([{"age": "abc", "city": "a"}], r"record 1: column 'age' must be a number \(got 'abc'\)"),
    ({"age": 1}, "send a list of records"),
    (["text"], "record 1 must be an object of column: value or a list of values"),
])
def test_it_names_the_record_and_column_of_bad_input(records, message):
    pre = TabularPreprocessor()
    pre.fit(table({"age": [1, 2], "city": ["a", "b"]}))
    with pytest.raises(InputError, match=message):
        pre.transform_records(records)


@pytest.mark.parametrize("document", [
    {"format": "other"},
    {"format": "studio-preprocessing", "format_version": 99},
    {"format": "studio-preprocessing", "format_version": 1, "missing_values": "guess", "columns": []},
    {"format": "studio-preprocessing", "format_version": 1, "missing_values": "mean", "columns": []},
    {"format": "studio-preprocessing", "format_version": 1, "missing_values": "mean",
     "columns": [{"name": "a", "kind": "numeric", "fill": "NaN"}]},
    {"format": "studio-preprocessing", "format_version": 1, "missing_values": "mean",
     "columns": [{"name": "a", "kind": "categorical", "categories": ["x", "x"], "other": False, "missing": False}]},
    {"format": "studio-preprocessing", "format_version": 1, "missing_values": "mean",
     "columns": [{"name": "a", "kind": "numeric", "fill": 1}, {"name": "a", "kind": "numeric", "fill": 1}]},
    {"format": "studio-preprocessing", "format_version": 1, "missing_values": "mean",
     "columns": [{"name": "a", "kind": "code"}]},
])
def test_it_refuses_a_broken_or_foreign_document(document):
    with pytest.raises(ValueError):
        TabularPreprocessor.from_json(document)


def test_it_refuses_an_unknown_strategy():
    with pytest.raises(ValueError, match="missing_values must be one of mean, median, zero, drop_rows, fail"):
        TabularPreprocessor(missing_values="guess")


def test_a_passthrough_keeps_missing_numbers_for_old_models():
    pre = TabularPreprocessor.passthrough(["a", "b"])
    X = pre.transform_records([[1, None]])
    assert X[0, 0] == 1 and math.isnan(X[0, 1])


@pytest.mark.django_db
def test_it_prepares_an_uploaded_csv_with_text_and_gaps(world):
    rows = [[i, "" if i % 5 == 0 else i * 2.0, ["red", "green", "blue"][i % 3] if i % 7 else "", i % 2]
            for i in range(1, 31)]
    dataset = upload(world, csv_bytes(rows, ["id", "size", "colour", "label"]))
    data = load_tabular(dataset=dataset, target="label")
    assert data.categorical == ["colour"]
    train = TabularPreprocessor().fit(data)
    assert train.X.shape == (30, 2 + 4) and np.isfinite(train.X).all()
    assert "Imputed 6 missing values in 'size' with the mean 30." in train.notes
    assert any(n.startswith("One-hot encoded 'colour' (3 values); 4 missing values become '__missing__'")
               for n in train.notes)
