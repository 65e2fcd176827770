from __future__ import annotations

import numpy as np
import pytest

from studio.datasets.loading import DatasetError, load_tabular
from tests.conftest import classification_csv, csv_bytes, regression_csv
from tests.datasets.conftest import upload

pytestmark = pytest.mark.django_db


def test_it_loads_numeric_features_with_nan_for_missing_cells(world):
    content = csv_bytes([[1, 2.5, "", 10], [2, "NA", 7, 20], [3, -1e3, 8, 30]], ["a", "b", "c", "y"])
    data = load_tabular(dataset=upload(world, content), target="y")
    assert data.feature_names == ["a", "b", "c"] and data.n_dropped == 0
    assert data.X.dtype == np.float64 and data.X.shape == (3, 3)
    np.testing.assert_array_equal(data.X, [[1, 2.5, np.nan], [2, np.nan, 7], [3, -1000, 8]])
    assert data.y.dtype == np.float64 and data.y.tolist() == [10, 20, 30]
    assert data.is_numeric_target


def test_it_matches_the_generated_regression_data(world):
    data = load_tabular(dataset=upload(world, regression_csv(200)), target="price")
    assert data.X.shape == (200, 3) and data.y.shape == (200,)
    assert np.isfinite(data.X).all()


def test_it_returns_string_labels_for_a_categorical_target(world):
    data = load_tabular(dataset=upload(world, classification_csv(30)), target="churned")
    assert data.y.dtype.kind == "U" and set(data.y.tolist()) <= {"yes", "no"}
    assert data.X.shape == (30, 2) and not data.is_numeric_target


def test_it_drops_and_counts_rows_without_a_target(world):
    content = csv_bytes([[1, "a"], [2, ""], [3, "b"], [4, "null"], [5, "a"]], ["x", "label"])
    data = load_tabular(dataset=upload(world, content), target="label")
    assert data.n_dropped == 2 and data.X[:, 0].tolist() == [1, 3, 5] and data.y.tolist() == ["a", "b", "a"]


def test_it_selects_and_orders_feature_columns_and_reads_booleans_as_numbers(world):
    content = csv_bytes([[1, "true", 5, 0], [2, "False", 6, 1]], ["a", "flag", "c", "y"])
    data = load_tabular(dataset=upload(world, content), target="y", feature_columns=["flag", "a"])
    assert data.feature_names == ["flag", "a"] and data.X.tolist() == [[1, 1], [0, 2]]


def test_it_loads_without_a_target_for_unsupervised_algorithms(world):
    data = load_tabular(dataset=upload(world, csv_bytes([[1, 2], [3, 4]], ["a", "b"])), target="")
    assert data.y is None and data.X.shape == (2, 2) and data.feature_names == ["a", "b"]


def test_it_names_the_rows_of_non_numeric_feature_values(world):
    # Mostly numbers with a few words: a numeric column with typos, not a category.
    rows = [[i, "oops" if i in (3, 17) else i * 1.5, i] for i in range(1, 21)]
    with pytest.raises(DatasetError) as exc:
        load_tabular(dataset=upload(world, csv_bytes(rows, ["id", "price", "y"])), target="y")
    assert "column 'price' has non-numeric values in rows 3, 17 (e.g. 'oops')" in str(exc.value)
    assert "while its other values are numbers" in str(exc.value)


def test_it_lists_five_rows_then_counts_the_rest(world):
    rows = [[f"v{i}" if i < 10 else i, i] for i in range(1, 30)]
    with pytest.raises(DatasetError, match=r"column 'size' has non-numeric values in rows 1, 2, 3, 4, 5 and 4 more"):
        load_tabular(dataset=upload(world, csv_bytes(rows, ["size", "y"])), target="y")


