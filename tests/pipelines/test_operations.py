"""The processing operations on tables, checked against plain numpy/python computed from the same CSV."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from studio.datasets.profiling import is_missing
from studio.pipelines.steps import operations as ops
from tests.conftest import classification_csv, csv_bytes, regression_csv


def table_of(tmp_path: Path, content: bytes, *, delimiter: str = ",") -> pa.Table:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    return ops.read_table(path, delimiter=delimiter)


def rows_of(content: bytes, *, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(content.decode()), delimiter=delimiter))
    return [h.strip() for h in rows[0]], [r for r in rows[1:] if r]


def written(tmp_path: Path, table: pa.Table) -> tuple[list[str], list[list[str]]]:
    path = tmp_path / "out.csv"
    ops.write_table(table, path)
    return rows_of(path.read_bytes())


def cells(table: pa.Table, name: str) -> list[str]:
    return table.column(name).to_pylist()


def mixed_csv() -> bytes:
    return csv_bytes([
        [1, 1.5, "Paris", "yes"], [2, "NA", "Lyon", "no"], [3, 3.25, "", "yes"], [4, 4, "Paris", "no"],
        [5, 1e3, "Nice", "yes"], [6, -0.125, "null", "no"], [7, "", "Lyon", "yes"], [8, 0.1, "Paris", "no"],
    ], ["id", "x", "city", "y"])


# --- reading and writing -------------------------------------------------------------------------------


def test_it_reads_every_cell_as_its_text_and_writes_it_back_unchanged(tmp_path):
    content = csv_bytes([["007", "0.1000", "1e-7", "a b "], ["8", "-0", "12345678901234567890", "x"]],
                        ["code", "a", "big", "text"])
    table = table_of(tmp_path, content)
    assert table.column_names == ["code", "a", "big", "text"]
    assert written(tmp_path, table) == rows_of(content)


def test_it_reads_a_semicolon_file_with_quoted_cells_and_strips_header_names(tmp_path):
    content = b' id ;note\n1;"a;b"\n2;"say ""hi"""\n3;"two\nlines"\n'
    table = table_of(tmp_path, content, delimiter=";")
    assert table.column_names == ["id", "note"]
    assert cells(table, "note") == ["a;b", 'say "hi"', "two\nlines"]
    # Cells holding a comma, a quote or a newline come out quoted, and read back the same.
    assert written(tmp_path, table) == (["id", "note"], [["1", "a;b"], ["2", 'say "hi"'], ["3", "two\nlines"]])


def test_a_computed_number_is_written_as_the_shortest_text_that_reads_back_exactly(tmp_path):
    values = np.array([0.1, 1 / 3, 1e20, 2.5e-7, -123.456, 1e-320, 3.0])
    table = ops._replace(pa.table({"v": ["0"] * len(values)}), "v", ops._number_texts(values))
    _, rows = written(tmp_path, table)
    assert [float(r[0]) for r in rows] == values.tolist()
    assert rows[0] == ["0.1"] and rows[-1] == ["3"]


# --- split ----------------------------------------------------------------------------------------------


def test_split_makes_disjoint_parts_in_file_order_whose_union_is_the_input(tmp_path):
    content = regression_csv(n=200)
    table = table_of(tmp_path, content)
    parts = ops.split(table, fractions={"train": 0.7, "validation": 0.15, "test": 0.15}, seed=3)
    header, rows = rows_of(content)
    assert {name: part.num_rows for name, part in parts.items()} == {"train": 140, "validation": 30, "test": 30}
    seen = []
    for part in parts.values():
        keys = [tuple(r) for r in zip(*(cells(part, c) for c in header), strict=True)]
        positions = [rows.index(list(k)) for k in keys]
        assert positions == sorted(positions)  # each part keeps the file's order
        seen.extend(positions)
    assert sorted(seen) == list(range(200))  # disjoint, and nothing lost


