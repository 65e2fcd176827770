"""A pipeline definition: checking it before it is saved, and reading its graph (refs, dependencies, order).

Every problem is collected at once under the path of the value that holds it, with steps named by their
NAME, not their index (``definition.steps.train.arguments.dataset``), so a client or the builder can point
at the exact input. The engine and the builder's DAG both use :func:`dependencies` and
:func:`topological_order`, so what is drawn is what runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from studio.pipelines.steps.base import OBJECT_KINDS

if TYPE_CHECKING:
    from studio.accounts.models import Project
    from studio.pipelines.steps.base import StepKind

MAX_STEPS = 100
MAX_PARAMETERS = 100
MAX_STRING_PARAMETER = 10_000
STEP_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
PARAMETER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
STEP_KEYS = ("name", "type", "depends_on", "arguments", "retry", "cache", "description")
DEFINITION_KEYS = ("parameters", "steps")

RETRY_DEFAULTS = {"max_attempts": 1, "backoff_seconds": 5.0, "backoff_rate": 2.0}
MAX_ATTEMPTS = 10
MAX_BACKOFF_SECONDS = 24 * 3600
MAX_BACKOFF_RATE = 10.0
CACHE_DEFAULT_EXPIRY = 30 * 24 * 3600
MAX_CACHE_EXPIRY = 3650 * 24 * 3600
CACHE_DEFAULTS = {"enabled": True, "expire_after_seconds": CACHE_DEFAULT_EXPIRY}

# The step type whose "steps" arguments choose a branch; other kinds may only list steps to wait for.
CONDITION_TYPE = "condition"
BRANCH_ARGUMENTS = ("if_true", "if_false")

REF_HELP = "a ref is parameters.<name>, steps.<step>.<output> or steps.<step>.metrics.<metric name>"


def step_kinds() -> dict[str, StepKind]:
    """The registry, read at call time so tests (and late-registered kinds) see the current entries."""
    from studio.pipelines import steps

    return steps.STEP_KINDS


# --- refs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A parsed ``{"ref": ...}``: a parameter, a step's output, or one metric of a step's ``metrics``."""

    source: str  # "parameters" | "steps"
    name: str  # the parameter or the step
    output: str = ""
    metric: str = ""

    def __str__(self) -> str:
        if self.source == "parameters":
            return f"parameters.{self.name}"
        return f"steps.{self.name}.{self.output}" + (f".{self.metric}" if self.metric else "")


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and "ref" in value


def parse_ref(value: Any) -> Ref:
    """``{"ref": "steps.train.metrics.validation:accuracy"}`` (or the bare string) → Ref; ValueError says why not."""
    text = value.get("ref") if isinstance(value, dict) else value
    if isinstance(value, dict) and set(value) != {"ref"}:
        raise ValueError('a ref is an object with the single key "ref"')
    if not isinstance(text, str) or not text:
        raise ValueError(f"a ref must be a non-empty string: {REF_HELP}")
    head, _, rest = text.partition(".")
    if head == "parameters":
        if not PARAMETER_NAME_RE.match(rest):
            raise ValueError(f"'{text}' is not a valid ref: {REF_HELP}")
        return Ref("parameters", rest)
    if head == "steps":
        step, _, output = rest.partition(".")
        if not STEP_NAME_RE.match(step) or not output:
            raise ValueError(f"'{text}' is not a valid ref: {REF_HELP}")
        if output.startswith("metrics."):
            metric = output[len("metrics."):]
            if not metric:
                raise ValueError(f"'{text}' names no metric: {REF_HELP}")
            return Ref("steps", step, "metrics", metric)
        if "." in output:
            raise ValueError(f"'{text}' is not a valid ref: {REF_HELP}")
        return Ref("steps", step, output)
    raise ValueError(f"'{text}' is not a valid ref: {REF_HELP}")


