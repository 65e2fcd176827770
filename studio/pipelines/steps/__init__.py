"""The step types a pipeline can use, by type name, and their description for the builder and the API.

The contract with the engine is in base.py; each type lives with its kin: processing.py (datasets),
jobs.py (training, tuning, batch transform), deploy.py (register, deploy), control.py (condition, fail).
"""

from __future__ import annotations

from typing import Any

from studio.pipelines.steps.base import StepKind
from studio.pipelines.steps.control import ConditionStep, FailStep
from studio.pipelines.steps.deploy import DeployStep, RegisterStep
from studio.pipelines.steps.jobs import TrainingStep, TransformStep, TuningStep
from studio.pipelines.steps.processing import ProcessingStep


class UnknownStepType(KeyError):
    """No step type has that name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# In the order the builder's palette shows them: data, models, publishing, control.
STEP_KINDS: dict[str, StepKind] = {kind.type: kind for kind in (
    ProcessingStep(), TrainingStep(), TuningStep(), ConditionStep(), RegisterStep(), DeployStep(), TransformStep(),
    FailStep(),
)}


def step_kind(type: str) -> StepKind:
    """The step type named ``type``; UnknownStepType (a KeyError) listing the valid ones otherwise."""
    try:
        return STEP_KINDS[type]
    except (KeyError, TypeError):
        raise UnknownStepType(f"unknown step type {type!r}; the types are {', '.join(STEP_KINDS)}") from None


def step_palette() -> list[dict[str, Any]]:
    """Every step type as the builder page and GET /pipeline-step-types describe it.

    ``arguments`` come in declaration order (the order of the builder's form), ``outputs`` as
    ``[{name, kind}]`` where ``metrics`` (kind object) is read as ``steps.<s>.metrics.<metric name>``.
    """
    return [{
        "type": kind.type,
        "title": kind.title,
        "description": kind.description,
        "cacheable": kind.cacheable,
        "arguments": [{"name": name, "kind": arg.kind, "required": arg.required, "help": arg.help,
                       "choices": list(arg.choices)} for name, arg in kind.arguments.items()],
        "outputs": [{"name": name, "kind": output} for name, output in kind.outputs.items()],
    } for kind in STEP_KINDS.values()]


__all__ = ["STEP_KINDS", "UnknownStepType", "step_kind", "step_palette"]
