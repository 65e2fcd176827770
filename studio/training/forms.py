"""The training form is generated from an algorithm's hyperparameter declaration, never written by hand."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from algorithms import Estimator
from studio.training.debugger import ACTIONS, RULES
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


# --- debugger rules: a row per built-in rule (studio.training.debugger), ticked ones go in the request -------

RULE_FIELD = "debugger_rule"


def debugger_rules_from_post(data: QueryDict) -> list[dict[str, Any]]:
    """The ticked rules as a ``debugger_rules`` request, in catalog order; empty parameters take defaults.

    A posted name that is no rule is kept, so the service answers it with a 400 rather than ignoring it.
    """
    ticked = [name for name in data.getlist(RULE_FIELD) if name]
    rules = []
    for name in [*(n for n in RULES if n in ticked), *(n for n in ticked if n not in RULES)]:
        rule = RULES.get(name)
        params = {}
        for param in rule.params if rule else ():
            raw = data.get(f"rule_{name}__{param.name}", "").strip()
            if raw:
                params[param.name] = raw
        rules.append({"rule": name, "parameters": params, "action": data.get(f"rule_{name}__action", "none")})
    return rules


def debugger_rule_fields(rules: list[Any] | None, errors: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """One entry per built-in rule for templates/training/_debugger_form.html, with what the user chose and the
    errors of the request's ``debugger_rules.<i>...`` fields mapped back to its row."""
    errors = errors or {}
    chosen = {r["rule"]: (i, r) for i, r in enumerate(rules or []) if isinstance(r, dict) and "rule" in r}
    fields = []
    for rule in RULES.values():
        index, request = chosen.get(rule.name, (None, None))
        prefix = f"debugger_rules.{index}"
        values = (request or {}).get("parameters") or {}
        params = [{
            "name": p.name, "input_name": f"rule_{rule.name}__{p.name}", "id": f"id_rule_{rule.name}__{p.name}",
            "type": p.type, "value": values.get(p.name, ""), "help": p.help,
            "placeholder": p.default if p.type != "metric" else f"{p.channel} loss (default)",
            "errors": errors.get(f"{prefix}.parameters.{p.name}", []) if request else [],
        } for p in rule.params]
        own = []
        if request:
            own = [m for key, messages in errors.items() for m in messages
                   if (key == prefix or key.startswith(prefix + ".")) and not key.startswith(prefix + ".parameters.")]
            own += [m for key, messages in errors.items() for m in messages if key == f"{prefix}.parameters"]
        fields.append({
            "name": rule.name, "title": rule.title, "description": rule.description, "checked": request is not None,
            "action": (request or {}).get("action") or "none", "actions": ACTIONS, "params": params, "errors": own,
            "id": f"id_rule_{rule.name}",
        })
    return fields
