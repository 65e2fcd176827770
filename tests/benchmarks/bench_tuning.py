"""Tuning strategies: Bayesian search against random search, suggestion overhead against Optuna, Hyperband.

Run with ``make bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_tuning.py -o python_files='bench_*.py' -q -s``.

1. Bayesian search on Branin, Hartmann-6 and linear-learner problems: for each of 10 seeds the target is the
   best of 100 random-search trials (an independent random stream, seed + 10_000, so the target does not
   share the Bayesian run's own random start-up trials); count the Bayesian trials needed to reach it (101
   when 100 are not enough). Bar: median <= 50.
2. Overhead of one Bayesian suggestion with 1,000 finished trials against Optuna's TPESampler on the same
   8-parameter mixed space and the same trials. Bar: ours <= 1.0x Optuna.
3. Hyperband (eta 3, 1 to 27 epochs) driven by :func:`hyperband_plan` on the linear learner with digits,
   promoted configurations resuming training, against random search over the same configurations at the
   full 27 epochs. Bar: best validation accuracy within 0.5 points of random's with at most 1/3 of its epochs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import optuna
from sklearn.datasets import load_breast_cancer, load_digits

from algorithms import LinearLearner
from studio.tuning.strategies import (
    Observation,
    ParameterRange,
    RungTrial,
    SearchSpace,
    hyperband_brackets,
    hyperband_finished,
    hyperband_plan,
    suggest,
)
from tests.benchmarks.harness import record
from tests.tuning.problems import branin, hartmann6

SEEDS = range(10)
RANDOM_TRIALS = 100
MAX_BAYES_TRIALS = 100

# -- problems -------------------------------------------------------------------------------------


LINEAR_SPACE = SearchSpace([
    ParameterRange("learning_rate", "continuous", 1e-5, 1.0, scale="log"),
    ParameterRange("wd", "continuous", 1e-7, 1.0, scale="log"),
    ParameterRange("l1", "continuous", 1e-7, 1e-1, scale="log"),
    ParameterRange("mini_batch_size", "integer", 4, 256, scale="log"),
])


@cache
def split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed 70/30 train/validation split of a scikit-learn bundled dataset."""
    X, y = (load_digits if name == "digits" else load_breast_cancer)(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    cut = int(0.7 * len(y))
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


def linear_learner_loss(dataset: str) -> Callable[[dict[str, Any]], float]:
    """Validation cross-entropy of one linear model (num_models=1) after 5 epochs."""
    X, y, X_val, y_val = split(dataset)

    def objective(p: dict[str, Any]) -> float:
        model = LinearLearner(num_models=1, epochs=5, early_stopping_patience=10, **p)
        return model.fit(X, y, X_val=X_val, y_val=y_val).evaluate(X_val, y_val)["validation:loss"]

    return objective


PROBLEMS: dict[str, tuple[SearchSpace, Callable[[], Callable[[dict[str, Any]], float]], str]] = {
    "branin": (SearchSpace([ParameterRange("x", "continuous", -5, 10), ParameterRange("y", "continuous", 0, 15)]),
               lambda: branin, "Branin, 2 continuous"),
    "hartmann6": (SearchSpace([ParameterRange(f"x{i}", "continuous", 0, 1) for i in range(6)]),
                  lambda: hartmann6, "Hartmann-6, 6 continuous"),
    "linear-learner digits": (LINEAR_SPACE, lambda: linear_learner_loss("digits"),
                              "LinearLearner on digits (1257 train / 540 validation), validation:loss after 5 "
                              "epochs; learning_rate, wd, l1 (log) and mini_batch_size (integer, log)"),
    "linear-learner breast cancer": (LINEAR_SPACE, lambda: linear_learner_loss("breast_cancer"),
                                     "LinearLearner on breast cancer (398 train / 171 validation), the same "
                                     "ranges; a noisier objective, informational"),
}


# -- 1. Bayesian vs random ------------------------------------------------------------------------


def _trials_to_target(space: SearchSpace, objective: Callable[[dict[str, Any]], float],
                      seed: int) -> dict[str, float]:
    history: list[Observation] = []
    start = time.perf_counter()
    for _ in range(RANDOM_TRIALS):
        (p,) = suggest(strategy="random", space=space, goal="minimize", history=history, pending=[], n=1,
                       seed=seed + 10_000)
        history.append(Observation(p, objective(p)))
    random_s = time.perf_counter() - start
    target = min(o.value for o in history)

    history = []
    suggest_s = 0.0
    reached = MAX_BAYES_TRIALS + 1
    start = time.perf_counter()
    for k in range(MAX_BAYES_TRIALS):
        t0 = time.perf_counter()
        (p,) = suggest(strategy="bayesian", space=space, goal="minimize", history=history, pending=[], n=1,
                       seed=seed)
        suggest_s += time.perf_counter() - t0
        history.append(Observation(p, objective(p)))
        if history[-1].value <= target:
            reached = k + 1
            break
    return {"trials": reached, "target": target, "best": min(o.value for o in history),
            "bayes_s": time.perf_counter() - start, "random_s": random_s,
            "per_suggestion_s": suggest_s / len(history)}


def _bench_bayesian(name: str, informational: bool = False) -> None:
    space, make, description = PROBLEMS[name]
    objective = make()
    runs = [_trials_to_target(space, objective, seed) for seed in SEEDS]
    trials = [r["trials"] for r in runs]
    median = statistics.median(trials)
    bar = "median trials to reach random search's best of 100 <= 50"
    record(
        name=f"bayesian search, {name}",
        ours_s=statistics.median(r["bayes_s"] for r in runs),
        reference="random search, 100 trials",
        reference_s=statistics.median(r["random_s"] for r in runs),
        quality={
            "problem": description,
            "timing": "wall seconds, median over seeds: Bayesian run until it reaches the target (suggestions "
                      "+ objective) vs the 100 random trials",
            "median_trials_to_target": median,
            "trials_per_seed": trials,
            "never_reached": sum(t > MAX_BAYES_TRIALS for t in trials),
            "targets": [round(r["target"], 5) for r in runs],
            "bayes_best": [round(r["best"], 5) for r in runs],
            "mean_suggestion_s": statistics.mean(r["per_suggestion_s"] for r in runs),
        },
        bar=f"informational ({bar})" if informational else bar,
        met=median <= 50,
    )


def test_bench_bayesian_branin() -> None:
    _bench_bayesian("branin")


def test_bench_bayesian_hartmann6() -> None:
    _bench_bayesian("hartmann6")


def test_bench_bayesian_linear_learner() -> None:
    _bench_bayesian("linear-learner digits")


def test_bench_bayesian_linear_learner_noisier() -> None:
    _bench_bayesian("linear-learner breast cancer", informational=True)


# -- 2. suggestion overhead vs Optuna -------------------------------------------------------------

OVERHEAD_SPACE = SearchSpace([
    ParameterRange("learning_rate", "continuous", 1e-5, 1.0, scale="log"),
    ParameterRange("weight_decay", "continuous", 1e-6, 1e-1, scale="log"),
    ParameterRange("momentum", "continuous", 0.0, 0.99),
    ParameterRange("dropout", "continuous", 0.0, 0.5),
    ParameterRange("batch_size", "integer", 8, 512, scale="log"),
    ParameterRange("layers", "integer", 1, 6),
    ParameterRange("optimizer", "categorical", values=("adam", "sgd", "rmsprop")),
    ParameterRange("activation", "categorical", values=("relu", "tanh")),
])


def _optuna_distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for r in space.ranges:
        if r.type == "categorical":
            out[r.name] = optuna.distributions.CategoricalDistribution(r.values)
        elif r.type == "integer":
            out[r.name] = optuna.distributions.IntDistribution(int(r.min), int(r.max), log=r.scale == "log")
        else:
            out[r.name] = optuna.distributions.FloatDistribution(r.min, r.max, log=r.scale == "log")
    return out


def _synthetic_value(p: dict[str, Any], rng: np.random.Generator) -> float:
    return float(np.log10(p["learning_rate"] / 1e-2) ** 2 + (p["optimizer"] != "adam") + 0.1 * abs(p["layers"] - 3)
                 + p["dropout"] + 0.2 * rng.normal())


def test_bench_suggestion_overhead_vs_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(0)
    space = OVERHEAD_SPACE
    history = [Observation(p, _synthetic_value(p, rng)) for p in (space.sample(rng) for _ in range(1000))]
    distributions = _optuna_distributions(space)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials([optuna.trial.create_trial(params=o.params, distributions=distributions, value=o.value)
                      for o in history])

    def ours() -> dict[str, Any]:
        return suggest(strategy="bayesian", space=space, goal="minimize", history=history, pending=[], n=1,
                       seed=0)[0]

    def reference() -> tuple[optuna.trial.Trial, dict[str, Any]]:
        trial = study.ask()
        params = {}
        for name, dist in distributions.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
            else:
                params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        return trial, params

    ours_times, reference_times = [], []
    for _ in range(9):  # alternate, so a busy moment of the machine hits both
        start = time.perf_counter()
        ours()
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        trial, _ = reference()
        reference_times.append(time.perf_counter() - start)
        # Failed trials are ignored by the sampler: every ask sees exactly the 1,000 finished trials.
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    ours_s, reference_s = statistics.median(ours_times), statistics.median(reference_times)
    record(
        name="bayesian suggestion overhead, 1,000 finished trials",
        ours_s=ours_s,
        reference="Optuna 5 TPESampler (multivariate, in-memory study, ask + 8 suggests)",
        reference_s=reference_s,
        quality={
            "space": "8 parameters: 4 continuous (2 log), 2 integer (1 log), 2 categorical",
            "timing": "median of 9 alternating single suggestions",
            "ours_model": "TPE (GP is used up to 200 observations)",
            "ours_suggestion": ours(),
        },
        bar="<= 1.0x Optuna's time per suggestion",
        met=ours_s <= reference_s,
    )


# -- 3. Hyperband vs random search with full budgets ----------------------------------------------

HB_MIN, HB_MAX, HB_ETA = 1, 27, 3
HB_SPACE = SearchSpace([*LINEAR_SPACE.ranges, ParameterRange("optimizer", "categorical", values=("adam", "sgd"))])
HB_SEEDS = (0, 1, 2)
TOLERANCE = 0.005  # accuracy points / 100


class _Trainer:
    """Trains configurations on digits, resuming a configuration's model when the class supports it."""

    def __init__(self) -> None:
        self.X, self.y, self.X_val, self.y_val = split("digits")
        self.resumable = bool(getattr(LinearLearner, "resumable", False))
        self.models: dict[int, LinearLearner] = {}
        self.epochs = 0

    def train(self, config: int, params: dict[str, Any], budget: int, resume: bool) -> float:
        model = self.models.get(config) if resume and self.resumable else None
        before = model.n_epochs_ if model is not None else 0
        if model is None:
            # Patience above the budget: every trial trains its whole budget ("full budgets").
            model = LinearLearner(num_models=1, epochs=budget, early_stopping_patience=HB_MAX + 1, **params)
            model.fit(self.X, self.y, X_val=self.X_val, y_val=self.y_val)
        else:
            model.set_params(epochs=budget)
            model.fit(self.X, self.y, X_val=self.X_val, y_val=self.y_val, resume=True)
        self.epochs += model.n_epochs_ - before
        self.models[config] = model
        return float(model.evaluate(self.X_val, self.y_val)["validation:accuracy"])


def _config(seed: int, config: int) -> dict[str, Any]:
    # As the tuning service draws them: configuration k is a seeded draw of its own.
    return HB_SPACE.sample(np.random.default_rng([seed, config]))


def _hyperband(seed: int, max_configs: int) -> tuple[float, int, bool]:
    trainer = _Trainer()
    args = {"min_resource": HB_MIN, "max_resource": HB_MAX, "eta": HB_ETA, "max_configs": max_configs,
            "goal": "maximize"}
    trials: list[RungTrial] = []
    while not hyperband_finished(trials=trials, **args):
        # One worker: start the first action, run it to the end, plan again.
        action = hyperband_plan(trials=trials, **args)[0]
        value = trainer.train(action.config, _config(seed, action.config), action.budget,
                              resume=action.kind == "promote")
        trials.append(RungTrial(action.config, action.bracket, action.rung, action.budget, "completed", value))
    return max(t.value for t in trials if t.value is not None), trainer.epochs, trainer.resumable


def _random_full_budget(seed: int, n_configs: int) -> tuple[float, int]:
    trainer = _Trainer()
    best = max(trainer.train(c, _config(seed, c), HB_MAX, resume=False) for c in range(n_configs))
    return best, trainer.epochs


def test_bench_hyperband_vs_random_full_budgets() -> None:
    n_configs = sum(b["n_configs"] for b in hyperband_brackets(HB_MIN, HB_MAX, HB_ETA))  # one pass: 49
    rows = []
    start = time.perf_counter()
    for seed in HB_SEEDS:
        hb_start = time.perf_counter()
        hb_best, hb_epochs, resumed = _hyperband(seed, n_configs)
        hb_s = time.perf_counter() - hb_start
        rs_start = time.perf_counter()
        rs_best, rs_epochs = _random_full_budget(seed, n_configs)
        rows.append({"hb_best": hb_best, "hb_epochs": hb_epochs, "hb_s": hb_s, "rs_best": rs_best,
                     "rs_epochs": rs_epochs, "rs_s": time.perf_counter() - rs_start, "resumed": resumed})
    gaps = [r["rs_best"] - r["hb_best"] for r in rows]
    ratios = [r["hb_epochs"] / r["rs_epochs"] for r in rows]
    same_best = statistics.median(gaps) <= TOLERANCE
    cheap = statistics.median(ratios) <= 1 / 3
    record(
        name="hyperband vs random search, linear-learner digits",
        ours_s=statistics.median(r["hb_s"] for r in rows),
        reference=f"random search, the same {n_configs} configurations at {HB_MAX} epochs",
        reference_s=statistics.median(r["rs_s"] for r in rows),
        quality={
            "problem": "LinearLearner on digits, validation:accuracy; learning_rate, wd, l1, mini_batch_size, "
                       f"optimizer; hyperband {HB_MIN}..{HB_MAX} epochs, eta {HB_ETA}, one pass of 4 brackets",
            "promotions": "resume training (fit(resume=True))" if rows[0]["resumed"] else "retrain from scratch",
            "epochs_ratio_median": statistics.median(ratios),
            "hyperband_epochs": [r["hb_epochs"] for r in rows],
            "random_epochs": [r["rs_epochs"] for r in rows],
            "hyperband_best_accuracy": [round(r["hb_best"], 4) for r in rows],
            "random_best_accuracy": [round(r["rs_best"], 4) for r in rows],
            "tolerance": "0.5 accuracy points (median gap)",
            "seeds": list(HB_SEEDS),
            "total_s": time.perf_counter() - start,
        },
        bar="best objective within 0.5 accuracy points of random's using <= 1/3 of its epochs",
        met=same_best and cheap,
    )
