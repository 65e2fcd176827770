"""Step types that steer an execution: a condition chooses a branch, a fail step ends the run with a message.

The engine skips the branch a condition did not choose (and whatever depends on a skipped step); the
condition itself only answers true or false.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any

from studio.pipelines.steps.base import Arg, Done, StepContext, StepFailed, StepKind
from studio.pipelines.steps.jobs import is_ref, unknown_arguments

if TYPE_CHECKING:
    from studio.accounts.models import Project

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
       "!=": operator.ne}
MESSAGE_MAX = 2000


def _number(value: Any) -> float | None:
    """A number, or a string that is one (a parameter typed in a form); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def compare(left: Any, op: str, right: Any) -> bool:
    """``left op right``: numbers numerically, strings as text, true/false and null only with == and !=.

    Raises StepFailed naming both values when they cannot be compared that way.
    """
    if op not in OPS:
        raise StepFailed(f"op must be one of {', '.join(OPS)} (got {op!r}).")
    numeric = any(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if numeric:
        a, b = _number(left), _number(right)
        if a is None or b is None:
            raise StepFailed(f"cannot compare {left!r} {op} {right!r}: one is a number and the other is not.")
        if math.isnan(a) or math.isnan(b):
            raise StepFailed(f"cannot compare {left!r} {op} {right!r}: NaN is not a value.")
        return bool(OPS[op](a, b))
    if isinstance(left, str) and isinstance(right, str):
        return bool(OPS[op](left, right))
    if op in ("==", "!="):
        return bool(OPS[op](left, right))
    raise StepFailed(f"cannot compare {left!r} {op} {right!r}: {op} orders numbers or strings only.")


class ConditionStep(StepKind):
    type = "condition"
    title = "Condition"
    description = ("Compares two values (usually a metric and a parameter) and runs the steps of if_true or "
                   "if_false; the others are skipped.")
    arguments = {
        "left": Arg("any", required=True, help='A value or a ref, e.g. {"ref": "steps.train.metrics.'
                                               'validation:accuracy"}.'),
        "op": Arg("string", required=True, help="How to compare.", choices=tuple(OPS)),
        "right": Arg("any", required=True, help='A value or a ref, e.g. {"ref": "parameters.threshold"}.'),
        "if_true": Arg("steps", help="Steps to run when the comparison holds."),
        "if_false": Arg("steps", help="Steps to run when it does not."),
    }
    outputs = {"result": "boolean"}

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        errors = unknown_arguments(self, arguments)
        left, right, op = arguments.get("left"), arguments.get("right"), arguments.get("op")
        if not (is_ref(left) or is_ref(right)) and left is not None and right is not None and op in OPS:
            try:
                compare(left, op, right)
            except StepFailed as exc:
                errors["arguments.right"] = exc.message[:1].upper() + exc.message[1:]
        for field in ("left", "right"):
            value = arguments.get(field)
            if isinstance(value, list | dict) and not is_ref(value):
                errors[f"arguments.{field}"] = "Compare a number, a string, true/false or a ref, not a list or object."
        if not arguments.get("if_true") and not arguments.get("if_false"):
            errors["arguments.if_true"] = "List the steps to run in if_true and/or if_false."
        return errors

    def start(self, ctx: StepContext) -> Done:
        arguments = ctx.arguments
        left, op, right = arguments.get("left"), arguments.get("op"), arguments.get("right")
        result = compare(left, op, right)
        chosen = arguments.get("if_true" if result else "if_false") or []
        runs = f"runs {', '.join(chosen)}" if chosen else "runs no branch step"
        return Done({"result": result}, message=f"{left!r} {op} {right!r} is {str(result).lower()}: {runs}")


class FailStep(StepKind):
    type = "fail"
    title = "Fail"
    description = "Ends the execution as failed with a message (e.g. on the branch where a model is not good enough)."
    arguments = {
        "message": Arg("string", required=True, help="Why the execution fails (a string, or a ref to one)."),
    }
    outputs: dict[str, str] = {}

    def validate(self, arguments: dict[str, Any], *, project: Project) -> dict[str, str]:
        errors = unknown_arguments(self, arguments)
        message = arguments.get("message")
        if isinstance(message, str) and not message.strip():
            errors["arguments.message"] = "Say why the execution fails."
        elif isinstance(message, str) and len(message) > MESSAGE_MAX:
            errors["arguments.message"] = f"At most {MESSAGE_MAX} characters."
        return errors

    def start(self, ctx: StepContext) -> Done:
        message = ctx.arguments.get("message")
        raise StepFailed(str(message).strip() if message not in (None, "") else "Failed by a fail step.")
