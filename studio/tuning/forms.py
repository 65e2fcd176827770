"""The tuning form's range editors, generated from an algorithm's hyperparameter declaration.

Every declared hyperparameter gets one row: tunable ones a "tune" checkbox with type-appropriate
range inputs (min/max/scale for numbers, one checkbox per value for categoricals and booleans),
and every one a static value input used while it is not tuned. What the user posted is turned
into the ``ranges`` and ``static_hyperparameters`` objects of the tuning service, whose validation
names each problem by field (``ranges.learning_rate.min``); those keys are mapped back to rows here.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from algorithms import Estimator
from studio.training.forms import DATA_BOUND
from studio.tuning.autotune import range_for

TUNE = "tune_"
MIN = "min_"
MAX = "max_"
SCALE = "scale_"
VALUES = "values_"
STATIC = "hp_"
SCALES = ("linear", "log")


def _text(value: Any) -> str:
    """A number as an input shows it: no float noise (0.0010000000000000002), ints stay ints."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".10g")
    return "" if value is None else str(value)


def _choices(hp: Any) -> list[str]:
    if hp.type == "bool":
        return ["false", "true"]
    return [_text(choice) for choice in hp.choices or ()]


def initial_params(algo: type[Estimator]) -> dict[str, dict[str, Any]]:
    """What the range editors show before the user types: declared (Autotune-narrowed) ranges, nothing tuned.

    Log-scale ranges are prefilled with what Autotune would search (a factor around the default), since
    the declared bounds say what the algorithm accepts, not where good values are.
    """
    params: dict[str, dict[str, Any]] = {}
    for hp in algo.hyperparameters:
        state: dict[str, Any] = {"tune": False, "min": "", "max": "", "scale": hp.scale if hp.is_numeric else "",
                                 "values": [], "static": ""}
        bound = DATA_BOUND.get(hp.name) if hp.type == "int" else None
        state["static"] = "" if bound else _text(hp.default)
        if hp.tunable:
            try:
                spec, _ = range_for(hp)
            except ValueError:  # no declared bounds: the user types them
                spec = {}
            if hp.is_numeric:
                state.update(min=_text(spec.get("min")), max=_text(spec.get("max")),
                             scale=spec.get("scale", hp.scale))
            else:
                state["values"] = [_text(value) for value in spec.get("values", [])]
        params[hp.name] = state
    return params


def params_from_post(algo: type[Estimator], data: QueryDict) -> dict[str, dict[str, Any]]:
    """The range editors' state as posted (raw strings), to build the request and re-show it after errors.

    A bool static value is a checkbox: the template sends a hidden "false" before it and the last value wins.
    """
    params: dict[str, dict[str, Any]] = {}
    for hp in algo.hyperparameters:
        posted = data.getlist(STATIC + hp.name)
        params[hp.name] = {
            "tune": hp.tunable and bool(data.get(TUNE + hp.name)),
            "min": data.get(MIN + hp.name, "").strip(), "max": data.get(MAX + hp.name, "").strip(),
            "scale": data.get(SCALE + hp.name, "").strip(),
            "values": [value.strip() for value in data.getlist(VALUES + hp.name)],
            "static": posted[-1].strip() if posted else "",
        }
    return params


def ranges_and_static(algo: type[Estimator], params: dict[str, dict[str, Any]]) -> tuple[dict, dict]:
    """``(ranges, static_hyperparameters)`` for services.tuning_job_create from the editors' state.

    A static value equal to the declared default is left out: it changes nothing for the training job,
    and leaving it out lets Autotune consider that hyperparameter. Values that do not parse are passed
    as typed, so the validation reports them under the field that holds them.
    """
    ranges: dict[str, dict[str, Any]] = {}
    static: dict[str, Any] = {}
    for hp in algo.hyperparameters:
        state = params.get(hp.name) or {}
        if hp.tunable and state.get("tune"):
            if hp.is_numeric:
                spec: dict[str, Any] = {"type": "continuous" if hp.type == "float" else "integer"}
                # An empty bound means the declared one (the validation fills it in).
                for end in ("min", "max"):
                    if state.get(end):
                        spec[end] = state[end]
                spec["scale"] = state.get("scale") or "auto"
                ranges[hp.name] = spec
            else:
                ranges[hp.name] = {"type": "categorical", "values": list(state.get("values") or [])}
            continue
        raw = state.get("static", "")
        if raw == "":
            continue
        try:
            if hp.coerce(raw) == hp.default:
                continue
        except ValueError:
            pass
        static[hp.name] = raw
    return ranges, static