def test_split_is_reproducible_with_a_seed_and_changes_with_another(tmp_path):
    table = table_of(tmp_path, regression_csv(n=120))
    fractions = {"train": 0.5, "test": 0.5}
    one = ops.split(table, fractions=fractions, seed=7)
    again = ops.split(table, fractions=fractions, seed=7)
    other = ops.split(table, fractions=fractions, seed=8)
    assert set(one) == {"train", "test"}
    assert cells(one["test"], "x1") == cells(again["test"], "x1")
    assert cells(one["test"], "x1") != cells(other["test"], "x1")


def test_a_stratified_split_keeps_the_class_ratios_in_every_part(tmp_path):
    labels = ["a"] * 120 + ["b"] * 60 + ["c"] * 20
    rng = np.random.default_rng(0)
    rng.shuffle(labels)
    content = csv_bytes([[i, label] for i, label in enumerate(labels)], ["id", "label"])
    table = table_of(tmp_path, content)
    fractions = {"train": 0.6, "validation": 0.2, "test": 0.2}
    parts = ops.split(table, fractions=fractions, seed=1, stratify="label")
    for name, part in parts.items():
        counts = {c: cells(part, "label").count(c) for c in "abc"}
        expected = {"a": 120 * fractions[name], "b": 60 * fractions[name], "c": 20 * fractions[name]}
        assert all(abs(counts[c] - expected[c]) <= 1 for c in "abc"), (name, counts)
    assert sum(p.num_rows for p in parts.values()) == 200


def test_split_refuses_a_part_that_would_be_empty(tmp_path):
    table = table_of(tmp_path, csv_bytes([[1], [2]], ["x"]))
    with pytest.raises(ops.OperationError, match="the test part would be empty: 2 row"):
        ops.split(table, fractions={"train": 0.7, "validation": 0.2, "test": 0.1})


# --- normalize, impute, one-hot ------------------------------------------------------------------------


def test_standard_normalize_gives_mean_0_and_std_1_as_numpy_computes_them(tmp_path):
    content = regression_csv(n=150)
    table = table_of(tmp_path, content)
    out, stats = ops.normalize(table, columns=["x1", "price"], method="standard")
    header, rows = rows_of(content)
    for name in ("x1", "price"):
        x = np.array([float(r[header.index(name)]) for r in rows])
        reference = (x - x.mean()) / x.std()
        got = np.array([float(v) for v in cells(out, name)])
        assert got.tolist() == reference.tolist()  # the written text reads back as the very same float64
        assert abs(got.mean()) < 1e-12 and abs(got.std() - 1) < 1e-12
        assert stats[name] == {"mean": x.mean(), "std": x.std()}
    assert cells(out, "x2") == cells(table, "x2")  # other columns keep their text


def test_minmax_normalize_scales_to_0_1_and_keeps_missing_cells_missing(tmp_path):
    table = table_of(tmp_path, mixed_csv())
    out, stats = ops.normalize(table, columns=["x"], method="minmax")
    x = [None if is_missing(v) else float(v) for v in cells(table, "x")]
    low, high = min(v for v in x if v is not None), max(v for v in x if v is not None)
    expected = ["" if v is None else (v - low) / (high - low) for v in x]
    got = ["" if v == "" else float(v) for v in cells(out, "x")]
    assert got == expected and stats["x"] == {"min": low, "max": high}


def test_normalize_turns_a_constant_column_into_zeros_and_names_a_text_cell(tmp_path):
    table = table_of(tmp_path, csv_bytes([[5, "a"], [5, "b"], [5, "1"]], ["c", "t"]))
    out, _ = ops.normalize(table, columns=["c"])
    assert cells(out, "c") == ["0", "0", "0"]
    with pytest.raises(ops.OperationError, match=r"column 't' is not numeric: row 1 holds 'a' \(2 such rows\)"):
        ops.normalize(table, columns=["t"])


