"""The contract between the engine and the step types.

A step type declares its arguments (with kinds, so the definition validator can type-check refs) and
its outputs, and implements ``start`` (and ``poll``/``stop`` when it waits on a job). The engine
resolves refs, caches, retries, dispatches and records; a step type only does its own work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from studio.accounts.models import Project, User
    from studio.pipelines.models import PipelineExecution, PipelineStep

# Kinds of values an argument takes or an output gives. Object kinds travel as id strings.
OBJECT_KINDS = ("dataset", "model", "model_version", "endpoint")
KINDS = (*OBJECT_KINDS, "number", "string", "boolean", "object", "list", "steps", "any")


@dataclass(frozen=True)
class Arg:
    """One argument of a step type. ``kind`` drives ref type-checking and the builder's form field."""

    kind: str
    required: bool = False
    help: str = ""
    choices: tuple[str, ...] = ()


@dataclass
class StepContext:
    """What a step type gets to run: its row, the execution, and its arguments with refs resolved.

    ``arguments`` hold plain values: a dataset/model/model_version/endpoint as its id (str), a
    number, a string... Object arguments given as a name are resolved to the id by the engine.
    ``user`` is who the execution acts for (who started it, or the schedule's/trigger's owner).
    """

    step: PipelineStep
    execution: PipelineExecution
    project: Project
    user: User | None
    arguments: dict[str, Any]

    def heartbeat(self) -> None:
        """Tell the reconciler this synchronous step's worker is alive (long processing calls it)."""
        from django.utils import timezone

        from studio.pipelines.models import PipelineStep

        PipelineStep.objects.filter(id=self.step.id).update(heartbeat_at=timezone.now())


@dataclass
class Done:
    """The step finished: its outputs (ids as str, ``metrics`` as {name: float}, ``result`` for conditions)."""

    outputs: dict[str, Any]
    message: str = ""


@dataclass
class Waiting:
    """The step started an asynchronous job; the engine polls it until it is Done or raises StepFailed."""

    job: dict[str, Any]  # {"kind": "training_job"|"tuning_job"|"transform_job"|"endpoint", "id": str}
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


class StepFailed(Exception):
    """A failure retrying cannot fix (bad arguments, a fail step, a job that failed): the step fails now.

    Any other exception from ``start``/``poll`` is treated as transient and retried per the step's
    retry policy.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StepKind:
    """Base class of step types; subclasses set the class attributes and implement ``start``."""

    type: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    arguments: ClassVar[dict[str, Arg]] = {}
    # Output name -> kind. "metrics" (kind "object") means refs `steps.<s>.metrics.<metric>` (numbers).
    outputs: ClassVar[dict[str, str]] = {}
    # Whether a run with identical inputs may reuse earlier outputs (side-effect steps may not).
    cacheable: ClassVar[bool] = False
    # Whether the arguments accept keys not declared in ``arguments`` (e.g. training takes the create body).
    open_arguments: ClassVar[bool] = False

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        """Errors in the literal arguments beyond kinds and required ones: {argument path: message}.

        Values that are refs (``{"ref": ...}``) are not resolved yet and must be skipped here.
        """
        return {}

    def output_kinds(self, arguments: dict[str, Any]) -> dict[str, str]:
        """The outputs this step will give for these (unresolved) arguments; default ``outputs``."""
        return dict(self.outputs)

    def start(self, ctx: StepContext) -> Done | Waiting:
        raise NotImplementedError

    def poll(self, ctx: StepContext) -> Done | Waiting:
        """Check the job recorded in ``ctx.step.job``; only called for steps that returned Waiting."""
        raise NotImplementedError

    def stop(self, ctx: StepContext) -> None:
        """Stop the job recorded in ``ctx.step.job`` (the execution is being stopped)."""
