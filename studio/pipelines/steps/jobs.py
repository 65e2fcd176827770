"""Step types that run a job of another app and wait for it: training, tuning, batch transform.

``start`` goes through the same serializer and create service as the REST API, so a pipeline can do
exactly what a user can and is refused exactly when they would be. The created job's id is written
to the step row at once: a step started again after its worker died finds the job and waits for it
instead of starting a second one. Also the helpers every step type shares (refs, service errors,
object look-ups).
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404

from algorithms import list_algorithms
from studio.core.errors import Conflict
from studio.core.naming import unique_name
from studio.datasets.preprocessing import MISSING_STRATEGIES
from studio.pipelines.steps.base import Arg, Done, StepContext, StepFailed, StepKind, Waiting

if TYPE_CHECKING:
    from django.db.models import Model as DjangoModel

    from studio.accounts.models import Project

JOB_NAME_MAX = 180  # leaves room for the "-2" unique_name adds
_NAME_JUNK = re.compile(r"[^A-Za-z0-9._-]+")


# --- shared by every step type ------------------------------------------------------------------------


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and "ref" in value


def has_ref(value: Any) -> bool:
    """Whether a ref hides anywhere in ``value`` (its value is then unknown until the step runs)."""
    if is_ref(value):
        return True
    if isinstance(value, dict):
        return any(has_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(has_ref(v) for v in value)
    return False


def present(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments that hold a value (a null argument is one left out)."""
    return {key: value for key, value in (arguments or {}).items() if value is not None}


def unknown_arguments(kind: StepKind, arguments: dict[str, Any]) -> dict[str, str]:
    """Arguments the type does not take: a typo must not be dropped in silence, open arguments or not."""
    known = ", ".join(kind.arguments)
    return {f"arguments.{name}": f"A {kind.type} step takes no argument '{name}'; its arguments: {known}."
            for name in arguments if name not in kind.arguments}


def errors_text(errors: dict[str, Any]) -> str:
    """{field: [messages]} as one line: "dataset: No dataset 'x'.; target: ..."."""
    parts = []
    for field, messages in errors.items():
        if isinstance(messages, dict):
            messages = [errors_text(messages)]
        elif not isinstance(messages, list | tuple):
            messages = [messages]
        text = " ".join(str(m) for m in messages)
        parts.append(f"{field}: {text}" if field and field != "non_field_errors" else text)
    return "; ".join(parts)


def validation_text(exc: ValidationError) -> str:
    return errors_text(exc.message_dict) if hasattr(exc, "error_dict") else " ".join(exc.messages)


@contextlib.contextmanager
def service_errors(what: str) -> Iterator[None]:
    """A refusal of another app's service as the step's failure: retrying would be refused the same way."""
    try:
        yield
    except ValidationError as exc:
        raise StepFailed(f"{what}: {validation_text(exc)}") from None
    except (PermissionDenied, Conflict, Http404) as exc:
        raise StepFailed(f"{what}: {exc}") from None


def require_user(ctx: StepContext) -> None:
    if ctx.user is None:
        raise StepFailed("this execution has no user to act for (whoever started it was deleted); "
                         "start it again.")


def find_object(model: type[DjangoModel], project: Project, value: Any) -> Any:
    """A row of ``project`` by id, or by name for the kinds that have unique names; None when there is none."""
    if value is None or value == "" or isinstance(value, bool | dict | list):
        return None
    rows = model.objects.filter(project=project)
    try:
        return rows.get(id=uuid.UUID(str(value)))
    except (ValueError, model.DoesNotExist):
        pass
    if isinstance(value, str) and any(f.name == "name" for f in model._meta.get_fields()):
        return rows.filter(name=value.strip()).order_by("-created_at").first()
    return None


def get_object(model: type[DjangoModel], project: Project, value: Any, *, what: str) -> Any:
    found = find_object(model, project, value)
    if found is None:
        raise StepFailed(f"no {what} '{value}' in this project.")
    return found


def job_base_name(ctx: StepContext, given: Any = None) -> str:
    """``<pipeline>-<run number>-<step>`` (or the name the step gives) in the characters job names allow."""
    text = str(given).strip() if isinstance(given, str) and given.strip() else \
        f"{ctx.execution.pipeline.name}-{ctx.execution.number}-{ctx.step.name}"
    text = _NAME_JUNK.sub("-", text).strip("-._") or f"pipeline-{ctx.execution.number}-{ctx.step.name}"
    if not text[0].isalnum():
        text = f"p{text}"
    return text[:JOB_NAME_MAX]


