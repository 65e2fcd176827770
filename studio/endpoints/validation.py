"""Checking an endpoint request: every problem at once, under the field that holds it (variants.0.model)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.core.exceptions import ValidationError

from studio.endpoints.models import Endpoint, EndpointType
from studio.registry.models import Model

if TYPE_CHECKING:
    from studio.accounts.models import Project

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_VARIANTS = 10
MAX_INSTANCES = 16
MAX_CONCURRENCY = 200
DEFAULT_IDLE_TIMEOUT = 300
DEFAULT_MAX_CONCURRENCY = 20
DEFAULT_ASYNC_MAX_PAYLOAD_MB = 1024
DEFAULT_SCALE_IN_COOLDOWN = 60
DEFAULT_SCALE_OUT_COOLDOWN = 10


def _number(errors: dict, field: str, value: Any, *, low: float, high: float, integer: bool = True,
            default: Any = None) -> Any:
    if value is None or value == "":
        return default
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors[field] = [f"{field} must be {kind} between {low:g} and {high:g} (got {value!r})."]
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (integer and not number.is_integer()):
        errors[field] = [f"{field} must be {kind} between {low:g} and {high:g} (got {value!r})."]
        return default
    if not low <= number <= high:
        errors[field] = [f"{field} must be between {low:g} and {high:g} (got {value!r})."]
        return default
    return int(number) if integer else number


def _model(project: Project, value: Any, field: str, errors: dict) -> Model | None:
    if isinstance(value, Model):
        value = value.id
    try:
        return Model.objects.get(id=UUID(str(value)), project=project)
    except (ValueError, TypeError, Model.DoesNotExist):
        errors[field] = [f"No model '{value}' in this project."]
        return None


def clean_variants(project: Project, variants: Any, *, endpoint_type: str, errors: dict) -> list[dict[str, Any]]:
    if not isinstance(variants, list) or not variants:
        errors["variants"] = ['variants must be a non-empty list of {"name", "model", "weight", "min_instances", '
                              '"max_instances"}.']
        return []
    if len(variants) > MAX_VARIANTS:
        errors["variants"] = [f"At most {MAX_VARIANTS} variants (got {len(variants)})."]
        return []
    cleaned, names = [], set()
    for i, variant in enumerate(variants):
        field = f"variants.{i}"
        if not isinstance(variant, dict):
            errors[field] = [f"{field} must be an object."]
            continue
        name = str(variant.get("name") or f"variant-{i + 1}").strip()
        if not NAME_RE.match(name) or len(name) > 100:
            errors[f"{field}.name"] = [f"name may hold letters, digits, '-', '_' and '.' (got {name!r})."]
        elif name in names:
            errors[f"{field}.name"] = [f"Two variants are named '{name}'."]
        names.add(name)
        model = _model(project, variant.get("model"), f"{field}.model", errors)
        weight = _number(errors, f"{field}.weight", variant.get("weight"), low=0, high=1e6, integer=False,
                         default=1.0)
        scales_to_zero = endpoint_type in (EndpointType.SERVERLESS, EndpointType.ASYNC)
        low = 0 if scales_to_zero else 1
        min_instances = _number(errors, f"{field}.min_instances", variant.get("min_instances"), low=low,
                                high=MAX_INSTANCES, default=low)
        max_instances = _number(errors, f"{field}.max_instances", variant.get("max_instances"), low=1,
                                high=MAX_INSTANCES, default=max(1, min_instances or 1))
        if scales_to_zero and min_instances:
            errors[f"{field}.min_instances"] = [f"a {endpoint_type} endpoint scales to zero: min_instances must be 0."]
        if min_instances is not None and max_instances is not None and max_instances < min_instances:
            errors[f"{field}.max_instances"] = [f"max_instances ({max_instances}) is below min_instances "
                                                f"({min_instances})."]
        cleaned.append({"name": name, "model": model, "weight": weight, "min_instances": min_instances,
                        "max_instances": max_instances})
    if cleaned and not any((v["weight"] or 0) > 0 for v in cleaned) and "variants" not in errors:
        errors["variants"] = ["At least one variant needs a weight above 0 to receive traffic."]
    return cleaned


def clean_serverless(value: Any, errors: dict) -> dict[str, Any]:
    value = value if isinstance(value, dict) else {}
    return {
        "max_concurrency": _number(errors, "serverless.max_concurrency", value.get("max_concurrency"), low=1,
                                   high=MAX_CONCURRENCY, default=DEFAULT_MAX_CONCURRENCY),
        "idle_timeout_seconds": _number(errors, "serverless.idle_timeout_seconds", value.get("idle_timeout_seconds"),
                                        low=1, high=7 * 24 * 3600, default=DEFAULT_IDLE_TIMEOUT),
    }


def clean_autoscaling(value: Any, errors: dict) -> dict[str, Any]:
    if value in (None, "", {}):
        return {}
    if not isinstance(value, dict):
        errors["autoscaling"] = ["autoscaling must be an object: {target_invocations_per_instance, "
                                 "scale_in_cooldown_seconds, scale_out_cooldown_seconds}."]
        return {}
    target = _number(errors, "autoscaling.target_invocations_per_instance",
                     value.get("target_invocations_per_instance"), low=0.001, high=1e6, integer=False)
    if target is None and "autoscaling.target_invocations_per_instance" not in errors:
        errors["autoscaling.target_invocations_per_instance"] = [
            "target_invocations_per_instance (invocations per second one instance should take) is required."]
    return {
        "target_invocations_per_instance": target,
        "scale_in_cooldown_seconds": _number(errors, "autoscaling.scale_in_cooldown_seconds",
                                             value.get("scale_in_cooldown_seconds"), low=0, high=86400,
                                             default=DEFAULT_SCALE_IN_COOLDOWN),
        "scale_out_cooldown_seconds": _number(errors, "autoscaling.scale_out_cooldown_seconds",
                                              value.get("scale_out_cooldown_seconds"), low=0, high=86400,
                                              default=DEFAULT_SCALE_OUT_COOLDOWN),
    }


def clean_async(value: Any, errors: dict) -> dict[str, Any]:
    value = value if isinstance(value, dict) else {}
    out = {"max_payload_mb": _number(errors, "async.max_payload_mb", value.get("max_payload_mb"), low=1,
                                     high=DEFAULT_ASYNC_MAX_PAYLOAD_MB, default=DEFAULT_ASYNC_MAX_PAYLOAD_MB)}
    url = value.get("notification_url")
    if url:
        problem = _notification_problem(str(url))
        if problem:
            errors["async.notification_url"] = [problem]
        else:
            out["notification_url"] = str(url)
    return out


def _notification_problem(url: str) -> str | None:
    try:
        from studio.endpoints.notifications import notification_url_problem
    except ImportError:  # pragma: no cover - the module ships with async invocations
        return None
    return notification_url_problem(url)


def endpoint_validate(*, project: Project, name: Any, type: Any, variants: Any, serverless: Any = None,
                      autoscaling: Any = None, async_config: Any = None) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    name = str(name or "").strip()
    if not name:
        errors["name"] = ["An endpoint needs a name."]
    elif len(name) > 200 or not NAME_RE.match(name):
        errors["name"] = [f"name may hold letters, digits, '-', '_' and '.', starting with a letter or digit "
                          f"(got {name!r})."]
    elif Endpoint.objects.filter(project=project, name=name).exists():
        errors["name"] = [f"An endpoint named '{name}' already exists in this project."]
    if type not in EndpointType.values:
        errors["type"] = [f"type must be one of {', '.join(EndpointType.values)} (got {type!r})."]
        type = EndpointType.REALTIME
    cleaned = {
        "name": name, "type": type,
        "variants": clean_variants(project, variants, endpoint_type=type, errors=errors),
        "serverless": clean_serverless(serverless, errors) if type == EndpointType.SERVERLESS else {},
        "autoscaling": clean_autoscaling(autoscaling, errors),
        "async_config": clean_async(async_config, errors) if type == EndpointType.ASYNC else {},
    }
    if errors:
        raise ValidationError(errors)
    return cleaned