def test_impute_fills_missing_cells_like_a_python_reference_and_leaves_others_alone(tmp_path):
    table = table_of(tmp_path, mixed_csv())
    x = [float(v) for v in cells(table, "x") if not is_missing(v)]
    city = [v.strip() for v in cells(table, "city") if not is_missing(v)]
    cases = {
        "mean": ("x", repr(sum(x) / len(x))),
        "median": ("x", repr(float(np.median(x)))),
        "most_frequent": ("city", max(sorted(set(city)), key=city.count)),
    }
    for strategy, (column, fill) in cases.items():
        out, fills = ops.impute(table, columns=[column], strategy=strategy)
        expected = [fill if is_missing(v) else v for v in cells(table, column)]
        assert cells(out, column) == expected and fills == {column: fill}, strategy
    out, fills = ops.impute(table, columns=["x", "city"], strategy="constant", value=0)
    assert cells(out, "x") == ["1.5", "0", "3.25", "4", "1000.0", "-0.125", "0", "0.1"]
    assert cells(out, "city") == ["Paris", "Lyon", "0", "Paris", "Nice", "0", "Lyon", "Paris"]


def test_impute_without_a_strategy_takes_the_mean_of_numbers_and_the_commonest_text(tmp_path):
    table = table_of(tmp_path, mixed_csv())
    assert ops.columns_with_missing(table) == ["x", "city"]
    _, fills = ops.impute(table, columns=["x", "city"])
    x = [float(v) for v in cells(table, "x") if not is_missing(v)]
    assert fills == {"x": repr(sum(x) / len(x)), "city": "Paris"}
    with pytest.raises(ops.OperationError, match="column 'city' is not numeric"):
        ops.impute(table, columns=["city"], strategy="median")


def test_one_hot_makes_a_1_0_column_per_value_in_the_columns_place(tmp_path):
    table = table_of(tmp_path, mixed_csv())
    out, encoded = ops.one_hot(table, columns=["city"])
    assert encoded == {"city": ["city_Lyon", "city_Nice", "city_Paris"]}
    assert out.column_names == ["id", "x", "city_Lyon", "city_Nice", "city_Paris", "y"]
    for value in ("Lyon", "Nice", "Paris"):
        assert cells(out, f"city_{value}") == ["1" if c.strip() == value else "0" for c in cells(table, "city")]
    kept, _ = ops.one_hot(table, columns=["y"], drop_original=False)
    assert kept.column_names == ["id", "x", "city", "y", "y_no", "y_yes"]


def test_one_hot_refuses_a_column_with_too_many_values(tmp_path, monkeypatch):
    monkeypatch.setattr(ops, "MAX_ONE_HOT_VALUES", 3)
    with pytest.raises(ops.OperationError, match="column 'id' has 8 distinct values"):
        ops.one_hot(table_of(tmp_path, mixed_csv()), columns=["id"])


# --- filter, select, join ------------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "op", "value"), [
    ("x", ">", 1), ("x", ">=", 1.5), ("x", "<", 4), ("x", "<=", 4), ("x", "==", 4), ("x", "!=", 4),
    ("city", "==", "Paris"), ("city", "!=", "Paris"), ("city", "in", ["Lyon", "Nice"]), ("id", "in", [2, 5.0, "8"]),
    ("x", "is_null", None), ("city", "not_null", None), ("y", "<", "p"),
])
def test_filter_rows_keeps_the_rows_a_python_reference_keeps(tmp_path, column, op, value):
    content = mixed_csv()
    table = table_of(tmp_path, content)
    header, rows = rows_of(content)
    index = header.index(column)

    def keep(cell: str) -> bool:
        if op == "is_null":
            return is_missing(cell)
        if op == "not_null":
            return not is_missing(cell)
        if is_missing(cell):
            return op == "!="
        if op == "in":
            numbers = [float(v) for v in value if not isinstance(v, str)]
            return cell.strip() in [v for v in value if isinstance(v, str)] or (
                bool(numbers) and float(cell) in numbers)
        left, right = (float(cell), float(value)) if isinstance(value, int | float) else (cell.strip(), value)
        return {"==": left == right, "!=": left != right, ">": left > right, ">=": left >= right,
                "<": left < right, "<=": left <= right}[op]

    out = ops.filter_rows(table, column=column, op=op, value=value)
    assert cells(out, "id") == [r[0] for r in rows if keep(r[index])]


