"""The training form is generated from an algorithm's hyperparameter declaration, never written by hand."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from algorithms import Estimator
from studio.training.services import BOUND_BY_COLUMNS, BOUND_BY_ROWS

PREFIX = "hp_"


# Hyperparameters whose default the service lowers to fit the dataset (services.data_bound_defaults):
# their field starts empty, so changing the dataset after the algorithm cannot leave a stale number.
DATA_BOUND = {name: "feature columns" for name in BOUND_BY_COLUMNS} | {name: "training rows" for name in BOUND_BY_ROWS}


def hyperparameter_fields(algo: type[Estimator], values: dict[str, Any] | None = None,
                          errors: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """One entry per declared hyperparameter, ready for templates/training/_hyperparameters.html.

    ``values`` are what the user typed (re-shown after an error); the declared default otherwise,
    except for data-bound ones, left empty with the rule as placeholder.
    """
    values, errors = values or {}, errors or {}
    fields = []
    for hp in algo.hyperparameters:
        bound = DATA_BOUND.get(hp.name) if hp.type == "int" else None
        value = values.get(hp.name, "" if bound else hp.default)
        field: dict[str, Any] = {
            "name": hp.name, "input_name": PREFIX + hp.name, "id": f"id_{PREFIX}{hp.name}", "type": hp.type,
            "default": hp.default, "help": hp.help, "min": hp.min, "max": hp.max, "scale": hp.scale,
            "errors": errors.get(hp.name, []),
        }
        if hp.type == "bool":
            field.update(widget="checkbox", checked=str(value).strip().lower() in ("true", "1", "on", "yes"))
        elif hp.type == "categorical":
            field.update(widget="select", value=str(value), choices=[str(c) for c in hp.choices or ()])
        else:
            # Any float is allowed between the bounds; the browser's step check must not reject 0.0003.
            field.update(widget="number", value=value, step="1" if hp.type == "int" else "any")
            if bound:
                field.update(placeholder=f"{hp.default}", bound_note=f"Empty: {hp.default}, or the number of {bound} "
                                                                     "when the dataset has fewer.")
        fields.append(field)
    return fields


def hyperparameters_from_post(algo: type[Estimator], data: QueryDict) -> dict[str, Any]:
    """Raw strings by hyperparameter name; empty fields are left out so the default applies.

    A checkbox posts nothing when unticked, so the template sends a hidden "false" before it and
    the last value wins.
    """
    values: dict[str, Any] = {}
    for hp in algo.hyperparameters:
        posted = data.getlist(PREFIX + hp.name)
        if not posted:
            continue
        raw = posted[-1]
        if raw.strip() == "":
            continue
        values[hp.name] = raw
    return values
