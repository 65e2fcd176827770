"""What the pipeline pages post, turned into service arguments, and service errors placed back on the page.

The builder posts the whole definition as JSON text (its script keeps the JSON tab and the step forms
in step); the server is the validator. Run, schedule and trigger forms post parameter values as text,
converted here to the type of the parameter's default so "0.8" reaches the engine as a number. A value
that does not convert is passed on as typed, so the engine's validation names it ("parameters.threshold").
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.http import QueryDict

DEFINITION_PREFIX = "definition."
TRUE_TEXTS = ("true", "1", "on", "yes")


def error_dict(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}


def definition_from_text(text: str) -> tuple[Any, dict[str, list[str]]]:
    """The posted JSON as a Python value, or ``(None, {"definition": [where the JSON breaks]})``."""
    if not text.strip():
        return None, {"definition": ["The definition is empty: add a step, or paste a definition in the JSON tab."]}
    try:
        return json.loads(text), {}
    except json.JSONDecodeError as exc:
        return None, {"definition": [f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."]}


def definition_text(definition: Any) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False)


def place_errors(errors: dict[str, list[str]], definition: Any = None) -> dict[str, Any]:
    """Split validation errors by where the builder shows them.

    ``steps``: {step name: [{"field": "arguments.dataset", "message"}]} (keys name the step, not its
    index; an index the validator used for a nameless step is mapped to that step's name when it has one);
    ``parameters``: [{"field": name, "message"}]; ``general``: [{"field": full key, "message"}] for the
    rest (name, description, the definition as a whole). ``all`` keeps every (key, message) in order,
    for the list above the JSON.
    """
    steps: dict[str, list[dict[str, str]]] = {}
    parameters: list[dict[str, str]] = []
    general: list[dict[str, str]] = []
    everything: list[dict[str, str]] = []
    by_index = {}
    if isinstance(definition, dict) and isinstance(definition.get("steps"), list):
        by_index = {str(i): s.get("name") for i, s in enumerate(definition["steps"])
                    if isinstance(s, dict) and isinstance(s.get("name"), str)}
    for key, messages in errors.items():
        for message in messages:
            everything.append({"field": key, "message": message})
            parts = key.split(".")
            if key.startswith(DEFINITION_PREFIX + "steps.") and len(parts) >= 3:
                name = by_index.get(parts[2], parts[2])
                steps.setdefault(name, []).append({"field": ".".join(parts[3:]), "message": message})
            elif key.startswith(DEFINITION_PREFIX + "parameters.") and len(parts) >= 3:
                parameters.append({"field": ".".join(parts[2:]), "message": message})
            else:
                general.append({"field": key, "message": message})
    return {"steps": steps, "parameters": parameters, "general": general, "all": everything}


# --- parameters ---------------------------------------------------------------------------------


def parameter_kind(default: Any) -> str:
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int | float):
        return "number"
    return "string"


def parameter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".12g")
    return "" if value is None else str(value)


def _convert(raw: str, default: Any) -> Any:
    kind = parameter_kind(default)
    if kind == "boolean":
        return raw.strip().lower() in TRUE_TEXTS
    if kind == "number":
        text = raw.strip()
        try:
            return int(text) if isinstance(default, int) and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            return text
    return raw


def parameters_from_post(definition: dict[str, Any], data: QueryDict, *, prefix: str = "param_") -> dict[str, Any]:
    """The values posted for the pipeline's parameters (``param_<name>``), typed like their defaults.

    A number left empty keeps its default (nothing is sent for it); a boolean is a checkbox whose
    hidden "false" comes first, so the last posted value wins.
    """
    values: dict[str, Any] = {}
    for name, default in (definition.get("parameters") or {}).items():
        posted = data.getlist(prefix + name)
        if not posted:
            continue
        raw = posted[-1]
        if parameter_kind(default) == "number" and not raw.strip():
            continue
        values[name] = _convert(raw, default)
    return values


def parameter_rows(definition: dict[str, Any], values: dict[str, Any] | None = None,
                   errors: dict[str, list[str]] | None = None, *, prefix: str = "param_",
                   error_prefix: str = "parameters.") -> list[dict[str, Any]]:
    """One input per parameter for the run (and schedule/trigger) forms, prefilled with the default."""
    values = values or {}
    errors = errors or {}
    rows = []
    for name, default in (definition.get("parameters") or {}).items():
        value = values.get(name, default)
        rows.append({
            "name": name, "field": prefix + name, "id": f"id_{prefix}{name}", "kind": parameter_kind(default),
            "default": parameter_text(default), "value": parameter_text(value),
            "checked": value is True or (isinstance(value, str) and value.lower() in TRUE_TEXTS),
            "errors": errors.get(error_prefix + name, []),
        })
    return rows


def json_object(raw: str, *, field: str) -> dict[str, Any]:
    """A small JSON object typed into a form (parameters of a schedule, say); empty text is ``{}``."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            {field: [f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."]}) from None
    if not isinstance(value, dict):
        raise ValidationError({field: ['Give a JSON object, like {"threshold": 0.8}.']})
    return value


# --- schedules and triggers -------------------------------------------------------------------------

SCHEDULE_FIELDS = ("schedule_name", "cron", "timezone", "schedule_parameters")
TRIGGER_FIELDS = ("event", "filter", "parameter", "trigger_parameters")
# The one filter a trigger's event understands, as the form's single "filter" input fills it.
TRIGGER_FILTER_KEYS = {"dataset_created": "name_pattern", "model_version_approved": "model_group"}


def schedule_values(data: QueryDict) -> dict[str, str]:
    return {field: data.get(field, "").strip() for field in SCHEDULE_FIELDS}


def schedule_create_kwargs(values: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments of automation.schedule_create; raises ValidationError for unreadable parameters."""
    return {"name": values["schedule_name"], "cron": values["cron"], "timezone": values["timezone"] or "UTC",
            "parameters": json_object(values["schedule_parameters"], field="parameters")}


def trigger_values(data: QueryDict) -> dict[str, str]:
    return {field: data.get(field, "").strip() for field in TRIGGER_FIELDS}


def trigger_create_kwargs(values: dict[str, str]) -> dict[str, Any]:
    key = TRIGGER_FILTER_KEYS.get(values["event"], "name_pattern")
    return {"event": values["event"], "filter": {key: values["filter"]} if values["filter"] else {},
            "parameter": values["parameter"],
            "parameters": json_object(values["trigger_parameters"], field="parameters")}


def automation_errors(errors: dict[str, list[str]], fields: tuple[str, ...],
                      renames: dict[str, str]) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Service errors keyed by the form's field names, and the rest as (key, message).

    ``renames`` maps the service's top-level keys to the form's (``parameters`` → ``schedule_parameters``);
    a nested key (``filter.name_pattern``) lands on the field of its first part.
    """
    placed: dict[str, list[str]] = {}
    other: list[tuple[str, str]] = []
    for key, messages in errors.items():
        head = key.split(".")[0]
        head = renames.get(head, head)
        if head in fields:
            placed.setdefault(head, []).extend(messages)
        else:
            other.extend((key, message) for message in messages)
    return placed, other