def finite_metrics(metrics: Any) -> dict[str, float]:
    out = {}
    for name, value in (metrics or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[str(name)] = float(value)
    return out


def record_job(ctx: StepContext, job: dict[str, Any]) -> None:
    """Write the job to the step row now (the engine writes it again from Waiting), so a restarted start
    finds it."""
    from studio.pipelines.models import PipelineStep

    PipelineStep.objects.filter(id=ctx.step.id).update(job=job)
    ctx.step.job = job


def recorded_job(ctx: StepContext, model: type[DjangoModel], kind: str, dead: tuple[str, ...]) -> Any:
    """The job an earlier start of this step created, if it is still alive or done (not failed/stopped)."""
    job = ctx.step.job or {}
    if job.get("kind") != kind or not job.get("id"):
        return None
    found = model.objects.filter(id=job["id"], project=ctx.project).first()
    return None if found is None or found.status in dead else found


def serializer_data(serializer_class: type, body: dict[str, Any], *, what: str) -> dict[str, Any]:
    serializer = serializer_class(data=body)
    if not serializer.is_valid():
        raise StepFailed(f"{what}: {errors_text(serializer.errors)}")
    return dict(serializer.validated_data)


def _filtered(exc: ValidationError, *, skip: set[str]) -> dict[str, str]:
    """A validation's errors as {"arguments.<field>": text}, leaving out fields whose value is not known yet."""
    out = {}
    for key, messages in exc.message_dict.items():
        if key.split(".")[0] in skip:
            continue
        out[f"arguments.{key}"] = " ".join(messages)
    return out


def _literal_values(project: Project, arguments: dict[str, Any], *, datasets: tuple[str, ...],
                    fields: tuple[str, ...]) -> tuple[dict[str, Any], set[str]]:
    """Known values to validate now, and the fields whose value only a run will know (refs, future datasets)."""
    from studio.datasets.models import Dataset

    known: dict[str, Any] = {}
    unknown: set[str] = set()
    for field in datasets:
        value = arguments.get(field)
        if value is None:
            continue
        found = None if has_ref(value) else find_object(Dataset, project, value)
        if found is None:
            unknown.add(field)  # a ref, or a name that may be uploaded before the pipeline runs
        else:
            known[field] = found
    for field in fields:
        value = arguments.get(field)
        if value is None:
            continue
        if field.endswith("hyperparameters") and isinstance(value, dict) and not is_ref(value):
            known[field] = {k: v for k, v in value.items() if not has_ref(v)}
        elif has_ref(value):
            unknown.add(field)
        else:
            known[field] = value
    return known, unknown


ALGORITHMS = tuple(algo.name for algo in list_algorithms())
_TRAINING_COMMON = {
    "algorithm": Arg("string", required=True, help="The built-in algorithm to train.", choices=ALGORITHMS),
    "dataset": Arg("dataset", required=True, help="The training data: a dataset id or name, or a ref to a "
                                                  "processing step's dataset."),
    "target": Arg("string", help="The column to predict; the dataset's target when left out."),
    "validation_dataset": Arg("dataset", help="Data to compute validation metrics on (e.g. a split's "
                                              "validation part); else validation_fraction of the rows."),
    "validation_fraction": Arg("number", help="Share of the training rows held out for validation metrics "
                                              "when there is no validation dataset (0 to 0.5, default 0.2)."),
    "missing_values": Arg("string", help="How missing numbers in feature columns are handled (default mean).",
                          choices=MISSING_STRATEGIES),
}
_JOB_DEAD = ("failed", "stopped")


def _job_or_none(ctx: StepContext, model: type[DjangoModel]) -> Any:
    job_id = (ctx.step.job or {}).get("id")
    return model.objects.filter(id=job_id, project=ctx.project).first() if job_id else None


def _job(ctx: StepContext, model: type[DjangoModel], what: str) -> Any:
    job = _job_or_none(ctx, model)
    if job is None:
        raise StepFailed(f"the {what} this step started ({(ctx.step.job or {}).get('id')}) no longer exists.")
    return job


def start_job(step: StepKind, ctx: StepContext, *, model: type[DjangoModel], kind: str, serializer_class: type,
              create: Callable[..., Any]) -> Done | Waiting:
    """Create the job of ``kind`` (e.g. "training_job") through the REST API's serializer and ``create`` service,
    or wait for the one an earlier start of this step created."""
    what = kind.replace("_", " ")
    if recorded_job(ctx, model, kind, _JOB_DEAD) is not None:
        return step.poll(ctx)
    arguments = present(ctx.arguments)
    if errors := unknown_arguments(step, arguments):
        raise StepFailed(errors_text(errors))
    require_user(ctx)
    body = {**arguments, "name": unique_name(model=model, project=ctx.project,
                                             base=job_base_name(ctx, arguments.get("name")))}
    data = serializer_data(serializer_class, body, what=what)
    with service_errors(what), transaction.atomic():
        job = create(user=ctx.user, project=ctx.project, **data)
        record_job(ctx, {"kind": kind, "id": str(job.id)})
    return Waiting(job=ctx.step.job, message=f"{_capital(what)} '{job.name}' is pending")


def still_running(ctx: StepContext, job: Any, what: str) -> Waiting:
    """Wait on ``job`` (a job or an endpoint), with its status message or "<What> '<name>' is <status>"."""
    return Waiting(job=dict(ctx.step.job), message=job.status_message or f"{_capital(what)} '{job.name}' is "
                                                                            f"{job.status}")


def unfinished_job(ctx: StepContext, job: Any, what: str) -> Waiting:
    """A job that has not completed: the step fails when the job failed or was stopped, else waits on."""
    if job.status == "failed":
        raise StepFailed(f"{what} '{job.name}' failed: {job.failure_reason or job.status_message}")
    if job.status == "stopped":
        raise StepFailed(f"{what} '{job.name}' was stopped ({job.status_message or 'stopped'}).")
    return still_running(ctx, job, what)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _validate_algorithm_job(kind: StepKind, project: Project, arguments: dict[str, Any], *, fields: tuple[str, ...],
                            validate: Callable[..., Any], depends: dict[str, set[str]] | None = None) -> dict[str, str]:
    """A training or tuning step's arguments checked now by the job's own ``validate``, but for what only a run
    will know: refs, datasets not uploaded yet, and the fields whose check ``depends`` on an unknown one."""
    errors = unknown_arguments(kind, arguments)
    algorithm = arguments.get("algorithm")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        return errors  # a ref, or reported by the definition's own check of choices
    known, unknown = _literal_values(project, arguments, datasets=("dataset", "validation_dataset"), fields=fields)
    if "dataset" in unknown or "dataset" not in known:
        unknown |= {"dataset", "target", "validation_dataset"}  # what they allow depends on the dataset
    for field, dependents in (depends or {}).items():
        if field in unknown:
            unknown |= dependents
    try:
        validate(project=project, algorithm=algorithm, dataset=known.pop("dataset", None), **known)
    except ValidationError as exc:
        errors.update(_filtered(exc, skip=unknown))
    return errors


# --- training ----------------------------------------------------------------------------------------


class TrainingStep(StepKind):
    type = "training"
    title = "Train a model"
    description = ("Runs a training job (the body of POST /training-jobs) and waits for it; gives the model, the "
                   "job and its final metrics.")
    arguments = {
        **_TRAINING_COMMON,
        "hyperparameters": Arg("object", help="{name: value}; values may be refs to parameters. Left-out ones "
                                              "take the algorithm's defaults."),
        "max_runtime_seconds": Arg("number", help="Stop the job after this many seconds."),
        "name": Arg("string", help="Name of the job; default <pipeline>-<run>-<step>. A number is added when "
                                   "the name is taken."),
    }
    outputs = {"model": "model", "training_job": "string", "metrics": "object"}
    cacheable = True
    open_arguments = True

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        from studio.training.services import training_job_validate

        return _validate_algorithm_job(
            self, project, arguments, validate=training_job_validate,
            fields=("target", "validation_fraction", "hyperparameters", "max_runtime_seconds", "missing_values",
                    "name"))

    def start(self, ctx: StepContext) -> Done | Waiting:
        from studio.training import services
        from studio.training.api import TrainingJobIn
        from studio.training.models import TrainingJob

        return start_job(self, ctx, model=TrainingJob, kind="training_job", serializer_class=TrainingJobIn,
                         create=services.training_job_create)

    def poll(self, ctx: StepContext) -> Done | Waiting:
        from studio.registry.models import Model
        from studio.training.models import JobStatus, TrainingJob

        job = _job(ctx, TrainingJob, "training job")
        if job.status == JobStatus.COMPLETED:
            model = Model.objects.filter(training_job=job).first()
            if model is None:
                raise StepFailed(f"training job '{job.name}' completed but its model is gone.")
            return Done({"model": str(model.id), "training_job": str(job.id),
                         "metrics": finite_metrics(job.final_metrics)},
                        message=f"Trained model '{model.name}'")
        return unfinished_job(ctx, job, "training job")

    def stop(self, ctx: StepContext) -> None:
        from studio.training import services
        from studio.training.models import TrainingJob

        job = _job_or_none(ctx, TrainingJob)
        if job is not None:
            # Not the user-facing stop: the execution's stop was allowed already, whoever's job this is.
            with contextlib.suppress(Conflict):
                services.training_job_request_stop(job=job, message=f"Stopped with pipeline run "
                                                                    f"'{ctx.execution}'")


# --- tuning ------------------------------------------------------------------------------------------


class TuningStep(StepKind):
    type = "tuning"
    title = "Tune hyperparameters"
    description = ("Runs a tuning job (the body of POST /tuning-jobs) and waits for it; gives the best trial's "
                   "model and metrics.")
    arguments = {
        **_TRAINING_COMMON,
        "objective": Arg("object", help='{"metric": "validation:accuracy", "goal": "maximize"}; the algorithm\'s '
                                        "default objective when left out."),
        "ranges": Arg("object", help='{"<hyperparameter>": {"type": "continuous"|"integer"|"categorical", "min", '
                                     '"max", "values", "scale"}}'),
        "autotune": Arg("boolean", help="Let Studio choose the ranges, strategy and limits left out."),
        "static_hyperparameters": Arg("object", help="Hyperparameters every trial uses: {name: value}."),
        "strategy": Arg("string", help="How trials are chosen (default bayesian).",
                        choices=("random", "grid", "bayesian", "hyperband")),
        "max_jobs": Arg("number", help="Trials in all (default 20)."),
        "max_parallel_jobs": Arg("number", help="Trials at once (default 2)."),
        "max_runtime_seconds": Arg("number", help="Stop the tuning job after this many seconds."),
        "early_stopping": Arg("string", help="off (default) or auto (median rule).", choices=("off", "auto")),
        "completion": Arg("object", help="{target_value?, best_not_improving_jobs?}"),
        "warm_start": Arg("object", help='{"parents": [tuning job id], "type": "identical_data"|'
                                         '"transfer_learning"}'),
        "hyperband": Arg("object", help="{min_resource?, max_resource?, eta?} (hyperband strategy)."),
        "name": Arg("string", help="Name of the tuning job; default <pipeline>-<run>-<step>."),
    }
    outputs = {"model": "model", "tuning_job": "string", "metrics": "object"}
    cacheable = True
    open_arguments = True

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        from studio.tuning.services import training_slots
        from studio.tuning.validation import tuning_job_validate

        fields = tuple(name for name in self.arguments if name not in ("algorithm", "dataset", "validation_dataset",
                                                                       "name"))
        return _validate_algorithm_job(
            self, project, arguments, fields=fields,
            validate=lambda **values: tuning_job_validate(workers=training_slots(), **values),
            # grid sizes come from the ranges
            depends={"ranges": {"max_jobs", "strategy", "max_parallel_jobs"}})

    def start(self, ctx: StepContext) -> Done | Waiting:
        from studio.tuning import services
        from studio.tuning.api import TuningJobIn
        from studio.tuning.models import TuningJob

        return start_job(self, ctx, model=TuningJob, kind="tuning_job", serializer_class=TuningJobIn,
                         create=services.tuning_job_create)

    def poll(self, ctx: StepContext) -> Done | Waiting:
        from studio.registry.models import Model
        from studio.tuning.models import TuningJob, TuningStatus

        job = _job(ctx, TuningJob, "tuning job")
        if job.status == TuningStatus.COMPLETED:
            trial = job.best_trial
            model = Model.objects.filter(training_job_id=trial.training_job_id).first() if trial else None
            if model is None:
                raise StepFailed(f"tuning job '{job.name}' completed without a trained model: "
                                 f"{job.status_message or 'no trial succeeded'}")
            return Done({"model": str(model.id), "tuning_job": str(job.id),
                         "metrics": finite_metrics(trial.training_job.final_metrics)},
                        message=f"Best trial #{trial.number}: model '{model.name}'")
        return unfinished_job(ctx, job, "tuning job")

    def stop(self, ctx: StepContext) -> None:
        from studio.tuning import services
        from studio.tuning.models import TuningJob

        job = _job_or_none(ctx, TuningJob)
        if job is not None and ctx.user is not None:
            with contextlib.suppress(Conflict, PermissionDenied):
                services.tuning_job_stop(user=ctx.user, tuning_job=job)


# --- batch transform ---------------------------------------------------------------------------------


class TransformStep(StepKind):
    type = "transform"
    title = "Batch transform"
    description = ("Predicts every row of a dataset with a model (the body of POST /transform-jobs) and gives the "
                   "output dataset.")
    arguments = {
        "model": Arg("model", required=True, help="The model to predict with (e.g. a ref to a training step's "
                                                  "model)."),
        "input_dataset": Arg("dataset", required=True, help="The dataset to predict (tabular, or text for a text "
                                                            "model)."),
        "split_type": Arg("string", help="line (default): one record per line; none: the whole file at once.",
                          choices=("line", "none")),
        "batch_strategy": Arg("string", help="multi_record (default) or single_record requests.",
                              choices=("single_record", "multi_record")),
        "max_payload_mb": Arg("number", help="Largest request, 1 to 100 MB (default 6)."),
        "max_concurrent": Arg("number", help="Parts predicted at once, 1 to 32 (default 2)."),
        "input_filter": Arg("string", help="Input columns to send: $[0,2], $[1:] or names separated by commas."),
        "join_source": Arg("string", help="input: the input columns come before the predictions.",
                           choices=("none", "input")),
        "output_filter": Arg("string", help="Output columns to keep, same syntax as input_filter."),
        "name": Arg("string", help="Name of the transform job; default <pipeline>-<run>-<step>."),
    }
    outputs = {"dataset": "dataset", "transform_job": "string"}
    cacheable = True
    open_arguments = True

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        from studio.endpoints.transform_runner import FilterError, parse_filter
        from studio.endpoints.transforms import transform_job_validate
        from studio.registry.models import Model

        errors = unknown_arguments(self, arguments)
        for field in ("input_filter", "output_filter"):
            value = arguments.get(field)
            if isinstance(value, str):
                try:
                    parse_filter(value, field=field)
                except FilterError as exc:
                    errors[f"arguments.{field}"] = str(exc)
        model = arguments.get("model")
        model = None if has_ref(model) else find_object(Model, project, model)
        known, unknown = _literal_values(project, arguments, datasets=("input_dataset",), fields=(
            "split_type", "batch_strategy", "max_payload_mb", "max_concurrent", "join_source", "name"))
        if model is None or "input_dataset" not in known:
            return errors  # what the rest allows depends on the model and the data
        try:
            transform_job_validate(project=project, model=model, input_dataset=known.pop("input_dataset"),
                                   input_filter=arguments.get("input_filter") or "",
                                   output_filter=arguments.get("output_filter") or "", **known)
        except ValidationError as exc:
            errors.update({k: v for k, v in _filtered(exc, skip=unknown).items() if k not in errors})
        return errors

    def start(self, ctx: StepContext) -> Done | Waiting:
        from studio.endpoints import transforms
        from studio.endpoints.models import TransformJob
        from studio.endpoints.transform_api import TransformJobIn

        return start_job(self, ctx, model=TransformJob, kind="transform_job", serializer_class=TransformJobIn,
                         create=transforms.transform_job_create)

    def poll(self, ctx: StepContext) -> Done | Waiting:
        from studio.endpoints.models import TransformJob, TransformStatus

        job = _job(ctx, TransformJob, "transform job")
        if job.status == TransformStatus.COMPLETED:
            if job.output_dataset_id is None:
                raise StepFailed(f"transform job '{job.name}' completed but its output dataset is gone.")
            return Done({"dataset": str(job.output_dataset_id), "transform_job": str(job.id)},
                        message=job.status_message)
        return unfinished_job(ctx, job, "transform job")

    def stop(self, ctx: StepContext) -> None:
        from studio.endpoints import transforms
        from studio.endpoints.models import TransformJob

        job = _job_or_none(ctx, TransformJob)
        if job is not None and ctx.user is not None:
            with contextlib.suppress(Conflict, PermissionDenied):
                transforms.transform_job_stop(user=ctx.user, job=job)