def range_rows(algo: type[Estimator], params: dict[str, dict[str, Any]] | None = None,
               errors: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """One row per declared hyperparameter for templates/tuning/_ranges.html, tunable ones first.

    ``errors`` are the validation's, keyed ``ranges.<name>[.<part>]`` and ``static_hyperparameters.<name>``.
    """
    params = params or initial_params(algo)
    errors = errors or {}
    rows = []
    for hp in algo.hyperparameters:
        state = params.get(hp.name) or initial_params(algo)[hp.name]
        range_errors = [msg for key, msgs in errors.items()
                        if key == f"ranges.{hp.name}" or key.startswith(f"ranges.{hp.name}.") for msg in msgs]
        static_errors = [msg for key, msgs in errors.items() if key == f"static_hyperparameters.{hp.name}"
                         for msg in msgs]
        bound = DATA_BOUND.get(hp.name) if hp.type == "int" else None
        row: dict[str, Any] = {
            "name": hp.name, "type": hp.type, "help": hp.help, "tunable": hp.tunable, "tune": bool(state["tune"]),
            "default": _text(hp.default), "declared_min": _text(hp.min), "declared_max": _text(hp.max),
            "declared_scale": hp.scale if hp.is_numeric else "", "numeric": hp.is_numeric,
            "step": "1" if hp.type == "int" else "any", "min": state["min"], "max": state["max"],
            "scale": state["scale"] or hp.scale, "scales": SCALES,
            "range_errors": range_errors, "static_errors": static_errors,
            "tune_name": TUNE + hp.name, "min_name": MIN + hp.name, "max_name": MAX + hp.name,
            "scale_name": SCALE + hp.name, "values_name": VALUES + hp.name, "static_name": STATIC + hp.name,
            "id": f"id_{STATIC}{hp.name}",
        }
        if not hp.is_numeric:
            chosen = set(state["values"])
            row["choices"] = [{"value": value, "checked": value in chosen, "id": f"id_{VALUES}{hp.name}_{i}"}
                              for i, value in enumerate(_choices(hp))]
        if hp.type == "bool":
            row.update(widget="checkbox", checked=state["static"].lower() in ("true", "1", "on", "yes"))
        elif hp.type == "categorical":
            row.update(widget="select", value=state["static"], static_choices=_choices(hp))
        else:
            row.update(widget="number", value=state["static"],
                       placeholder=_text(hp.default) if bound else "",
                       bound_note=f"Empty: {hp.default}, or the number of {bound} when the dataset has fewer."
                       if bound else "")
        rows.append(row)
    # Tunable rows lead: they are what this form is about; the rest only carries static values.
    return sorted(rows, key=lambda row: not row["tunable"])


def shown_error_keys(algo: type[Estimator], errors: dict[str, list[str]]) -> set[str]:
    """The error keys the range rows display, so the page can show every other one elsewhere."""
    names = {hp.name for hp in algo.hyperparameters}
    shown = set()
    for key in errors:
        parts = key.split(".")
        if len(parts) < 2 or parts[1] not in names:
            continue
        # Range rows show ranges.<name> and all its parts; the static input only its own error.
        if parts[0] == "ranges" or (parts[0] == "static_hyperparameters" and len(parts) == 2):
            shown.add(key)
    return shown
