"""Step types that publish a model: register it in a model group, deploy it to an endpoint.

Neither is cacheable: each run must leave the registry and the endpoint as it says. Both are safe to
run again with the same inputs: a model already in the group keeps its version (a re-run does not pile
up versions), an endpoint already serving the model is left as it is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from studio.core.errors import Conflict
from studio.pipelines.steps.base import Arg, Done, StepContext, StepFailed, StepKind, Waiting
from studio.pipelines.steps.jobs import (
    get_object,
    has_ref,
    present,
    record_job,
    require_user,
    service_errors,
    still_running,
    unknown_arguments,
)

if TYPE_CHECKING:
    from studio.accounts.models import Project

GROUP_NAME_MAX = 200
ENDPOINT_NAME_MAX = 200
MAX_INSTANCES = 16
DEFAULT_VARIANT = "AllTraffic"
ENDPOINT_TYPES = ("realtime", "serverless", "async")


# --- register ------------------------------------------------------------------------------------------


def _arguments_and_model(step: StepKind, ctx: StepContext) -> tuple[dict[str, Any], Any]:
    """The arguments checked again now that their refs hold values, and the model they name."""
    from studio.registry.models import Model

    arguments = present(ctx.arguments)
    if errors := step.validate(arguments, project=ctx.project):
        raise StepFailed("; ".join(f"{k.removeprefix('arguments.')}: {v}" for k, v in errors.items()))
    require_user(ctx)
    return arguments, get_object(Model, ctx.project, arguments["model"], what="model")


class RegisterStep(StepKind):
    type = "register"
    title = "Register model"
    description = "Registers a model as a version of a model group (created when missing), optionally approved."
    arguments = {
        "model": Arg("model", required=True, help="The model to register (e.g. a ref to a training step's "
                                                  "model)."),
        "model_group": Arg("string", required=True, help="Name of the model group; created when the project has "
                                                         "none of that name."),
        "description": Arg("string", help="Notes kept with the version."),
        "approve": Arg("boolean", help="Approve the version at once (default false), which may fire triggers."),
    }
    outputs = {"model_version": "model_version", "model_group": "string", "model": "model"}

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        errors = unknown_arguments(self, arguments)
        group = arguments.get("model_group")
        if isinstance(group, str):
            if not group.strip():
                errors["arguments.model_group"] = "Give the model group a name."
            elif len(group.strip()) > GROUP_NAME_MAX:
                errors["arguments.model_group"] = f"A model group name is at most {GROUP_NAME_MAX} characters."
        return errors

    def start(self, ctx: StepContext) -> Done:
        from studio.registry import services
        from studio.registry.models import ApprovalStatus, ModelGroup, ModelVersion

        arguments, model = _arguments_and_model(self, ctx)
        group_name = str(arguments["model_group"]).strip()

        def existing() -> tuple[ModelGroup | None, ModelVersion | None]:
            group = ModelGroup.objects.filter(project=ctx.project, name__iexact=group_name).first()
            version = ModelVersion.objects.filter(group=group, model=model).first() if group else None
            return group, version

        group, version = existing()
        reused = version is not None
        with service_errors(f"registering model '{model.name}' in '{group_name}'"):
            if version is None:
                try:
                    version = services.model_register(user=ctx.user, model=model, group=group, group_name=group_name,
                                                      description=arguments.get("description") or "")
                except Conflict:
                    # Another run registered it (or made the group) meanwhile: take theirs.
                    group, version = existing()
                    if version is None:
                        version = services.model_register(user=ctx.user, model=model, group=group,
                                                          group_name=group_name,
                                                          description=arguments.get("description") or "")
            if arguments.get("approve") is True and version.approval_status != ApprovalStatus.APPROVED:
                version = services.model_version_set_approval(user=ctx.user, version=version,
                                                              approval_status=ApprovalStatus.APPROVED)
        group = version.group
        what = "is already" if reused else "registered as"
        return Done({"model_version": str(version.id), "model_group": str(group.id), "model": str(model.id)},
                    message=f"Model '{model.name}' {what} version {version.version} of '{group.name}' "
                            f"({version.approval_status})")


# --- deploy --------------------------------------------------------------------------------------------


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else None


class DeployStep(StepKind):
    type = "deploy"
    title = "Deploy to endpoint"
    description = ("Creates the endpoint serving the model, or updates the endpoint of that name to it, and waits "
                   "until it is in service.")
    arguments = {
        "model": Arg("model", required=True, help="The model to serve (e.g. a ref to a training step's model)."),
        "endpoint": Arg("string", required=True, help="Name of the endpoint: created when the project has none of "
                                                      "that name, else updated to serve the model."),
        "type": Arg("string", help="realtime (default), serverless or async; an existing endpoint keeps its type.",
                    choices=ENDPOINT_TYPES),
        "instance_count": Arg("number", help="Instances of a real-time endpoint (sets both min and max)."),
        "min_instances": Arg("number", help="Fewest instances (real-time: at least 1; serverless and async: 0)."),
        "max_instances": Arg("number", help=f"Most instances (1 to {MAX_INSTANCES})."),
        "serverless": Arg("object", help='{"max_concurrency", "idle_timeout_seconds"} (serverless).'),
        "autoscaling": Arg("object", help='{"target_invocations_per_instance", "scale_in_cooldown_seconds", '
                                          '"scale_out_cooldown_seconds"}'),
        "async_config": Arg("object", help='{"max_payload_mb", "notification_url"} (async).'),
    }
    outputs = {"endpoint": "endpoint"}

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        from studio.endpoints.validation import NAME_RE

        errors = unknown_arguments(self, arguments)
        name = arguments.get("endpoint")
        if isinstance(name, str) and (not NAME_RE.match(name.strip()) or len(name.strip()) > ENDPOINT_NAME_MAX):
            errors["arguments.endpoint"] = ("An endpoint name holds letters, digits, '-', '_' and '.', starting with "
                                            f"a letter or digit (got {name!r}).")
        for field, low in (("instance_count", 1), ("min_instances", 0), ("max_instances", 1)):
            value = arguments.get(field)
            if value is None or has_ref(value):
                continue
            number = _whole(value)
            if number is None or not low <= number <= MAX_INSTANCES:
                errors[f"arguments.{field}"] = f"Must be a whole number from {low} to {MAX_INSTANCES} (got {value!r})."
        if arguments.get("instance_count") is not None and (arguments.get("min_instances") is not None
                                                            or arguments.get("max_instances") is not None):
            errors["arguments.instance_count"] = "Give instance_count, or min_instances and max_instances, not both."
        return errors

    def _counts(self, arguments: dict[str, Any], endpoint_type: str, current: Any) -> dict[str, int]:
        scales_to_zero = endpoint_type != "realtime"
        count = _whole(arguments.get("instance_count"))
        low = _whole(arguments.get("min_instances"))
        high = _whole(arguments.get("max_instances"))
        if count is not None:
            low, high = (0, count) if scales_to_zero else (count, count)
        if low is None:
            low = 0 if scales_to_zero else (current.min_instances if current is not None else 1)
        if high is None:
            high = max(low, current.max_instances if current is not None else 1, 1)
        return {"min_instances": low, "max_instances": high}

    def start(self, ctx: StepContext) -> Done | Waiting:
        from studio.endpoints import services
        from studio.endpoints.models import Endpoint, EndpointStatus

        arguments, model = _arguments_and_model(self, ctx)
        name = str(arguments["endpoint"]).strip()
        options = {key: arguments[key] for key in ("serverless", "autoscaling", "async_config") if key in arguments}
        endpoint = Endpoint.objects.filter(project=ctx.project, name=name).first()
        wanted_type = arguments.get("type")
        if endpoint is None:
            endpoint_type = wanted_type or "realtime"
            variant = {"name": DEFAULT_VARIANT, "model": str(model.id), "weight": 1.0,
                       **self._counts(arguments, endpoint_type, None)}
            with service_errors(f"creating endpoint '{name}'"):
                endpoint = services.endpoint_create(user=ctx.user, project=ctx.project, name=name, type=endpoint_type,
                                                    variants=[variant], **options)
            message = f"Created endpoint '{name}' serving model '{model.name}'"
        else:
            if endpoint.status == EndpointStatus.DELETING:
                raise StepFailed(f"endpoint '{name}' is being deleted; run again once it is gone.")
            if wanted_type and wanted_type != endpoint.type:
                raise StepFailed(f"endpoint '{name}' is {endpoint.type}, the step asks for {wanted_type}: an endpoint "
                                 "keeps its type; delete it or deploy under another name.")
            live = list(endpoint.variants.filter(retired=False).order_by("position", "id"))
            current = live[0] if live else None
            counts = self._counts(arguments, endpoint.type, current)
            serving = (len(live) == 1 and current.model_id == model.id and current.weight > 0
                       and current.min_instances == counts["min_instances"]
                       and current.max_instances == counts["max_instances"])
            if serving and not options:
                message = f"Endpoint '{name}' already serves model '{model.name}'"
            else:
                variant = {"name": current.name if current else DEFAULT_VARIANT, "model": str(model.id),
                           "weight": 1.0, **counts}
                with service_errors(f"updating endpoint '{name}'"):
                    endpoint = services.endpoint_update(user=ctx.user, endpoint=endpoint, variants=[variant],
                                                        **options)
                message = f"Updating endpoint '{name}' to model '{model.name}'"
        record_job(ctx, {"kind": "endpoint", "id": str(endpoint.id)})
        outcome = self.poll(ctx)
        outcome.message = message if isinstance(outcome, Waiting) else f"{message}; it is in service"
        return outcome

    def poll(self, ctx: StepContext) -> Done | Waiting:
        from studio.endpoints.models import Endpoint, EndpointStatus

        endpoint_id = (ctx.step.job or {}).get("id")
        endpoint = Endpoint.objects.filter(id=endpoint_id, project=ctx.project).first() if endpoint_id else None
        if endpoint is None:
            raise StepFailed(f"the endpoint this step deployed to ({endpoint_id}) no longer exists.")
        if endpoint.status == EndpointStatus.IN_SERVICE:
            return Done({"endpoint": str(endpoint.id)}, message=f"Endpoint '{endpoint.name}' is in service")
        if endpoint.status == EndpointStatus.FAILED:
            raise StepFailed(f"endpoint '{endpoint.name}' failed: {endpoint.failure_reason or endpoint.status_message}")
        if endpoint.status == EndpointStatus.DELETING:
            raise StepFailed(f"endpoint '{endpoint.name}' is being deleted.")
        return still_running(ctx, endpoint, "endpoint")

    def stop(self, ctx: StepContext) -> None:
        """Nothing: the endpoint stays as it is (half-updated endpoints finish their update on their own)."""