def iter_refs(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every ``{"ref": ...}`` inside ``value`` (lists and objects, nested), with its path below ``value``."""
    if is_ref(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_refs(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_refs(item, (*path, str(index)))


def step_refs(step: dict[str, Any]) -> list[Ref]:
    """The valid refs of a step's arguments (invalid ones are the validator's business)."""
    refs = []
    for _path, raw in iter_refs(step.get("arguments") or {}):
        try:
            refs.append(parse_ref(raw))
        except ValueError:
            continue
    return refs


# --- the graph -------------------------------------------------------------------------------------


def _branch_argument_names(step: dict[str, Any]) -> tuple[str, ...]:
    kind = step_kinds().get(step.get("type"))
    if kind is not None:
        names = tuple(name for name, arg in kind.arguments.items() if arg.kind == "steps")
        if names:
            return names
    return BRANCH_ARGUMENTS if step.get("type") == CONDITION_TYPE else ()


def branch_targets(step: dict[str, Any]) -> dict[str, list[str]]:
    """{argument: [step names]} of a step's "steps" arguments (a condition's if_true / if_false)."""
    arguments = step.get("arguments") if isinstance(step.get("arguments"), dict) else {}
    out = {}
    for name in _branch_argument_names(step):
        value = arguments.get(name)
        if isinstance(value, list):
            out[name] = [v for v in value if isinstance(v, str)]
    return out


def edges(definition: dict[str, Any]) -> list[dict[str, str]]:
    """Every edge of the DAG, for drawing: {"source", "target", "kind": "depends_on"|"data"|<branch argument>}.

    A step listed in a condition's if_true/if_false waits for that condition (edge condition → step).
    Unknown names are left out, so a definition being edited can still be drawn.
    """
    steps = [s for s in definition.get("steps") or [] if isinstance(s, dict) and isinstance(s.get("name"), str)]
    names = {s["name"] for s in steps}
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(source: str, target: str, kind: str) -> None:
        if source in names and target in names and source != target and (source, target) not in seen:
            seen.add((source, target))
            out.append({"source": source, "target": target, "kind": kind})

    for step in steps:
        for dep in step.get("depends_on") or []:
            if isinstance(dep, str):
                add(dep, step["name"], "depends_on")
        for ref in step_refs(step):
            if ref.source == "steps":
                add(ref.name, step["name"], "data")
    for step in steps:
        for argument, targets in branch_targets(step).items():
            for target in targets:
                add(step["name"], target, argument)
    return out


def dependencies(definition: dict[str, Any]) -> dict[str, list[str]]:
    """{step: [steps it waits for]}: explicit depends_on + steps its refs read + conditions that list it.

    Both the keys and each list follow the definition's order.
    """
    steps = [s for s in definition.get("steps") or [] if isinstance(s, dict) and isinstance(s.get("name"), str)]
    position = {s["name"]: i for i, s in enumerate(steps)}
    deps: dict[str, set[str]] = {s["name"]: set() for s in steps}
    for edge in edges(definition):
        deps[edge["target"]].add(edge["source"])
    return {name: sorted(found, key=position.__getitem__) for name, found in deps.items()}


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in deps.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in deps:
        if node not in state and (found := visit(node)):
            # Written in the direction work flows: a → b means b waits for a.
            return list(reversed(found))
    return None


def topological_order(definition: dict[str, Any]) -> list[str]:
    """Step names so that each comes after everything it waits for; ties keep the definition's order."""
    deps = dependencies(definition)
    order: list[str] = []
    done: set[str] = set()
    remaining = list(deps)
    while remaining:
        ready = [name for name in remaining if all(d in done for d in deps[name])]
        if not ready:
            raise ValueError("the steps form a cycle: " + " → ".join(find_cycle(deps) or remaining))
        for name in ready:
            order.append(name)
            done.add(name)
        remaining = [name for name in remaining if name not in done]
    return order


def levels(definition: dict[str, Any]) -> dict[str, int]:
    """{step: depth}: 0 for steps that wait for nothing, else one more than their deepest dependency."""
    deps = dependencies(definition)
    depth: dict[str, int] = {}
    for name in topological_order(definition):
        depth[name] = 1 + max((depth[d] for d in deps[name]), default=-1)
    return depth


# --- kinds of values -------------------------------------------------------------------------------


