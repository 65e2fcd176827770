"""What the endpoint and batch transform pages post, turned into service arguments, and their errors placed.

The services validate (studio.endpoints.validation, studio.endpoints.transforms) and name each field at
fault ("variants.0.model", "serverless.max_concurrency"); this module only reads the form, passes the raw
text on, and sorts the error keys back to the inputs that hold them.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from algorithms import UnknownAlgorithm, get_algorithm
from studio.datasets.preprocessing import CategoricalColumn
from studio.endpoints.models import EndpointType
from studio.registry.models import Model
from studio.registry.services import model_preprocessing

VARIANT_FIELDS = ("name", "model", "weight", "min_instances", "max_instances")
VARIANT_KEY = re.compile(r"^variants-(\d+)-(name|model|weight|min_instances|max_instances)$")
NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

TYPE_CHOICES = [
    (EndpointType.REALTIME.value, "Real-time",
     "Instances stay up and answer each request in milliseconds; autoscaling adds instances under load."),
    (EndpointType.SERVERLESS.value, "Serverless",
     "No instance while idle: the first request starts one (a cold start), idle ones stop after the timeout."),
    (EndpointType.ASYNC.value, "Asynchronous",
     "Requests up to 1 GB are queued and answered with a stored output file; scales to zero when the queue is empty."),
]

# Top-level error keys the endpoint forms show next to an input of their own (dots become underscores).
ENDPOINT_FIELDS = ("name", "type", "variants", "serverless.max_concurrency", "serverless.idle_timeout_seconds",
                   "autoscaling", "autoscaling.target_invocations_per_instance",
                   "autoscaling.scale_in_cooldown_seconds", "autoscaling.scale_out_cooldown_seconds",
                   "async.max_payload_mb", "async.notification_url")
TRANSFORM_FIELDS = ("name", "model", "input_dataset", "split_type", "batch_strategy", "max_payload_mb",
                    "max_concurrent", "input_filter", "join_source", "output_filter")


# --- endpoint forms ---------------------------------------------------------------------------------


def default_endpoint_name(model: Model | None) -> str:
    """``<model-name>-endpoint``, with characters an endpoint name may not hold replaced by '-'."""
    if model is None:
        return ""
    base = NAME_UNSAFE.sub("-", model.name).strip("-._") or "model"
    return f"{base[:180]}-endpoint"


def blank_variant(index: int, *, model_id: str = "", endpoint_type: str = EndpointType.REALTIME) -> dict[str, str]:
    low = "1" if endpoint_type == EndpointType.REALTIME else "0"
    return {"name": f"variant-{index + 1}", "model": model_id, "weight": "1", "min_instances": low,
            "max_instances": "1"}


def initial_endpoint_values(model: Model | None) -> dict[str, Any]:
    """A new endpoint form: with a model, prefilled so that pressing Deploy is all that is left."""
    return {"name": default_endpoint_name(model), "type": EndpointType.REALTIME.value,
            "variants": [blank_variant(0, model_id=str(model.id) if model else "")],
            "serverless_max_concurrency": "", "serverless_idle_timeout_seconds": "", "autoscaling_enabled": False,
            "autoscaling_target": "", "autoscaling_scale_in": "", "autoscaling_scale_out": "",
            "async_max_payload_mb": "", "async_notification_url": ""}


def variant_rows_from_post(post: Mapping[str, Any]) -> list[dict[str, str]]:
    """Variant rows in the order of their index in the form; rows removed by the page's script leave gaps."""
    rows: dict[int, dict[str, str]] = {}
    for key in post:
        match = VARIANT_KEY.match(key)
        if match:
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = str(post.get(key, "")).strip()
    return [{field: rows[i].get(field, "") for field in VARIANT_FIELDS} for i in sorted(rows)]


