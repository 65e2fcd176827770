"""The processing step: a built-in transform of a tabular dataset into new datasets.

The work happens on the step's worker (operations.py, with pyarrow); each result becomes a new ready,
profiled dataset of the project named ``<input>-<operation>-<run number>``, keeping the input's target.
Each output records where it came from in its profile (``profile["pipeline"]``): a step started again
after its worker died reuses what the first start already stored instead of storing it twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from studio.pipelines.steps import operations as ops
from studio.pipelines.steps.base import Arg, Done, StepContext, StepFailed, StepKind
from studio.pipelines.steps.jobs import get_object, has_ref, is_ref, present

if TYPE_CHECKING:
    from studio.accounts.models import Project
    from studio.datasets.models import Dataset

OPERATIONS = ("split", "normalize", "impute", "one_hot", "filter_rows", "select_columns", "join")
# The arguments each operation reads besides operation and dataset.
OPERATION_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "split": ("fractions", "seed", "stratify"),
    "normalize": ("columns", "method"),
    "impute": ("columns", "strategy", "value"),
    "one_hot": ("columns", "drop_original"),
    "filter_rows": ("column", "op", "value"),
    "select_columns": ("columns", "drop"),
    "join": ("right", "on", "how"),
}
DEFAULT_FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}
NUMERIC_DTYPES = ("int", "float")
DATASET_NAME_MAX = 200
_FILE_JUNK = re.compile(r"[^A-Za-z0-9._-]+")


def _column_list_error(value: Any, *, required: bool) -> str | None:
    if value is None:
        return "Name the columns." if required else None
    if has_ref(value):
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        return 'A list of column names, e.g. ["age", "city"].'
    if required and not value:
        return "Name at least one column."
    if len(set(value)) != len(value):
        return "A column is listed twice."
    return None


def _fraction_errors(fractions: Any) -> str | None:
    if not isinstance(fractions, dict):
        return 'An object such as {"train": 0.7, "validation": 0.15, "test": 0.15}.'
    unknown = [key for key in fractions if key not in ops.SPLIT_PARTS]
    if unknown:
        return f"Unknown part {', '.join(repr(k) for k in unknown)}; the parts are train, validation and test."
    if any(has_ref(v) for v in fractions.values()):
        return None
    values = list(fractions.values())
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
               for v in values):
        return "Each fraction is a number from 0 to 1."
    if abs(sum(values) - 1) > 1e-6:
        return f"The fractions must add up to 1 (they add up to {sum(values):g})."
    if sum(1 for v in values if v > 0) < 2:
        return "Split into at least two parts with a fraction above 0."
    if not (fractions.get("train") or 0) > 0:
        return "The train part needs a fraction above 0 (it is the step's dataset output)."
    return None


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or (isinstance(value, int | float) and math.isfinite(value))


class ProcessingStep(StepKind):
    type = "processing"
    title = "Process data"
    description = ("A built-in transform of a tabular dataset (split, normalize, impute, one-hot, filter rows, "
                   "select columns, join) that makes new datasets.")
    arguments = {
        "operation": Arg("string", required=True, help="What to do with the dataset.", choices=OPERATIONS),
        "dataset": Arg("dataset", required=True, help="The tabular dataset to process (id or name, or a ref)."),
        "fractions": Arg("object", help='split: the share of rows of each part, adding up to 1 (default {"train": '
                                        '0.7, "validation": 0.15, "test": 0.15}); parts at 0 are left out.'),
        "seed": Arg("number", help="split: the random seed; the same seed gives the same parts (default 0)."),
        "stratify": Arg("string", help="split: a column whose class ratios every part keeps."),
        "columns": Arg("list", help="normalize: the columns (default every numeric column but the target); impute: "
                                    "the columns (default every column with missing cells, numeric ones for mean "
                                    "and median); one_hot, select_columns: the columns."),
        "method": Arg("string", help="normalize: standard (mean 0, std 1; the default) or minmax (0 to 1).",
                      choices=ops.NORMALIZE_METHODS),
        "strategy": Arg("string", help="impute: how missing cells are filled (default mean for numeric columns, "
                                       "most_frequent for others).", choices=ops.IMPUTE_STRATEGIES),
        "value": Arg("any", help="impute: the constant to fill; filter_rows: the value to compare with (a list "
                                 "for 'in')."),
        "drop_original": Arg("boolean", help="one_hot: remove the encoded column (default true)."),
        "column": Arg("string", help="filter_rows: the column to test."),
        "op": Arg("string", help="filter_rows: how to compare the column with value.", choices=ops.FILTER_OPS),
        "drop": Arg("list", help="select_columns: columns to remove (instead of listing those to keep)."),
        "right": Arg("dataset", help="join: the dataset to join with."),
        "on": Arg("any", help="join: the key column, or a list of them, in both datasets."),
        "how": Arg("string", help="join: inner (default), left, right or outer.", choices=ops.JOIN_HOWS),
    }
    outputs = {"dataset": "dataset", "train": "dataset", "validation": "dataset", "test": "dataset"}
    cacheable = True

    # --- checking -----------------------------------------------------------------------------------

    def output_kinds(self, arguments: dict[str, Any]) -> dict[str, str]:
        if arguments.get("operation") != "split":
            return {"dataset": "dataset"}
        fractions = arguments.get("fractions", DEFAULT_FRACTIONS)
        if has_ref(fractions) or _fraction_errors(fractions):
            return dict(self.outputs)
        return {"dataset": "dataset", **{part: "dataset" for part in ops.SPLIT_PARTS
                                         if (fractions.get(part) or 0) > 0}}

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        arguments = present(arguments)
        operation = arguments.get("operation")
        if operation not in OPERATIONS:
            return {}  # a ref (checked when it runs), or reported by the definition's check of choices
        errors: dict[str, str] = {}
        takes = OPERATION_ARGUMENTS[operation]
        for name in arguments:
            if name not in ("operation", "dataset", *takes):
                errors[f"arguments.{name}"] = (f"The {operation} operation takes no '{name}'; it takes "
                                               f"{', '.join(takes)}.")
        check = getattr(self, f"_check_{operation}")
        for name, message in check(arguments).items():
            if message:
                errors.setdefault(f"arguments.{name}", message)
        return errors

    def _check_split(self, a: dict[str, Any]) -> dict[str, str | None]:
        seed = a.get("seed")
        bad_seed = seed is not None and not is_ref(seed) and not (
            isinstance(seed, int | float) and not isinstance(seed, bool) and math.isfinite(seed)
            and float(seed).is_integer() and 0 <= seed < 2**32)
        stratify = a.get("stratify")
        return {
            "fractions": _fraction_errors(a["fractions"]) if "fractions" in a and not is_ref(a["fractions"]) else None,
            "seed": f"A whole number from 0 to {2**32 - 1} (got {seed!r})." if bad_seed else None,
            "stratify": "Name a column." if isinstance(stratify, str) and not stratify.strip() else None,
        }

    def _check_normalize(self, a: dict[str, Any]) -> dict[str, str | None]:
        return {"columns": _column_list_error(a.get("columns"), required=False)}

    def _check_impute(self, a: dict[str, Any]) -> dict[str, str | None]:
        value = a.get("value")
        problem = None
        if a.get("strategy") == "constant" and value is None:
            problem = "The constant strategy needs a value to fill."
        elif value is not None and not is_ref(value) and not _scalar(value):
            problem = "A number, a string or true/false."
        elif value is not None and a.get("strategy") not in ("constant", None) and not is_ref(a.get("strategy")):
            problem = f"Only the constant strategy takes a value (strategy is {a.get('strategy')})."
        return {"columns": _column_list_error(a.get("columns"), required=False), "value": problem}

    def _check_one_hot(self, a: dict[str, Any]) -> dict[str, str | None]:
        return {"columns": _column_list_error(a.get("columns"), required=True)}

    def _check_filter_rows(self, a: dict[str, Any]) -> dict[str, str | None]:
        op, value, column = a.get("op"), a.get("value"), a.get("column")
        problems: dict[str, str | None] = {
            "column": "Name the column to test." if column is None or (isinstance(column, str) and not column.strip())
            else None,
            "op": f"Choose how to compare: {', '.join(ops.FILTER_OPS)}." if op is None else None,
        }
        if op in ("is_null", "not_null"):
            problems["value"] = f"{op} takes no value." if value is not None else None
        elif op is not None and not is_ref(op) and not has_ref(value):
            if value is None:
                problems["value"] = f"Give the value to compare with {op}."
            elif op == "in" and not (isinstance(value, list) and value and all(_scalar(v) for v in value)):
                problems["value"] = "'in' takes a non-empty list of numbers, strings or true/false."
            elif op != "in" and not _scalar(value):
                problems["value"] = f"{op} compares with a number, a string or true/false."
            elif isinstance(value, bool) and op not in ("==", "!="):
                problems["value"] = f"true/false can only be compared with == or != (got {op})."
        return problems

    def _check_select_columns(self, a: dict[str, Any]) -> dict[str, str | None]:
        columns, drop = a.get("columns"), a.get("drop")
        if columns is None and drop is None:
            return {"columns": "Name the columns to keep (columns) or to remove (drop)."}
        if columns is not None and drop is not None:
            return {"drop": "Give columns to keep or drop to remove, not both."}
        if columns is not None:
            return {"columns": _column_list_error(columns, required=True)}
        return {"drop": _column_list_error(drop, required=True)}

    def _check_join(self, a: dict[str, Any]) -> dict[str, str | None]:
        on = a.get("on")
        bad_on = on is None or (not has_ref(on) and not (
            (isinstance(on, str) and on.strip())
            or (isinstance(on, list) and on and all(isinstance(v, str) and v.strip() for v in on))))
        return {"right": "Choose the dataset to join with." if a.get("right") is None else None,
                "on": "Name the key column, or a list of them." if bad_on else None}

    # --- running ------------------------------------------------------------------------------------

    def start(self, ctx: StepContext) -> Done:
        from studio.datasets.models import Dataset

        arguments = present(ctx.arguments)
        errors = self.validate(arguments, project=ctx.project)
        operation = arguments.get("operation")
        if operation not in OPERATIONS:
            errors.setdefault("arguments.operation", f"Must be one of {', '.join(OPERATIONS)} (got {operation!r}).")
        if errors:
            raise StepFailed("; ".join(f"{k.removeprefix('arguments.')}: {v}" for k, v in errors.items()))
        source = _tabular(get_object(Dataset, ctx.project, arguments.get("dataset"), what="dataset"))
        right = _tabular(get_object(Dataset, ctx.project, arguments["right"], what="dataset")) \
            if operation == "join" else None
        fingerprint = _fingerprint(operation, arguments, source, right)
        parts = list(self.output_kinds(arguments)) if operation == "split" else ["dataset"]
        parts = [p for p in parts if p != "dataset"] or ["dataset"]
        reused = _reusable(ctx, fingerprint)
        if all(part in reused for part in parts):
            return _done(operation, {part: reused[part] for part in parts}, reused=True)

        table = _read(source)
        ctx.heartbeat()
        try:
            results, details = self._run(operation, arguments, table, source, right)
        except ops.OperationError as exc:
            raise StepFailed(f"{operation} of dataset '{source.name}': {exc}") from None
        ctx.heartbeat()
        made = {}
        for part, result in results.items():
            if result.num_rows == 0:
                raise StepFailed(f"{operation} of dataset '{source.name}' left no rows.")
            made[part] = reused.get(part) or _store(ctx, result, source=source, operation=operation, part=part,
                                                    fingerprint=fingerprint, details=details)
            ctx.heartbeat()
        return _done(operation, made, reused=False)

    def _run(self, operation: str, a: dict[str, Any], table: Any, source: Dataset,
             right: Dataset | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """{part: table} ("dataset" unless split) and what to remember about the operation in the profile."""
        if operation == "split":
            fractions = a.get("fractions", DEFAULT_FRACTIONS)
            parts = ops.split(table, fractions=fractions, seed=int(a.get("seed") or 0), stratify=a.get("stratify"))
            return parts, {"fractions": fractions, "seed": int(a.get("seed") or 0), "stratify": a.get("stratify")}
        if operation == "normalize":
            columns = a.get("columns") or _numeric_columns(source, table)
            out, stats = ops.normalize(table, columns=columns, method=a.get("method") or "standard")
            return {"dataset": out}, {"method": a.get("method") or "standard", "statistics": stats}
        if operation == "impute":
            # Left to choose, a mean or median fills the numeric columns only; text has neither.
            columns = a.get("columns") or ops.columns_with_missing(
                table, numeric_only=a.get("strategy") in ("mean", "median"))
            out, fills = ops.impute(table, columns=columns, strategy=a.get("strategy"), value=a.get("value"))
            return {"dataset": out}, {"strategy": a.get("strategy") or "auto", "filled_with": fills}
        if operation == "one_hot":
            out, encoded = ops.one_hot(table, columns=a["columns"], drop_original=a.get("drop_original", True))
            return {"dataset": out}, {"encoded": encoded}
        if operation == "filter_rows":
            out = ops.filter_rows(table, column=a["column"], op=a["op"], value=a.get("value"))
            return {"dataset": out}, {"column": a["column"], "op": a["op"], "value": a.get("value"),
                                      "kept_rows": out.num_rows, "input_rows": table.num_rows}
        if operation == "select_columns":
            out = ops.select_columns(table, columns=a.get("columns"), drop=a.get("drop"))
            return {"dataset": out}, {"columns": out.column_names}
        right_table = _read(right)
        on = ops.value_list(a["on"])
        try:
            ops.require_columns(right_table, on, argument="on")
        except ops.OperationError as exc:
            raise ops.OperationError(f"{exc} (in the right dataset '{right.name}')") from None
        out = ops.join(table, right_table, on=on, how=a.get("how") or "inner")
        return {"dataset": out}, {"right": str(right.id), "on": on, "how": a.get("how") or "inner"}


# --- datasets in and out ----------------------------------------------------------------------------------


def _tabular(dataset: Dataset) -> Dataset:
    from studio.datasets.models import DatasetKind, DatasetStatus

    if dataset.kind != DatasetKind.TABULAR:
        raise StepFailed(f"dataset '{dataset.name}' is {dataset.kind}; processing works on tabular datasets.")
    if dataset.status != DatasetStatus.READY or not dataset.file:
        raise StepFailed(f"dataset '{dataset.name}' is {dataset.status}, not ready.")
    return dataset


def _read(dataset: Dataset) -> Any:
    from studio.core.storage import storage_local_copy

    try:
        with storage_local_copy(dataset.file, suffix=".csv") as path:
            return ops.read_table(path, delimiter=(dataset.profile or {}).get("delimiter") or ",")
    except ops.OperationError as exc:
        raise StepFailed(f"dataset '{dataset.name}': {exc}") from None
    except FileNotFoundError:
        raise StepFailed(f"the stored file of dataset '{dataset.name}' is missing.") from None


def _numeric_columns(dataset: Dataset, table: Any) -> list[str]:
    columns = [c["name"] for c in dataset.columns or []
               if isinstance(c, dict) and c.get("dtype") in NUMERIC_DTYPES and c.get("name") != dataset.target
               and c.get("name") in table.column_names]
    if not columns:
        raise StepFailed(f"dataset '{dataset.name}' has no numeric column to normalize besides its target "
                         f"'{dataset.target}'." if dataset.target else
                         f"dataset '{dataset.name}' has no numeric column to normalize.")
    return columns


def _fingerprint(operation: str, arguments: dict[str, Any], source: Dataset, right: Dataset | None) -> str:
    """What the outputs depend on: the arguments and the input files' contents."""
    payload = {"operation": operation, "arguments": arguments, "dataset": source.sha256 or str(source.id),
               "right": (right.sha256 or str(right.id)) if right is not None else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _reusable(ctx: StepContext, fingerprint: str) -> dict[str, Dataset]:
    """Outputs an earlier start of this very step stored from the same inputs."""
    from studio.datasets.models import Dataset, DatasetStatus

    found: dict[str, Dataset] = {}
    rows = Dataset.objects.filter(project=ctx.project, status=DatasetStatus.READY,
                                  profile__pipeline__step=ctx.step.id,
                                  profile__pipeline__fingerprint=fingerprint).order_by("created_at")
    for dataset in rows:
        found.setdefault((dataset.profile.get("pipeline") or {}).get("part") or "dataset", dataset)
    return found


def _store(ctx: StepContext, table: Any, *, source: Dataset, operation: str, part: str, fingerprint: str,
           details: dict[str, Any]) -> Dataset:
    """The table as a new ready dataset of the project, profiled like an upload, created by ``ctx.user``."""
    from studio.accounts.services import audit
    from studio.core.naming import unique_name
    from studio.core.storage import storage_delete_prefix, storage_save_stream
    from studio.datasets.models import Dataset, DatasetKind, DatasetStatus
    from studio.datasets.profiling import CsvError, profile_csv
    from studio.datasets.services import dataset_storage_prefix
    from studio.datasets.signals import dataset_ready_on_commit

    suffix = f"-{operation}-{ctx.execution.number}" + (f"-{part}" if part != "dataset" else "")
    base = source.name[:DATASET_NAME_MAX - len(suffix) - 4] + suffix
    target = source.target if source.target in table.column_names else ""
    origin = {"pipeline": str(ctx.execution.pipeline_id), "execution": str(ctx.execution.id), "step": ctx.step.id,
              "step_name": ctx.step.name, "operation": operation, "part": part, "source": str(source.id),
              "fingerprint": fingerprint, **json.loads(json.dumps(details, default=str))}
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "data.csv"
        ops.write_table(table, path)
        try:
            profile = profile_csv(path, filename="data.csv")
        except CsvError as exc:
            raise StepFailed(f"the {operation} output of dataset '{source.name}' is not a valid CSV: {exc}") from None
        for _ in range(3):  # the name may be taken between choosing and creating it
            dataset_id = uuid.uuid4()
            name = unique_name(model=Dataset, project=ctx.project, base=base)
            prefix = dataset_storage_prefix(project_id=ctx.project.id, dataset_id=dataset_id)
            filename = f"{_FILE_JUNK.sub('_', name)[:100]}.csv"
            with path.open("rb") as fh:
                stored, size, sha256 = storage_save_stream(name=prefix + filename, stream=fh)
            try:
                with transaction.atomic():
                    dataset = Dataset.objects.create(
                        id=dataset_id, project=ctx.project, name=name, kind=DatasetKind.TABULAR,
                        status=DatasetStatus.READY, file=stored, original_filename=filename, size_bytes=size,
                        sha256=sha256, rows=profile.rows, columns=profile.as_columns(),
                        profile={**profile.as_profile(), "pipeline": origin}, target=target, created_by=ctx.user,
                    )
                    audit(actor=ctx.user, verb="created dataset", project=ctx.project, target=name,
                          data={"dataset": str(dataset.id), "rows": profile.rows, "operation": operation,
                                "source": str(source.id), "pipeline_execution": str(ctx.execution.id),
                                "step": ctx.step.name})
                    dataset_ready_on_commit(dataset)
                return dataset
            except IntegrityError:
                storage_delete_prefix(prefix)
            except BaseException:
                storage_delete_prefix(prefix)  # a stored file whose row failed must not stay behind
                raise
    raise StepFailed(f"could not find a free dataset name like '{base}'.")


def _done(operation: str, made: dict[str, Dataset], *, reused: bool) -> Done:
    if operation == "split":
        outputs = {"dataset": str(made["train"].id), **{part: str(d.id) for part, d in made.items()}}
    else:
        outputs = {"dataset": str(made["dataset"].id)}
    listed = ", ".join(f"'{d.name}' ({d.rows:,} rows)" for d in made.values())
    return Done(outputs, message=("Reused " if reused else "Wrote ") + listed)