def test_filter_rows_names_a_missing_column_and_a_non_numeric_one(tmp_path):
    table = table_of(tmp_path, mixed_csv())
    with pytest.raises(ops.OperationError, match="column: no column 'age'; the columns are id, x, city, y"):
        ops.filter_rows(table, column="age", op=">", value=3)
    with pytest.raises(ops.OperationError, match="column 'city' is not numeric"):
        ops.filter_rows(table, column="city", op=">", value=3)


def test_select_columns_keeps_the_listed_order_or_drops(tmp_path):
    table = table_of(tmp_path, mixed_csv())
    assert ops.select_columns(table, columns=["y", "id"]).column_names == ["y", "id"]
    assert ops.select_columns(table, drop=["x", "city"]).column_names == ["id", "y"]
    with pytest.raises(ops.OperationError, match="drop: no column would be left"):
        ops.select_columns(table, drop=["id", "x", "city", "y"])
    with pytest.raises(ops.OperationError, match="columns: no columns 'a', 'b'"):
        ops.select_columns(table, columns=["a", "b"])


@pytest.mark.parametrize("how", ops.JOIN_HOWS)
def test_join_gives_the_rows_of_a_nested_loop_reference(tmp_path, how):
    left_content = csv_bytes([[1, "a"], [2, "b"], [3, "c"], [3, "c2"], ["", "nokey"]], ["k", "v"])
    right_content = csv_bytes([[3, "x", 30], [1, "y", 10], [3, "z", 31], [9, "w", 90]], ["k", "v", "w"])
    left = table_of(tmp_path, left_content)
    right = table_of(tmp_path, right_content)
    out = ops.join(left, right, on=["k"], how=how)
    assert out.column_names == ["k", "v", "v_right", "w"]

    _, lrows = rows_of(left_content)
    _, rrows = rows_of(right_content)
    expected, matched_right = [], set()
    for lrow in lrows:
        matches = [(j, r) for j, r in enumerate(rrows) if lrow[0] and r[0] == lrow[0]]
        for j, r in matches:
            matched_right.add(j)
            expected.append([lrow[0], lrow[1], r[1], r[2]])
        if not matches and how in ("left", "outer"):
            expected.append([lrow[0], lrow[1], "", ""])
    if how in ("right", "outer"):
        expected += [[r[0], "", r[1], r[2]] for j, r in enumerate(rrows) if j not in matched_right]
    _, got = written(tmp_path, out)
    assert got == expected


def test_join_names_a_key_the_right_table_lacks(tmp_path):
    left = table_of(tmp_path, csv_bytes([[1]], ["k"]))
    right = pa.table({"id": ["1"]})
    with pytest.raises(ops.OperationError, match=r"on: no column 'k'; the columns are id. \(in the right dataset\)"):
        ops.join(left, right, on=["k"])


def test_numbers_reads_like_profiling(tmp_path):
    content = classification_csv(n=20)
    table = table_of(tmp_path, content)
    _, rows = rows_of(content)
    assert ops.numbers(table, "f1").tolist() == [float(r[0]) for r in rows]
    assert math.isnan(ops.numbers(table_of(tmp_path, mixed_csv()), "x")[1])


def test_columns_with_missing_can_keep_the_numeric_ones_only(tmp_path):
    table = table_of(tmp_path, mixed_csv())
    assert ops.columns_with_missing(table) == ["x", "city"]
    assert ops.columns_with_missing(table, numeric_only=True) == ["x"]
