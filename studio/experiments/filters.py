"""What a runs query asks for, parsed and checked before any SQL: filters, the text box's little language, sort.

Query parameters (the API and the page share them)::

    algorithm=knn,linear-learner   status=completed,running   tag=baseline (repeat: all of them)
    metric=validation:accuracy>=0.9 (repeat for a range)       param=learning_rate<0.1   param=optimizer=adam
    q=words of the name, and/or tokens: metric:validation:accuracy>=0.9 param:epochs>10 tag:x status:x algorithm:x
    tuning_job=<id>   sort=-metric:validation:accuracy | name | algorithm | status | created_at | started_at |
                            ended_at | duration | param:<name>

A token of ``q`` with an operator and no prefix is a metric when its name has a channel ("validation:auc"),
else a hyperparameter. Bad input raises ValidationError naming the parameter, which the API answers with 400.
"""

from __future__ import annotations

import math
import re
import shlex
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from studio.training.models import JobStatus

OPERATORS = (">=", "<=", "==", "!=", "=", ">", "<")
NUMERIC_OPERATORS = (">=", "<=", ">", "<")
# The first operator in the text splits name from value; two-character operators are tried first.
EXPRESSION = re.compile(r"^(?P<name>[^<>=!]+?)\s*(?P<op>>=|<=|==|!=|=|>|<)\s*(?P<value>.*)$")
COLUMNS = ("name", "algorithm", "status", "created_at", "started_at", "ended_at", "duration")
DEFAULT_SORT = "-created_at"
MAX_CONDITIONS = 20  # filters of one query: bounds the SQL a request can make the database run
MAX_NAME = 100
MAX_TEXT = 200


@dataclass(frozen=True)
class Condition:
    """``<name> <op> <value>`` on a final metric (``kind`` "metric") or a hyperparameter ("param")."""

    kind: str
    name: str
    op: str
    value: Any

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            value = int(value)
        return f"{self.kind}:{self.name}{self.op}{value}"


@dataclass
class RunQuery:
    algorithms: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    tuning_job: uuid.UUID | None = None
    sort: str = DEFAULT_SORT

    @property
    def is_filtered(self) -> bool:
        return bool(self.algorithms or self.statuses or self.tags or self.words or self.conditions or self.tuning_job)

    @property
    def sort_key(self) -> str:
        """The sort without its direction: ``name``, ``metric:validation:accuracy``..."""
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")


class _Errors:
    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def raise_any(self) -> None:
        if self.by_field:
            raise ValidationError(self.by_field)


def _get_list(params: Mapping[str, Any], key: str) -> list[str]:
    if hasattr(params, "getlist"):
        values = params.getlist(key)
    else:
        raw = params.get(key)
        values = [] if raw is None else raw if isinstance(raw, list | tuple) else [raw]
    return [str(v) for v in values]


def _split_commas(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_condition(kind: str, text: str) -> Condition:
    """``validation:accuracy>=0.9`` (a metric) or ``optimizer=adam`` (a hyperparameter); ValueError if bad."""
    match = EXPRESSION.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not <name><op><value> with op one of {' '.join(OPERATORS)}, "
                         f"e.g. {'validation:accuracy>=0.9' if kind == 'metric' else 'learning_rate<0.1'}.")
    name, op, raw = match.group("name").strip(), match.group("op"), match.group("value").strip()
    if op == "==":
        op = "="
    if not name or len(name) > MAX_NAME or any(c.isspace() for c in name):
        raise ValueError(f"'{name}' is not a {kind} name.")
    if not raw:
        raise ValueError(f"'{text}' has no value after {op}.")
    number = _number(raw)
    if kind == "metric" or op in NUMERIC_OPERATORS:
        if number is None:
            raise ValueError(f"'{raw}' in '{text}' is not a finite number.")
        return Condition(kind, name, op, number)
    # A hyperparameter compared with = or != may be a number, a bool or a text (a categorical choice).
    if number is not None:
        return Condition(kind, name, op, number)
    if raw.lower() in ("true", "false"):
        return Condition(kind, name, op, raw.lower() == "true")
    return Condition(kind, name, op, raw[:MAX_TEXT])


def _parse_sort(raw: str, errors: _Errors) -> str:
    raw = raw.strip() or DEFAULT_SORT
    key = raw.removeprefix("-")
    if key in COLUMNS:
        return raw
    for prefix in ("metric:", "param:"):
        name = key.removeprefix(prefix)
        if key.startswith(prefix) and name and len(name) <= MAX_NAME and not any(c.isspace() for c in name):
            return raw
    errors.add("sort", f"'{raw}' is not a sort key: use {', '.join(COLUMNS)}, metric:<name> or param:<name>, "
                       "with a leading '-' for descending.")
    return DEFAULT_SORT


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote: still search, word by word
        return text.split()


def _parse_text(text: str, query: RunQuery, errors: _Errors) -> None:
    """The search box: words of the name, or ``key:value`` / expression tokens."""
    for token in _tokens(text[:1000]):
        prefix, _, rest = token.partition(":")
        prefix = prefix.lower()
        if prefix in ("metric", "param") and rest:
            try:
                query.conditions.append(parse_condition(prefix, rest))
            except ValueError as exc:
                errors.add("q", str(exc))
        elif prefix == "tag" and rest:
            query.tags.append(rest.lower())
        elif prefix == "status" and rest:
            query.statuses.extend(_split_commas([rest]))
        elif prefix in ("algorithm", "algo") and rest:
            query.algorithms.extend(_split_commas([rest]))
        elif match := EXPRESSION.match(token):
            # No prefix: "validation:auc>0.8" names a channel, so it is a metric; "epochs>=10" a hyperparameter.
            try:
                query.conditions.append(parse_condition("metric" if ":" in match.group("name") else "param", token))
            except ValueError as exc:
                errors.add("q", str(exc))
        else:
            query.words.append(token[:MAX_TEXT])


def parse_run_query(params: Mapping[str, Any]) -> RunQuery:
    """A RunQuery from query parameters (a QueryDict or a plain mapping); ValidationError naming each bad one."""
    errors = _Errors()
    query = RunQuery()
    query.algorithms = _split_commas(_get_list(params, "algorithm"))
    query.statuses = _split_commas(_get_list(params, "status"))
    # Tags are stored trimmed and lowercase (studio.social.services), so "Prod" finds "prod".
    query.tags = [t.strip().lower() for t in _get_list(params, "tag") if t.strip()]
    for kind in ("metric", "param"):
        for text in _get_list(params, kind):
            if not text.strip():
                continue
            try:
                query.conditions.append(parse_condition(kind, text))
            except ValueError as exc:
                errors.add(kind, str(exc))
    for text in _get_list(params, "q"):
        _parse_text(text, query, errors)
    if raw := (_get_list(params, "tuning_job") or [""])[-1].strip():
        try:
            query.tuning_job = uuid.UUID(raw)
        except ValueError:
            errors.add("tuning_job", f"'{raw}' is not a tuning job id.")
    query.sort = _parse_sort((_get_list(params, "sort") or [""])[-1], errors)

    unknown = sorted(set(query.statuses) - set(JobStatus.values))
    if unknown:
        errors.add("status", f"Unknown status {', '.join(unknown)}; one of {', '.join(JobStatus.values)}.")
    total = len(query.conditions) + len(query.tags) + len(query.words)
    if total > MAX_CONDITIONS:
        errors.add("q", f"At most {MAX_CONDITIONS} filters at once ({total} given).")
    errors.raise_any()
    return query

