"""Hyperband (Li et al., JMLR 2018): successive halving in brackets, planned statelessly from the trials.

With ``R = max_resource``, ``r = min_resource`` and ``s_max = floor(log_eta(R / r))``, bracket ``s``
(``s = s_max .. 0``) starts ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` configurations with ``R * eta**-s``
epochs each; every rung keeps the best ``floor(n_i / eta)`` (at least 1) and trains them ``eta`` times longer,
until the last rung trains at ``R``. Rungs are synchronous within a bracket: a rung's promotions are decided
once all of its trials have ended. When ``max_configs`` allows more configurations than one pass over the
brackets, the brackets repeat (``s_max .. 0`` again), as the paper's "infinite horizon" variant does, until
``max_configs`` configurations have been started.

Everything here is a pure function of the trial list, so a crashed orchestrator can resume from the database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TERMINAL = frozenset({"completed", "failed", "stopped"})
STATUSES = frozenset({"pending", "running", *TERMINAL})


@dataclass(frozen=True)
class RungTrial:
    """One training run of a configuration at one rung of a bracket.

    Attributes
    ----------
    config : int
        Index of the configuration (0, 1, 2, ... in creation order).
    bracket : int
        Global bracket index (0, 1, ...; see :func:`hyperband_brackets`).
    rung : int
        Rung within the bracket (0 = first).
    budget : int
        Epochs this trial trains up to (total, not incremental).
    status : str
        ``"pending" | "running" | "completed" | "failed" | "stopped"``.
    value : float or None
        Objective at the end of this rung, None if none.
    """

    config: int
    bracket: int
    rung: int
    budget: int
    status: str
    value: float | None


@dataclass(frozen=True)
class HyperbandAction:
    """A trial that may start now.

    Attributes
    ----------
    kind : str
        ``"new"`` (a new configuration starts at rung 0) or ``"promote"`` (a configuration continues).
    config : int
        Configuration index; new ones are numbered after every configuration in the trials.
    bracket, rung, budget : int
        Where the trial sits and the total epochs it trains up to.
    resume_from_config_rung : int or None
        For a promotion, the rung of the same configuration whose trial to resume from.
    """

    kind: str
    config: int
    bracket: int
    rung: int
    budget: int
    resume_from_config_rung: int | None


def _check(min_resource: int, max_resource: int, eta: int) -> None:
    for name, value in (("min_resource", min_resource), ("max_resource", max_resource), ("eta", eta)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if min_resource < 1:
        raise ValueError(f"min_resource must be at least 1, got {min_resource}")
    if max_resource < min_resource:
        raise ValueError(f"max_resource ({max_resource}) must be at least min_resource ({min_resource})")
    if eta < 2:
        raise ValueError(f"eta must be at least 2, got {eta}")


def _s_max(min_resource: int, max_resource: int, eta: int) -> int:
    # Integer arithmetic: floor(log(27) / log(3)) is 2 in floating point.
    s = 0
    while min_resource * eta ** (s + 1) <= max_resource:
        s += 1
    return s


def _rung_budgets(s: int, min_resource: int, max_resource: int, eta: int) -> list[int]:
    budgets = [max(min_resource, round(max_resource / eta ** (s - i))) for i in range(s + 1)]
    budgets[-1] = max_resource
    return budgets


def _layout(min_resource: int, max_resource: int, eta: int, max_configs: int | None) -> list[dict[str, Any]]:
    """Every bracket: its ``s``, nominal size, configurations it gets, and per-rung sizes and budgets."""
    _check(min_resource, max_resource, eta)
    if max_configs is not None and (isinstance(max_configs, bool) or not isinstance(max_configs, int)
                                    or max_configs < 0):
        raise ValueError(f"max_configs must be a non-negative integer, got {max_configs!r}")
    s_max = _s_max(min_resource, max_resource, eta)
    brackets: list[dict[str, Any]] = []
    remaining = max_configs
    index = 0
    while True:
        s = s_max - index % (s_max + 1)
        if max_configs is None and index > s_max:
            break
        if remaining is not None and remaining <= 0:
            break
        nominal = math.ceil((s_max + 1) / (s + 1) * eta**s)
        configs = nominal if remaining is None else min(nominal, remaining)
        if remaining is not None:
            remaining -= configs
        sizes = [configs]
        for _ in range(s):
            sizes.append(max(1, sizes[-1] // eta))
        budgets = _rung_budgets(s, min_resource, max_resource, eta)
        brackets.append({"bracket": index, "s": s, "n_configs": configs, "nominal_configs": nominal,
                         "rungs": [{"rung": i, "n_configs": n_i, "budget": r_i}
                                   for i, (n_i, r_i) in enumerate(zip(sizes, budgets, strict=True))]})
        index += 1
    return brackets


def hyperband_brackets(min_resource: int, max_resource: int, eta: int = 3, *,
                       max_configs: int | None = None) -> list[dict[str, Any]]:
    """The bracket plan, for the UI and the report.

    Parameters
    ----------
    min_resource, max_resource : int
        Smallest and largest number of epochs of a trial.
    eta : int
        Halving rate (keep ``1/eta`` of each rung).
    max_configs : int, optional
        Total configurations; None gives one pass over the brackets (``s_max .. 0``).

    Returns
    -------
    list of dict
        ``{"bracket", "s", "n_configs", "nominal_configs", "rungs": [{"rung", "n_configs", "budget"}, ...],
        "total_epochs", "total_epochs_resumed"}``: epochs when every promotion retrains from scratch,
        and when it resumes from its previous rung.

    Raises
    ------
    ValueError
        On resources below 1, ``max_resource < min_resource`` or ``eta < 2``.
    """
    brackets = _layout(min_resource, max_resource, eta, max_configs)
    for bracket in brackets:
        rungs = bracket["rungs"]
        bracket["total_epochs"] = sum(r["n_configs"] * r["budget"] for r in rungs)
        bracket["total_epochs_resumed"] = sum(
            r["n_configs"] * (r["budget"] - (rungs[i - 1]["budget"] if i else 0)) for i, r in enumerate(rungs)
        )
    return brackets


def _better(goal: str) -> Any:
    if goal not in ("maximize", "minimize"):
        raise ValueError(f"goal must be 'maximize' or 'minimize', got {goal!r}")
    sign = -1.0 if goal == "maximize" else 1.0
    return lambda trial: (sign * trial.value, trial.config)


def hyperband_plan(*, trials: Sequence[RungTrial], min_resource: int, max_resource: int, eta: int = 3,
                   max_configs: int, goal: str) -> list[HyperbandAction]:
    """Every trial that may start now, in priority order.

    Promotions come first (earliest bracket, then rung, then best value), then new configurations of the
    earliest bracket that still lacks some, then of the later brackets, so idle workers stay busy while a
    bracket waits for its rung to finish. The caller starts as many as it has slots for, in order; calling
    again with those trials added returns the same list minus what was started.

    Parameters
    ----------
    trials : sequence of RungTrial
        Every trial so far. When one (config, rung) has several trials (a retry), the last one counts.
    min_resource, max_resource, eta : int
        As in :func:`hyperband_brackets`.
    max_configs : int
        Total configurations over all brackets.
    goal : {"maximize", "minimize"}

    Returns
    -------
    list of HyperbandAction
        Empty when everything is done or waiting for running trials.

    Raises
    ------
    ValueError
        On invalid resources, goal or trial status, or a trial in a bracket or rung that does not exist.

    Notes
    -----
    Only ``"completed"`` trials with a value are promoted; failed and stopped ones end their configuration.
    A rung is decided once every configuration expected in it has a trial and all of them have ended; when
    fewer than ``floor(n_i / eta)`` are eligible, all eligible ones go on.
    """
    key = _better(goal)
    layout = _layout(min_resource, max_resource, eta, max_configs)
    # by_rung[bracket][rung][config] is the last trial of that configuration at that rung.
    by_rung: list[list[dict[int, RungTrial]]] = [[{} for _ in bracket["rungs"]] for bracket in layout]
    for trial in trials:
        if trial.status not in STATUSES:
            raise ValueError(f"unknown trial status {trial.status!r}; expected one of {sorted(STATUSES)}")
        if not 0 <= trial.bracket < len(layout) or not 0 <= trial.rung < len(layout[trial.bracket]["rungs"]):
            raise ValueError(f"trial of config {trial.config} is in bracket {trial.bracket} rung {trial.rung}, "
                             "which this plan does not have")
        by_rung[trial.bracket][trial.rung][trial.config] = trial
    next_config = max((t.config for t in trials), default=-1) + 1

    promotions: list[HyperbandAction] = []
    new_counts: list[tuple[int, int]] = []
    for bracket in layout:
        b, rungs = bracket["bracket"], bracket["rungs"]
        rung_trials = by_rung[b]
        missing = bracket["n_configs"] - len(rung_trials[0])
        if missing > 0:
            new_counts.append((b, missing))
            continue  # rung 0 is not complete until every configuration of the bracket started
        expected = set(rung_trials[0])
        for i in range(len(rungs) - 1):
            here = [rung_trials[i][c] for c in expected if c in rung_trials[i]]
            if len(here) < len(expected) or any(t.status not in TERMINAL for t in here):
                break
            eligible = sorted((t for t in here if t.status == "completed" and _finite(t.value)), key=key)
            chosen = eligible[: max(1, len(expected) // eta)]
            for t in chosen:
                if t.config not in rung_trials[i + 1]:
                    promotions.append(HyperbandAction("promote", t.config, b, i + 1, rungs[i + 1]["budget"], i))
            expected = {t.config for t in chosen}
            if not expected:
                break

    actions = list(promotions)
    for b, count in new_counts:
        budget = layout[b]["rungs"][0]["budget"]
        for _ in range(count):
            actions.append(HyperbandAction("new", next_config, b, 0, budget, None))
            next_config += 1
    return actions


def hyperband_finished(*, trials: Sequence[RungTrial], min_resource: int, max_resource: int, eta: int = 3,
                       max_configs: int, goal: str) -> bool:
    """Whether no action will ever come again: nothing to start and nothing still pending or running.

    Parameters
    ----------
    trials, min_resource, max_resource, eta, max_configs, goal
        As in :func:`hyperband_plan`.

    Returns
    -------
    bool
    """
    if any(t.status not in TERMINAL for t in trials):
        return False
    return not hyperband_plan(trials=trials, min_resource=min_resource, max_resource=max_resource, eta=eta,
                              max_configs=max_configs, goal=goal)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