def endpoint_values_from_post(post: Mapping[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str:
        return str(post.get(key, "")).strip()

    return {"name": text("name"), "type": text("type"), "variants": variant_rows_from_post(post),
            "serverless_max_concurrency": text("serverless_max_concurrency"),
            "serverless_idle_timeout_seconds": text("serverless_idle_timeout_seconds"),
            "autoscaling_enabled": bool(post.get("autoscaling_enabled")),
            "autoscaling_target": text("autoscaling_target"), "autoscaling_scale_in": text("autoscaling_scale_in"),
            "autoscaling_scale_out": text("autoscaling_scale_out"),
            "async_max_payload_mb": text("async_max_payload_mb"),
            "async_notification_url": text("async_notification_url")}


def _settings(values: dict[str, Any], endpoint_type: str) -> dict[str, Any]:
    autoscaling = None
    if values["autoscaling_enabled"]:
        autoscaling = {"target_invocations_per_instance": values["autoscaling_target"],
                       "scale_in_cooldown_seconds": values["autoscaling_scale_in"],
                       "scale_out_cooldown_seconds": values["autoscaling_scale_out"]}
    serverless = None
    if endpoint_type == EndpointType.SERVERLESS:
        serverless = {"max_concurrency": values["serverless_max_concurrency"],
                      "idle_timeout_seconds": values["serverless_idle_timeout_seconds"]}
    async_config = None
    if endpoint_type == EndpointType.ASYNC:
        async_config = {"max_payload_mb": values["async_max_payload_mb"],
                        "notification_url": values["async_notification_url"]}
    return {"serverless": serverless, "autoscaling": autoscaling, "async_config": async_config}


def endpoint_create_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of services.endpoint_create for what the new-endpoint form posted.

    Parameters
    ----------
    values : dict
        From :func:`endpoint_values_from_post`.

    Returns
    -------
    dict
        ``name``, ``type``, ``variants``, ``serverless``, ``autoscaling``, ``async_config``.
    """
    return {"name": values["name"], "type": values["type"], "variants": [dict(row) for row in values["variants"]],
            **_settings(values, values["type"])}


def endpoint_update_kwargs(values: dict[str, Any], endpoint_type: str) -> dict[str, Any]:
    """The keyword arguments of services.endpoint_update for the edit form (autoscaling off clears it)."""
    settings = _settings(values, endpoint_type)
    return {"variants": [dict(row) for row in values["variants"]], "serverless": settings["serverless"],
            "autoscaling": settings["autoscaling"] or {}, "async_config": settings["async_config"]}


def endpoint_values_of(endpoint) -> dict[str, Any]:
    """The edit form of an existing endpoint: its variants, limits and settings as the inputs show them."""
    autoscaling = endpoint.autoscaling or {}
    serverless = endpoint.serverless or {}
    async_config = endpoint.async_config or {}

    def shown(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)

    return {
        "name": endpoint.name, "type": endpoint.type,
        "variants": [{"name": v.name, "model": str(v.model_id), "weight": shown(v.weight),
                      "min_instances": shown(v.min_instances), "max_instances": shown(v.max_instances)}
                     for v in endpoint.variants.filter(retired=False).order_by("position", "id")],
        "serverless_max_concurrency": shown(serverless.get("max_concurrency")),
        "serverless_idle_timeout_seconds": shown(serverless.get("idle_timeout_seconds")),
        "autoscaling_enabled": bool(autoscaling),
        "autoscaling_target": shown(autoscaling.get("target_invocations_per_instance")),
        "autoscaling_scale_in": shown(autoscaling.get("scale_in_cooldown_seconds")),
        "autoscaling_scale_out": shown(autoscaling.get("scale_out_cooldown_seconds")),
        "async_max_payload_mb": shown(async_config.get("max_payload_mb")),
        "async_notification_url": async_config.get("notification_url", ""),
    }


def place_errors(errors: dict[str, list[str]], *, fields: tuple[str, ...], rows: int = 0
                 ) -> tuple[dict[str, list[str]], list[dict[str, list[str]]], list[tuple[str, str]]]:
    """Sort validation errors into (field errors, one dict per variant row, the rest with their key).

    Parameters
    ----------
    errors : dict
        ``ValidationError.message_dict`` of a service.
    fields : tuple of str
        Keys that have an input of their own; in the result dots become underscores (template lookups).
    rows : int
        Variant rows in the form: ``variants.<i>.<field>`` and ``variants.<i>`` go to row ``i``.

    Returns
    -------
    tuple
        ``(field_errors, row_errors, other_errors)``; nothing is dropped.
    """
    field_errors: dict[str, list[str]] = {}
    row_errors: list[dict[str, list[str]]] = [{} for _ in range(rows)]
    other: list[tuple[str, str]] = []
    for key, messages in errors.items():
        parts = key.split(".")
        if parts[0] == "variants" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < rows:
            row_errors[int(parts[1])].setdefault(parts[2] if len(parts) > 2 else "row", []).extend(messages)
        elif key in fields:
            field_errors.setdefault(key.replace(".", "_"), []).extend(messages)
        else:
            other.extend((key, message) for message in messages)
    return field_errors, row_errors, other


# --- test payloads and snippets ------------------------------------------------------------------------


def _algorithm_input(model: Model) -> str:
    try:
        return get_algorithm(model.algorithm).input
    except UnknownAlgorithm:
        return "tabular"


def example_payloads(model: Model | None) -> dict[str, str]:
    """A one-record request for ``model``: ``{"json", "csv", "note"}``, the JSON pretty-printed.

    Tabular records hold one value per input column in order: 0 for numbers, the most frequent value
    for categorical columns, so the example is accepted as it is and the user edits the values.
    """
    if model is None:
        return {"json": json.dumps({"instances": [[0]]}, indent=2), "csv": "0\n", "note": ""}
    kind = _algorithm_input(model)
    if kind == "text":
        text = {"summarization": "A long document. It has several sentences. The summary keeps the main one.",
                "word2vec": "apple"}.get(model.algorithm, "a text to classify")
        return {"json": json.dumps({"instances": [text]}, indent=2), "csv": json.dumps(text) + "\n",
                "note": "One text per record."}
    if kind == "image":
        pixel = [0, 0, 0]
        image = [[pixel, pixel], [pixel, pixel]]
        return {"json": json.dumps({"instances": [image]}), "csv": "",
                "note": "One image per record as nested arrays (height, width, channels) of the training size; "
                        "this 2x2 placeholder shows the shape only."}
    names: list[str] = []
    values: list[Any] = []
    preprocessing = model_preprocessing(model=model)
    if preprocessing is not None:
        for column in preprocessing.columns:
            names.append(column.name)
            is_category = isinstance(column, CategoricalColumn)
            values.append((column.categories[0] if column.categories else "") if is_category else 0)
    else:
        names = [str(name) for name in model.feature_names or []]
        values = [0 for _ in names]
    if not names:
        return {"json": json.dumps({"instances": [[0]]}, indent=2), "csv": "0\n",
                "note": "The model does not list its input columns; send one value per feature."}
    body = json.dumps({"instances": [values]})
    csv_row = ",".join(_csv_cell(v) for v in values)
    return {"json": body, "csv": ",".join(_csv_cell(n) for n in names) + "\n" + csv_row + "\n",
            "note": "Columns in order: " + ", ".join(names) + "."}


def _csv_cell(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if any(c in text for c in ',"\n') else text


def invocation_snippets(*, invocation_url: str, async_url: str | None, payload: str) -> dict[str, str]:
    """curl and Python (requests) calls of an endpoint, authenticated by an API token or an invoke key.

    Parameters
    ----------
    invocation_url, async_url : str
        Absolute URLs of the real-time and (asynchronous endpoints only) async invocation routes.
    payload : str
        The JSON body to send (the example payload).

    Returns
    -------
    dict
        ``curl``, ``curl_key`` and ``python``: text to copy, with ``$STUDIO_TOKEN`` and
        ``$STUDIO_ENDPOINT_KEY`` read from the environment, never a secret.
    """
    compact = json.dumps(json.loads(payload), separators=(",", ":")) if payload else "{}"
    url = async_url or invocation_url
    data = shlex.quote(compact)

    def curl(header: str) -> str:
        return (f'curl -X POST "{url}" \\\n  -H "{header}" \\\n  -H "Content-Type: application/json" \\\n'
                f"  -d {data}")

    imports = ["import os", "import time"] if async_url else ["import os"]
    lines = [*imports, "", "import requests", "",
             'headers = {"Authorization": f"Bearer {os.environ[\'STUDIO_TOKEN\']}"}',
             '# or, with an invoke key of this endpoint: headers = {"X-Api-Key": os.environ["STUDIO_ENDPOINT_KEY"]}',
             f'response = requests.post("{url}", headers=headers, json={compact}, timeout=60)',
             "response.raise_for_status()"]
    if async_url:
        lines += ["job = response.json()  # {id, status_url, output_url}",
                  'while (status := requests.get(job["status_url"], headers=headers, timeout=30).json())["status"] '
                  'in ("queued", "running"):', "    time.sleep(1)",
                  'print(status["status"], status.get("output_url") or status.get("failure_reason"))']
    else:
        lines += ['print(response.json()["predictions"])']
    return {"curl": curl("Authorization: Bearer $STUDIO_TOKEN"), "curl_key": curl("X-Api-Key: $STUDIO_ENDPOINT_KEY"),
            "python": "\n".join(lines)}


# --- batch transform form ------------------------------------------------------------------------------


def transform_values_from_post(post: Mapping[str, Any]) -> dict[str, str]:
    return {field: str(post.get(field, "")).strip() for field in TRANSFORM_FIELDS}


def initial_transform_values(*, model_id: str = "", dataset_id: str = "") -> dict[str, str]:
    return {"name": "", "model": model_id, "input_dataset": dataset_id, "split_type": "line",
            "batch_strategy": "multi_record", "max_payload_mb": "6", "max_concurrent": "2", "input_filter": "",
            "join_source": "none", "output_filter": ""}