def value_kind(value: Any) -> str:
    """The kind of a literal: what a parameter's default makes it, what a ref to it carries."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "any"


def literal_fits(value: Any, kind: str) -> bool:
    if kind == "any" or value is None:
        return True
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "steps":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "model_version" and isinstance(value, int) and not isinstance(value, bool):
        return True  # version ids are numbers
    if kind in OBJECT_KINDS:
        return isinstance(value, str) and value.strip() != ""
    return True


def kinds_fit(given: str, wanted: str, *, from_parameter: bool = False) -> bool:
    """Whether a ref giving ``given`` may fill an argument of kind ``wanted``.

    A string parameter fits an object kind: it holds an id or a name the engine resolves when the step runs.
    """
    if "any" in (given, wanted) or given == wanted:
        return True
    return from_parameter and given == "string" and wanted in OBJECT_KINDS


def _kind_text(kind: str) -> str:
    return {
        "number": "a number", "string": "a string", "boolean": "true or false", "list": "a list",
        "object": "an object", "steps": "a list of step names", "dataset": "a dataset (id or name)",
        "model": "a model (id or name)", "model_version": "a model version id", "endpoint": "an endpoint (id or name)",
    }.get(kind, kind)


# --- validation ------------------------------------------------------------------------------------


class _Errors(dict):
    def add(self, path: str, message: str) -> None:
        self.setdefault(path, []).append(message)


def _check_parameters(raw: Any, errors: _Errors) -> dict[str, Any]:
    path = "definition.parameters"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.add(path, 'parameters must be an object {"<name>": <default value>}.')
        return {}
    if len(raw) > MAX_PARAMETERS:
        errors.add(path, f"A pipeline takes at most {MAX_PARAMETERS} parameters (got {len(raw)}).")
    clean: dict[str, Any] = {}
    for name, default in raw.items():
        if not isinstance(name, str) or not PARAMETER_NAME_RE.match(name):
            errors.add(f"{path}.{name}", "A parameter name starts with a letter or _ and holds only letters, digits "
                                         "and _ (at most 64).")
            continue
        if isinstance(default, float) and not math.isfinite(default):
            errors.add(f"{path}.{name}", "A number default must be finite.")
            continue
        if default is not None and not isinstance(default, bool | int | float | str):
            errors.add(f"{path}.{name}", "A default is a number, a string, true/false, or null (no default: the "
                                         f"value must be given at each run); got {value_kind(default)}.")
            continue
        if isinstance(default, str) and len(default) > MAX_STRING_PARAMETER:
            errors.add(f"{path}.{name}", f"A string default is at most {MAX_STRING_PARAMETER} characters.")
            continue
        clean[name] = default
    return clean


def _number(errors: _Errors, path: str, value: Any, *, low: float, high: float, integer: bool) -> float | int | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        errors.add(path, f"Must be {'a whole number' if integer else 'a number'} between {low:g} and {high:g} "
                         f"(got {value!r}).")
        return None
    if not low <= value <= high:
        errors.add(path, f"Must be between {low:g} and {high:g} (got {value:g}).")
        return None
    return int(value) if integer else float(value)


def _check_retry(raw: Any, path: str, errors: _Errors) -> dict[str, Any]:
    clean = dict(RETRY_DEFAULTS)
    if raw is None:
        return clean
    if not isinstance(raw, dict):
        errors.add(path, "retry must be an object {max_attempts, backoff_seconds, backoff_rate}.")
        return clean
    for key in raw:
        if key not in RETRY_DEFAULTS:
            errors.add(f"{path}.{key}", "Unknown retry option; the options are max_attempts, backoff_seconds and "
                                        "backoff_rate.")
    bounds = {"max_attempts": (1, MAX_ATTEMPTS, True), "backoff_seconds": (0, MAX_BACKOFF_SECONDS, False),
              "backoff_rate": (1, MAX_BACKOFF_RATE, False)}
    for key, (low, high, integer) in bounds.items():
        if key in raw:
            value = _number(errors, f"{path}.{key}", raw[key], low=low, high=high, integer=integer)
            if value is not None:
                clean[key] = value
    return clean


def _check_cache(raw: Any, path: str, errors: _Errors) -> dict[str, Any]:
    clean = dict(CACHE_DEFAULTS)
    if raw is None:
        return clean
    if isinstance(raw, bool):  # "cache": false is the obvious shorthand
        clean["enabled"] = raw
        return clean
    if not isinstance(raw, dict):
        errors.add(path, "cache must be an object {enabled, expire_after_seconds}.")
        return clean
    for key in raw:
        if key not in CACHE_DEFAULTS:
            errors.add(f"{path}.{key}", "Unknown cache option; the options are enabled and expire_after_seconds.")
    if "enabled" in raw:
        if isinstance(raw["enabled"], bool):
            clean["enabled"] = raw["enabled"]
        else:
            errors.add(f"{path}.enabled", f"Must be true or false (got {raw['enabled']!r}).")
    if "expire_after_seconds" in raw:
        value = _number(errors, f"{path}.expire_after_seconds", raw["expire_after_seconds"], low=1,
                        high=MAX_CACHE_EXPIRY, integer=True)
        if value is not None:
            clean["expire_after_seconds"] = value
    return clean


@dataclass
class _Step:
    index: int
    raw: dict[str, Any]
    name: str | None  # None when missing or invalid: the step is then reported by its index
    kind: StepKind | None

    @property
    def path(self) -> str:
        return f"definition.steps.{self.name if self.name is not None else self.index}"


def _output_kinds(step: _Step) -> dict[str, str] | None:
    if step.kind is None:
        return None
    arguments = step.raw.get("arguments") if isinstance(step.raw.get("arguments"), dict) else {}
    try:
        return dict(step.kind.output_kinds(arguments))
    except Exception:
        # A step type that cannot tell from half-written arguments still declares its usual outputs.
        return dict(step.kind.outputs)


def _ref_kind(ref: Ref, *, step: _Step, by_name: dict[str, _Step], parameters: dict[str, Any],
              raw_parameters: Any, path: str, errors: _Errors) -> str | None:
    """The kind a (parsed) ref gives, or None after reporting why it cannot be resolved."""
    if ref.source == "parameters":
        if ref.name not in parameters:
            if isinstance(raw_parameters, dict) and ref.name in raw_parameters:
                return None  # the parameter itself is reported
            known = ", ".join(sorted(parameters)) or "none"
            errors.add(path, f"Unknown parameter '{ref.name}' (parameters: {known}).")
            return None
        default = parameters[ref.name]
        return "any" if default is None else value_kind(default)
    if ref.name == step.name:
        errors.add(path, f"A step cannot read its own outputs ({ref}).")
        return None
    source = by_name.get(ref.name)
    if source is None:
        errors.add(path, f"Unknown step '{ref.name}' in ref {ref}.")
        return None
    outputs = _output_kinds(source)
    if outputs is None:
        return None  # its type is reported on that step
    if ref.output not in outputs:
        known = ", ".join(sorted(outputs)) or "none"
        errors.add(path, f"Step '{ref.name}' ({source.raw.get('type')}) has no output '{ref.output}' "
                         f"(its outputs: {known}).")
        return None
    if ref.metric:
        if ref.output != "metrics":
            errors.add(path, f"Only metrics have names below them ({ref}).")
            return None
        return "number"
    return outputs[ref.output]


def _check_arguments(step: _Step, *, project: Project, by_name: dict[str, _Step], parameters: dict[str, Any],
                     raw_parameters: Any, errors: _Errors) -> None:
    kind = step.kind
    arguments = step.raw.get("arguments", {})
    base = f"{step.path}.arguments"
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        errors.add(base, "arguments must be an object {name: value}.")
        return
    before = sum(len(v) for v in errors.values())
    # Refs anywhere in the arguments must resolve; only a whole argument's ref can be type-checked.
    for arg_name, value in arguments.items():
        declared = kind.arguments.get(arg_name) if kind is not None else None
        for sub_path, raw in iter_refs(value):
            path = ".".join((base, arg_name, *sub_path))
            try:
                ref = parse_ref(raw)
            except ValueError as exc:
                errors.add(path, str(exc)[:1].upper() + str(exc)[1:] + ".")
                continue
            given = _ref_kind(ref, step=step, by_name=by_name, parameters=parameters, raw_parameters=raw_parameters,
                              path=path, errors=errors)
            if given is None or sub_path or declared is None:
                continue
            if declared.kind == "steps":
                errors.add(path, "Lists the steps to choose from by name; a ref cannot fill it.")
            elif not kinds_fit(given, declared.kind, from_parameter=ref.source == "parameters"):
                errors.add(path, f"{ref} gives {_kind_text(given)}, but {arg_name} takes {_kind_text(declared.kind)}.")
    if kind is None:
        return
    for arg_name, declared in kind.arguments.items():
        value = arguments.get(arg_name)
        path = f"{base}.{arg_name}"
        if value is None:
            if declared.required:
                errors.add(path, f"Required: {(declared.help or _kind_text(declared.kind)).rstrip('.')}.")
            continue
        if is_ref(value):
            continue
        if not literal_fits(value, declared.kind):
            errors.add(path, f"Must be {_kind_text(declared.kind)} (got {value_kind(value)} {value!r:.60}).")
        elif declared.choices and isinstance(value, str) and value not in declared.choices:
            errors.add(path, f"Must be one of {', '.join(declared.choices)} (got '{value}').")
        elif declared.kind == "steps":
            for target in value:
                if target == step.name:
                    errors.add(path, "A step cannot choose itself.")
                elif target not in by_name:
                    errors.add(path, f"Unknown step '{target}'.")
    if not kind.open_arguments:
        for arg_name in arguments:
            if arg_name not in kind.arguments:
                known = ", ".join(kind.arguments) or "none"
                errors.add(f"{base}.{arg_name}", f"Unknown argument of a {kind.type} step (its arguments: {known}).")
    branches = branch_targets(step.raw)
    if len(branches) > 1:
        seen: dict[str, str] = {}
        for arg_name, targets in branches.items():
            for target in targets:
                if target in seen and seen[target] != arg_name:
                    errors.add(f"{base}.{arg_name}", f"Step '{target}' is in both {seen[target]} and {arg_name}.")
                seen.setdefault(target, arg_name)
    if sum(len(v) for v in errors.values()) > before:
        return  # the type's own checks assume well-kinded literals
    try:
        extra = kind.validate(arguments, project=project)
    except ValidationError as exc:
        extra = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
    for key, messages in (extra or {}).items():
        key = str(key)
        if key.startswith("arguments.") or key == "arguments":
            path = f"{step.path}.{key}"
        else:
            path = f"{base}.{key}" if key else base
        for message in messages if isinstance(messages, list | tuple) else [messages]:
            errors.add(path, str(message))


def definition_validate(*, project: Project, definition: Any) -> dict[str, Any]:
    """The definition checked and normalized (defaults of retry/cache filled in); ValidationError lists every
    problem under its path."""
    errors = _Errors()
    if not isinstance(definition, dict):
        raise ValidationError({"definition": ['The definition must be an object {"parameters": {...}, '
                                              '"steps": [...]}.']})
    for key in definition:
        if key not in DEFINITION_KEYS:
            errors.add(f"definition.{key}", "Unknown key; a definition has parameters and steps.")
    raw_parameters = definition.get("parameters")
    parameters = _check_parameters(raw_parameters, errors)
    raw_steps = definition.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        errors.add("definition.steps", "steps must be a non-empty list of steps.")
        raise ValidationError(dict(errors))
    if len(raw_steps) > MAX_STEPS:
        errors.add("definition.steps", f"A pipeline has at most {MAX_STEPS} steps (got {len(raw_steps)}).")
        raise ValidationError(dict(errors))

    kinds = step_kinds()
    steps: list[_Step] = []
    by_name: dict[str, _Step] = {}
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            errors.add(f"definition.steps.{index}", "Each step is an object {name, type, arguments, ...}.")
            continue
        name = raw.get("name")
        step = _Step(index=index, raw=raw, name=None, kind=None)
        if not isinstance(name, str) or not STEP_NAME_RE.match(name):
            errors.add(f"definition.steps.{index}.name", f"A step name starts with a letter and holds letters, digits, "
                                                         f"_ and - (at most 64); got {name!r}.")
        elif name in by_name:
            errors.add(f"definition.steps.{name}.name", f"Two steps are named '{name}'; names must be unique.")
        else:
            step.name = name
            by_name[name] = step
        kind = kinds.get(raw.get("type")) if isinstance(raw.get("type"), str) else None
        if kind is None:
            valid = ", ".join(sorted(kinds))
            errors.add(f"{step.path}.type", f"Unknown step type {raw.get('type')!r}; the types are {valid}.")
        step.kind = kind
        for key in raw:
            if key not in STEP_KEYS:
                errors.add(f"{step.path}.{key}", f"Unknown key; a step has {', '.join(STEP_KEYS)}.")
        steps.append(step)

    normalized_steps = []
    for step in steps:
        depends_on = step.raw.get("depends_on") or []
        clean_deps: list[str] = []
        if not isinstance(depends_on, list):
            errors.add(f"{step.path}.depends_on", "depends_on must be a list of step names.")
        else:
            for dep in depends_on:
                if not isinstance(dep, str):
                    errors.add(f"{step.path}.depends_on", f"A dependency is a step name (got {dep!r}).")
                elif dep == step.name:
                    errors.add(f"{step.path}.depends_on", "A step cannot depend on itself.")
                elif dep not in by_name:
                    errors.add(f"{step.path}.depends_on", f"Unknown step '{dep}'.")
                elif dep not in clean_deps:
                    clean_deps.append(dep)
        _check_arguments(step, project=project, by_name=by_name, parameters=parameters,
                         raw_parameters=raw_parameters, errors=errors)
        description = step.raw.get("description", "")
        if not isinstance(description, str):
            errors.add(f"{step.path}.description", "A description is a string.")
        normalized = {
            "name": step.raw.get("name"), "type": step.raw.get("type"), "depends_on": clean_deps,
            "arguments": step.raw.get("arguments") or {},
            "retry": _check_retry(step.raw.get("retry"), f"{step.path}.retry", errors),
            "cache": _check_cache(step.raw.get("cache"), f"{step.path}.cache", errors),
        }
        if description:
            normalized["description"] = description
        normalized_steps.append(normalized)

    clean = {"parameters": parameters, "steps": normalized_steps}
    if not errors:
        cycle = find_cycle(dependencies(clean))
        if cycle:
            errors.add("definition.steps", "The steps form a cycle: " + " → ".join(cycle) + ".")
    if errors:
        raise ValidationError(dict(errors))
    return clean