def test_it_reads_text_columns_as_categories_with_blank_for_missing(world):
    content = csv_bytes([[1, "Paris", 10], [2, " Lyon ", 20], [3, "NA", 30], [4, "Paris", 40]], ["a", "city", "y"])
    data = load_tabular(dataset=upload(world, content), target="y")
    assert data.feature_names == ["a", "city"] and data.categorical == ["city"]
    assert data.column("city").tolist() == ["Paris", "Lyon", "", "Paris"]
    assert data.column("a").tolist() == [1, 2, 3, 4] and data.rows.tolist() == [1, 2, 3, 4]
    with pytest.raises(DatasetError, match="text columns 'city' must be encoded first"):
        data.X  # noqa: B018


def test_it_keeps_the_file_row_numbers_of_the_rows_it_keeps(world):
    content = csv_bytes([[1, "a"], [2, ""], [3, "b"]], ["x", "label"])
    data = load_tabular(dataset=upload(world, content), target="label")
    assert data.rows.tolist() == [1, 3]
    subset = data.take(np.array([1]))
    assert subset.rows.tolist() == [3] and subset.y.tolist() == ["b"] and subset.X.tolist() == [[3]]


def test_it_reads_a_column_as_the_training_data_did_when_told(world):
    # The validation file profiles 'code' as numbers, but training read it as text: it stays text.
    dataset = upload(world, csv_bytes([[1, 7], [2, 8]], ["code", "y"]))
    data = load_tabular(dataset=dataset, target="y", categorical=["code"])
    assert data.categorical == ["code"] and data.column("code").tolist() == ["1", "2"]
    # ...and a column training read as numbers must hold numbers.
    other = upload(world, csv_bytes([["x", 7], ["y", 8]], ["code", "y"]), "other.csv")
    with pytest.raises(DatasetError, match=r"column 'code' has non-numeric values in rows 1, 2"):
        load_tabular(dataset=other, target="y", categorical=[])


def test_it_leaves_out_excluded_columns(world):
    dataset = upload(world, csv_bytes([[1, 2, "yes"], [3, 4, "no"]], ["a", "b", "label"]))
    data = load_tabular(dataset=dataset, target="", exclude=["label"])
    assert data.feature_names == ["a", "b"] and data.y is None


@pytest.mark.parametrize(("target", "features", "message"), [
    ("x", None, "target 'x' is not a column; columns: a, y"),
    ("y", ["a", "zzz"], "feature column 'zzz' is not a column"),
    ("y", ["y"], "target 'y' cannot also be a feature column"),
    ("y", [], "no feature columns left"),
])
def test_it_explains_bad_column_choices(world, target, features, message):
    dataset = upload(world, csv_bytes([[1, 2]], ["a", "y"]))
    with pytest.raises(DatasetError, match=message):
        load_tabular(dataset=dataset, target=target, feature_columns=features)


def test_it_needs_a_feature_besides_the_target(world):
    with pytest.raises(DatasetError, match="no feature columns left"):
        load_tabular(dataset=upload(world, csv_bytes([[1]], ["y"])), target="y")


def test_it_refuses_a_dataset_without_rows(world):
    with pytest.raises(DatasetError, match="has no rows"):
        load_tabular(dataset=upload(world, b"a,y\n"), target="y")


def test_it_refuses_a_dataset_whose_targets_are_all_missing(world):
    with pytest.raises(DatasetError, match=r"every row .* is missing the target 'y'"):
        load_tabular(dataset=upload(world, csv_bytes([[1, ""], [2, ""]], ["a", "y"])), target="y")


def test_it_reads_the_delimiter_found_at_upload(world):
    data = load_tabular(dataset=upload(world, b"a;b;y\n1.5;2;3\n"), target="y")
    assert data.feature_names == ["a", "b"] and data.X.tolist() == [[1.5, 2]]
    # "1,5" is a decimal comma: not a number in a CSV, and the error says so.
    with pytest.raises(DatasetError, match=r"column 'a' has non-numeric values in row 1 \(e\.g\. '1,5'\)"):
        load_tabular(dataset=upload(world, b"a;y\n1,5;3\n", "other.csv"), target="y")
    with pytest.raises(DatasetError, match=r"rows 1, 2 \(e\.g\. '1\.200,50'\): numbers need '\.' for decimals"):
        load_tabular(dataset=upload(world, b"a;y\n1.200,50;3\n3.400,25;4\n", "third.csv"), target="y")
