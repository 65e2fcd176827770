"""Search strategies: ranges and spaces, random / grid / Bayesian suggestions, median rule, Hyperband plans.

Pure numpy module, no database. References: scipy / scikit-learn for the numerical pieces, plain numpy
for the median stopping rule, the paper's table for Hyperband.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from studio.tuning import _tpe, strategies
from studio.tuning._gp import GaussianProcess, fit_gp
from studio.tuning._normal import log_expected_improvement, log_norm_mass, log_norm_sf, norm_cdf
from studio.tuning.strategies import (
    HyperbandAction,
    Observation,
    ParameterRange,
    RungTrial,
    SearchSpace,
    hyperband_brackets,
    hyperband_finished,
    hyperband_plan,
    median_stopping_rule,
    suggest,
)
from tests.tuning.problems import branin

BRANIN = SearchSpace([ParameterRange("x", "continuous", -5, 10), ParameterRange("y", "continuous", 0, 15)])


def mixed_space() -> SearchSpace:
    return SearchSpace([
        ParameterRange("lr", "continuous", 1e-4, 1.0, scale="log"),
        ParameterRange("depth", "integer", 1, 8),
        ParameterRange("batch", "integer", 8, 512, scale="log"),
        ParameterRange("opt", "categorical", values=("adam", "sgd", "rmsprop")),
        ParameterRange("flag", "categorical", values=(True, False)),
    ])


def run(strategy: str, space: SearchSpace, objective, trials: int, seed: int, goal: str = "minimize"):
    history: list[Observation] = []
    for _ in range(trials):
        params = suggest(strategy=strategy, space=space, goal=goal, history=history, pending=[], n=1, seed=seed)[0]
        history.append(Observation(params, objective(params)))
    return history


# -- ranges and spaces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "type": "continuous", "min": 0, "max": 1}, "non-empty name"),
        ({"name": "a", "type": "float", "min": 0, "max": 1}, "type must be one of"),
        ({"name": "a", "type": "continuous", "min": 0, "max": 1, "scale": "auto"}, "scale must be"),
        ({"name": "a", "type": "continuous", "min": 2, "max": 1}, "min (2.0) must be below max (1.0)"),
        ({"name": "a", "type": "continuous", "min": 1, "max": 1}, "must be below max"),
        ({"name": "a", "type": "integer", "min": 5, "max": 4}, "min (5) must not exceed max (4)"),
        ({"name": "a", "type": "integer", "min": 0.5, "max": 4}, "whole-number bounds"),
        ({"name": "a", "type": "continuous", "min": 0, "max": 1, "scale": "log"}, "log scale needs min > 0"),
        ({"name": "a", "type": "integer", "min": -1, "max": 4, "scale": "log"}, "log scale needs min > 0"),
        ({"name": "a", "type": "continuous", "max": 1}, "needs both min and max"),
        ({"name": "a", "type": "continuous", "min": 0, "max": float("inf")}, "finite numbers"),
        ({"name": "a", "type": "continuous", "min": True, "max": 3}, "finite numbers"),
        ({"name": "a", "type": "continuous", "min": 0, "max": 1, "values": (1,)}, "not values"),
        ({"name": "a", "type": "categorical", "values": ()}, "at least one value"),
        ({"name": "a", "type": "categorical"}, "at least one value"),
        ({"name": "a", "type": "categorical", "values": "abc"}, "at least one value"),
        ({"name": "a", "type": "categorical", "values": ("x", "x")}, "distinct"),
        ({"name": "a", "type": "categorical", "values": (None,)}, "str, int, float or bool"),
        ({"name": "a", "type": "categorical", "values": ("x",), "min": 0}, "not min/max"),
        ({"name": "a", "type": "categorical", "values": ("x",), "scale": "log"}, "cannot have a log scale"),
    ],
)
def test_it_rejects_invalid_ranges_with_a_clear_message(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        ParameterRange(**kwargs)
    if kwargs.get("name"):
        with pytest.raises(ValueError, match=f"parameter '{kwargs['name']}'"):
            ParameterRange(**kwargs)


def test_it_normalises_bounds_and_values() -> None:
    r = ParameterRange("n", "integer", 1.0, 4.0)
    assert (r.min, r.max) == (1, 4) and isinstance(r.min, int)
    c = ParameterRange("c", "categorical", values=["a", 1, 2.5, True])
    assert c.values == ("a", 1, 2.5, True)
    # True and 1 are distinct categories, although Python considers them equal.
    assert len(ParameterRange("b", "categorical", values=(1, True)).values) == 2


def test_it_rejects_bad_spaces() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SearchSpace([])
    with pytest.raises(ValueError, match="repeated: a"):
        SearchSpace([ParameterRange("a", "integer", 0, 1), ParameterRange("a", "integer", 0, 2)])


def test_it_samples_the_right_types_within_bounds() -> None:
    space = mixed_space()
    rng = np.random.default_rng(0)
    points = [space.sample(rng) for _ in range(2000)]
    for p in points:
        assert set(p) == set(space.names)
        assert type(p["lr"]) is float and 1e-4 <= p["lr"] <= 1.0
        assert type(p["depth"]) is int and 1 <= p["depth"] <= 8
        assert type(p["batch"]) is int and 8 <= p["batch"] <= 512
        assert p["opt"] in ("adam", "sgd", "rmsprop") and p["flag"] in (True, False)
        assert space.contains(p)
    # Each integer of a linear range is equally likely (chi-square against the uniform distribution).
    counts = np.bincount([p["depth"] for p in points], minlength=9)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3
    assert {p["opt"] for p in points} == {"adam", "sgd", "rmsprop"}


def test_it_samples_log_scales_log_uniformly() -> None:
    space = SearchSpace([ParameterRange("lr", "continuous", 1e-6, 1.0, scale="log"),
                         ParameterRange("n", "integer", 1, 10_000, scale="log")])
    rng = np.random.default_rng(1)
    samples = [space.sample(rng) for _ in range(4000)]
    lr = np.array([s["lr"] for s in samples])
    n = np.array([s["n"] for s in samples])
    # The median of a log-uniform draw is the geometric mean of its bounds: 1e-3 and 100.
    assert abs(np.log10(np.median(lr)) - (-3.0)) < 0.15
    assert abs(np.log10(np.median(n)) - 2.0) < 0.15
    # log10(lr) is uniform on [-6, 0].
    assert stats.kstest((np.log10(lr) + 6) / 6, "uniform").pvalue > 1e-3


def test_it_encodes_and_decodes_round_trip() -> None:
    space = mixed_space()
    assert space.dim == 3 + 3 + 2
    rng = np.random.default_rng(2)
    for _ in range(200):
        p = space.sample(rng)
        x = space.encode(p)
        assert x.shape == (space.dim,) and np.all((x >= 0) & (x <= 1))
        back = space.decode(x)
        assert back["depth"] == p["depth"] and back["batch"] == p["batch"]
        assert back["opt"] == p["opt"] and back["flag"] is p["flag"]
        assert math.isclose(back["lr"], p["lr"], rel_tol=1e-9)
    # Log scale: the geometric mean sits in the middle; categories are one-hot in declared order.
    x = space.encode({"lr": 1e-2, "depth": 1, "batch": 8, "opt": "sgd", "flag": False})
    assert x[0] == pytest.approx(0.5)
    assert x[1] == pytest.approx(0.5 / 8)  # integer 1 owns the first of 8 equal cells
    np.testing.assert_array_equal(x[3:], [0, 1, 0, 0, 1])
    # Decoding clips and rounds whatever vector it is given.
    decoded = space.decode(np.array([1.7, 0.99, -3.0, 0.1, 0.7, 0.2, 0.6, 0.4]))
    assert decoded == {"lr": 1.0, "depth": 8, "batch": 8, "opt": "sgd", "flag": True}
    with pytest.raises(ValueError, match="outside the search space"):
        space.encode({"lr": 2.0, "depth": 1, "batch": 8, "opt": "sgd", "flag": False})


def test_it_tells_whether_parameters_are_inside() -> None:
    space = mixed_space()
    good = {"lr": 0.01, "depth": 3, "batch": 64, "opt": "adam", "flag": True, "extra": "ignored"}
    assert space.contains(good)
    assert space.contains({**good, "depth": 3.0})  # JSON may give whole floats
    assert space.contains({**good, "lr": 1.0 + 1e-12})  # float noise at a bound
    for bad in ({"depth": 3.5}, {"depth": 9}, {"lr": 0.0}, {"lr": float("nan")}, {"lr": "0.1"},
                {"opt": "adagrad"}, {"flag": 1}, {"flag": "true"}, {"opt": ["adam"]}, {"depth": True}):
        assert not space.contains({**good, **bad}), bad
    missing = dict(good)
    del missing["batch"]
    assert not space.contains(missing)


# -- grid -----------------------------------------------------------------------------------------


def test_it_builds_the_grid_in_a_fixed_order() -> None:
    space = SearchSpace([ParameterRange("a", "integer", 1, 3), ParameterRange("b", "categorical", values=("x", "y")),
                         ParameterRange("c", "integer", 10, 11, scale="log")])
    grid = space.grid()
    assert space.grid_size() == len(grid) == 12
    expected = [dict(zip("abc", combo, strict=True)) for combo in itertools.product((1, 2, 3), ("x", "y"), (10, 11))]
    assert grid == expected
    assert all(type(p["a"]) is int for p in grid)


def test_it_refuses_grids_over_continuous_ranges() -> None:
    with pytest.raises(ValueError, match="continuous: x, y"):
        BRANIN.grid_size()
    with pytest.raises(ValueError, match="continuous"):
        BRANIN.grid()
    with pytest.raises(ValueError, match="continuous"):
        suggest(strategy="grid", space=BRANIN, goal="minimize", history=[], pending=[], n=1, seed=0)


def test_it_walks_the_grid_skipping_tried_and_pending_points_until_exhausted() -> None:
    space = SearchSpace([ParameterRange("a", "integer", 0, 2), ParameterRange("b", "categorical", values=("x", "y"))])
    grid = space.grid()
    # A warm-start trial from the middle of the grid and one outside the space.
    history = [Observation({"a": 1, "b": "y"}, 0.5), Observation({"a": 7, "b": "x"}, 0.1)]
    pending = [grid[0]]
    first = suggest(strategy="grid", space=space, goal="maximize", history=history, pending=pending, n=2, seed=0)
    assert first == [grid[1], grid[2]]
    history += [Observation(p, 0.0) for p in [grid[0], *first]]
    rest = suggest(strategy="grid", space=space, goal="maximize", history=history, pending=[], n=10, seed=0)
    assert rest == [grid[4], grid[5]]  # grid[3] == {"a": 1, "b": "y"} was tried
    history += [Observation(p, 0.0) for p in rest]
    assert suggest(strategy="grid", space=space, goal="maximize", history=history, pending=[], n=3, seed=0) == []


def test_it_sizes_huge_grids_without_building_them() -> None:
    space = SearchSpace([ParameterRange(f"p{i}", "integer", 0, 99) for i in range(6)])
    assert space.grid_size() == 100**6
    out = suggest(strategy="grid", space=space, goal="minimize", history=[], pending=[], n=2, seed=0)
    assert out == [{f"p{i}": 0 for i in range(6)}, {**{f"p{i}": 0 for i in range(5)}, "p5": 1}]


# -- random and determinism -----------------------------------------------------------------------


def test_it_draws_the_kth_random_trial_the_same_however_batched() -> None:
    space = mixed_space()
    batch = suggest(strategy="random", space=space, goal="minimize", history=[], pending=[], n=5, seed=7)
    one_by_one: list[dict] = []
    for _ in range(5):
        one_by_one += suggest(strategy="random", space=space, goal="minimize", history=[], pending=one_by_one,
                              n=1, seed=7)
    assert batch == one_by_one
    assert len({str(p) for p in batch}) == 5
    # The index counts finished and pending trials alike, and the seed matters.
    history = [Observation(p, 1.0) for p in batch[:3]]
    assert suggest(strategy="random", space=space, goal="minimize", history=history, pending=batch[3:4], n=1,
                   seed=7) == batch[4:5]
    assert suggest(strategy="random", space=space, goal="minimize", history=[], pending=[], n=5, seed=8) != batch


def test_it_is_deterministic_for_bayesian_search() -> None:
    space = mixed_space()
    rng = np.random.default_rng(3)
    history = [Observation(space.sample(rng), float(rng.normal())) for _ in range(15)]
    pending = [space.sample(rng)]
    calls = [suggest(strategy="bayesian", space=space, goal="maximize", history=history, pending=pending, n=3,
                     seed=11) for _ in range(2)]
    assert calls[0] == calls[1]
    # The startup phase is exactly random search.
    assert suggest(strategy="bayesian", space=space, goal="maximize", history=history[:4], pending=[], n=3,
                   seed=11) == suggest(strategy="random", space=space, goal="maximize", history=history[:4],
                                       pending=[], n=3, seed=11)


def test_it_validates_suggest_arguments() -> None:
    for kwargs, message in (({"strategy": "hyperband"}, "strategy must be"), ({"goal": "max"}, "goal must be"),
                            ({"n": -1}, "non-negative")):
        args = {"strategy": "random", "space": BRANIN, "goal": "minimize", "history": [], "pending": [], "n": 1,
                "seed": 0, **kwargs}
        with pytest.raises(ValueError, match=message):
            suggest(**args)
    assert suggest(strategy="bayesian", space=BRANIN, goal="minimize", history=[], pending=[], n=0, seed=0) == []


# -- Bayesian search ------------------------------------------------------------------------------


def test_it_beats_random_search_on_branin() -> None:
    trials, seeds = 30, range(5)
    best_bayes = [min(o.value for o in run("bayesian", BRANIN, branin, trials, seed)) for seed in seeds]
    best_random = [min(o.value for o in run("random", BRANIN, branin, trials, 100 + seed)) for seed in seeds]
    # Branin's minimum is 0.398; random search with 30 trials typically stops between 1 and 3.
    assert np.median(best_bayes) < 0.5
    assert np.median(best_bayes) < 0.5 * np.median(best_random)
    assert np.median(best_random) > 0.8


def test_it_maximizes_when_asked() -> None:
    history = run("bayesian", BRANIN, lambda p: -branin(p), 25, seed=0, goal="maximize")
    assert max(o.value for o in history) > -0.6


def test_it_spreads_parallel_suggestions_away_from_pending_points() -> None:
    history = run("random", BRANIN, branin, 12, seed=4)
    pending = [{"x": 3.0, "y": 2.0}]
    out = suggest(strategy="bayesian", space=BRANIN, goal="minimize", history=history, pending=pending, n=4, seed=4)
    assert len(out) == 4
    units = np.array([BRANIN.encode(p) for p in [*pending, *out]])
    distances = np.sqrt(((units[:, None] - units[None]) ** 2).sum(-1))[np.triu_indices(5, 1)]
    assert distances.min() > 0.02
    # Without the pending point the first suggestion is where the model likes it best; with it the model
    # must not propose that same point again.
    alone = suggest(strategy="bayesian", space=BRANIN, goal="minimize", history=history, pending=[], n=1, seed=4)[0]
    again = suggest(strategy="bayesian", space=BRANIN, goal="minimize", history=history, pending=[alone], n=1,
                    seed=4)[0]
    assert np.linalg.norm(BRANIN.encode(alone) - BRANIN.encode(again)) > 0.02


def test_it_honours_integers_and_categories_and_learns_from_them() -> None:
    space = mixed_space()

    def objective(p: dict) -> float:
        # The "sgd" category and a depth of 6 are clearly best; lr matters around 1e-2.
        return (2.0 * (p["opt"] != "sgd") + 0.3 * abs(p["depth"] - 6) + np.log10(p["lr"] / 1e-2) ** 2
                + 0.2 * p["flag"])

    history = run("bayesian", space, objective, 30, seed=5)
    for o in history:
        assert type(o.params["depth"]) is int and type(o.params["batch"]) is int
        assert o.params["opt"] in ("adam", "sgd", "rmsprop") and o.params["flag"] in (True, False)
    modelled = [o.params for o in history[strategies.N_STARTUP:]]
    assert sum(p["opt"] == "sgd" for p in modelled) >= 0.7 * len(modelled)
    best = min(history, key=lambda o: o.value)
    assert best.params["opt"] == "sgd" and abs(best.params["depth"] - 6) <= 1 and best.value < 0.8


def test_it_treats_failed_trials_as_bad() -> None:
    space = SearchSpace([ParameterRange("x", "continuous", 0, 1), ParameterRange("y", "continuous", 0, 1)])

    def objective(p: dict) -> float | None:
        # Fails on the right half, where the values would have kept improving towards x = 1.
        return None if p["x"] > 0.5 else (p["x"] - 0.35) ** 2 + (p["y"] - 0.3) ** 2 - 0.2 * p["x"]

    history = run("bayesian", space, objective, 30, seed=6)
    modelled = history[strategies.N_STARTUP:]
    assert sum(o.value is None for o in modelled) <= 0.3 * len(modelled)
    # The feasible optimum is (0.45, 0.3) with -0.08.
    assert min(o.value for o in history if o.value is not None) < -0.075
    # All failed: nothing to model, still a valid suggestion.
    failed = [Observation(space.sample(np.random.default_rng(i)), None) for i in range(12)]
    (out,) = suggest(strategy="bayesian", space=space, goal="minimize", history=failed, pending=[], n=1, seed=0)
    assert space.contains(out)


def test_it_never_repeats_points_of_a_small_discrete_space() -> None:
    space = SearchSpace([ParameterRange("a", "integer", 1, 3), ParameterRange("b", "categorical", values=("x", "y"))])
    history: list[Observation] = []
    seen = []
    while True:
        out = suggest(strategy="bayesian", space=space, goal="minimize", history=history, pending=[], n=2, seed=1)
        if not out:
            break
        seen += out
        history += [Observation(p, p["a"] + (p["b"] == "y")) for p in out]
    assert sorted(map(str, seen)) == sorted(map(str, space.grid()))


def test_it_ignores_history_outside_the_space() -> None:
    history = run("random", BRANIN, branin, 12, seed=2)
    noisy = [Observation({"x": 50.0, "y": 1.0}, -1e9), Observation({"z": 1}, 3.0), *history]
    out = suggest(strategy="bayesian", space=BRANIN, goal="minimize", history=noisy, pending=[], n=1, seed=2)
    assert BRANIN.contains(out[0])


def test_it_switches_to_tpe_on_long_histories(monkeypatch) -> None:
    monkeypatch.setattr(strategies, "GP_MAX_OBSERVATIONS", 15)
    space = mixed_space()

    def objective(p: dict) -> float:
        return (p["opt"] != "adam") + abs(p["depth"] - 2) * 0.2 + np.log10(p["lr"] / 1e-3) ** 2

    bayes = [min(o.value for o in run("bayesian", space, objective, 80, seed)) for seed in range(3)]
    rand = [min(o.value for o in run("random", space, objective, 80, 50 + seed)) for seed in range(3)]
    assert np.median(bayes) < np.median(rand)
    assert np.median(bayes) < 0.1


# -- numerical pieces against scipy / scikit-learn ------------------------------------------------


def test_it_computes_normal_tails_like_scipy() -> None:
    x = np.linspace(-38, 38, 1001)
    np.testing.assert_allclose(log_norm_sf(x), stats.norm.logsf(x), atol=2e-7)
    np.testing.assert_allclose(norm_cdf(x[450:550]), stats.norm.cdf(x[450:550]), atol=1e-7)
    a = np.array([-3.0, -1e-9, 0.5, 5.0, -20.0, 2.0, -12.0])
    b = np.array([-2.0, 1e-9, 0.6, 5.1, 20.0, 2.0005, -11.5])
    reference = np.log(stats.norm.cdf(b) - stats.norm.cdf(a))
    reference[-1] = np.log(stats.norm.sf(11.5) - stats.norm.sf(12.0))
    np.testing.assert_allclose(log_norm_mass(a, b), reference, rtol=1e-6)
    # log EI = log(sigma * (z Phi(z) + phi(z))), z = (best - mean) / sigma, down to far tails.
    mean, std = np.array([0.0, 1.0, 3.0, 10.0, 30.0]), np.array([1.0, 0.5, 2.0, 1.0, 1.5])
    z = (0.2 - mean) / std
    direct = np.log(std * (z * stats.norm.cdf(z) + stats.norm.pdf(z)))
    np.testing.assert_allclose(log_expected_improvement(mean[:3], std[:3], 0.2), direct[:3], rtol=1e-6)
    # In the tail, compare with numerical integration of the improvement.
    f = np.linspace(-40, 0, 800_001)
    for m, s in ((10.0, 1.0), (30.0, 1.5)):
        integrand = np.maximum(0.2 - (m + s * f), 0) * stats.norm.pdf(f)
        assert log_expected_improvement(np.array([m]), np.array([s]), 0.2)[0] == pytest.approx(
            np.log(integrand.sum() * (f[1] - f[0])), rel=1e-3)


def test_it_predicts_like_scikit_learns_gaussian_process() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((25, 3))
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2
    y = (y - y.mean()) / y.std()
    lengthscales, signal, noise = np.array([0.3, 0.8, 2.0]), 1.7, 1e-3
    ours = GaussianProcess.build(X, y, lengthscales, signal, noise)
    kernel = ConstantKernel(signal) * Matern(length_scale=lengthscales, nu=2.5) + WhiteKernel(noise)
    reference = GaussianProcessRegressor(kernel, optimizer=None, alpha=1e-8 * signal).fit(X, y)
    Xs = rng.random((40, 3))
    mean, std = ours.predict(Xs)
    ref_mean, ref_std = reference.predict(Xs, return_std=True)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-6)
    # scikit-learn's std includes the white noise; ours is the latent function's.
    np.testing.assert_allclose(std**2 + noise, ref_std**2, atol=1e-6)


def test_it_fits_gp_hyperparameters_that_find_the_relevant_dimension() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((40, 3))
    y = np.sin(6 * X[:, 0])  # only the first input matters
    gp = fit_gp(X, (y - y.mean()) / y.std(), rng)
    assert gp.lengthscales[0] < 0.5 * min(gp.lengthscales[1:])
    assert gp.noise < 1e-2
    mean, _ = gp.predict(X)
    assert np.corrcoef(mean, y)[0, 1] > 0.99


def test_it_builds_parzen_estimators_from_truncated_normals() -> None:
    rng = np.random.default_rng(2)
    U = rng.random((6, 2))
    C = rng.integers(3, size=(6, 1))
    weights = np.arange(1.0, 7.0)
    mixture = _tpe.ParzenMixture(U, C, weights, [3])
    points = rng.random((5, 2))
    cats = rng.integers(3, size=(5, 1))
    # Dimension 1 is "integer" with the cell [0.25, 0.5] for every point.
    lower, upper = np.full((5, 2), 0.25), np.full((5, 2), 0.5)
    ours = mixture.log_pdf(points, cats, lower, upper, np.array([False, True]))
    w = np.append(weights, 1.0)
    w /= w.sum()
    mus, sigmas = mixture.mus, mixture.sigmas
    probs = np.full((7, 3), 1.0 / 7)
    probs[np.arange(6), C[:, 0]] += 1.0
    probs[-1] = 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    for i in range(5):
        total = 0.0
        for k in range(7):
            a0, b0 = (0 - mus[k, 0]) / sigmas[k, 0], (1 - mus[k, 0]) / sigmas[k, 0]
            density = stats.truncnorm.pdf(points[i, 0], a0, b0, loc=mus[k, 0], scale=sigmas[k, 0])
            a1, b1 = (0 - mus[k, 1]) / sigmas[k, 1], (1 - mus[k, 1]) / sigmas[k, 1]
            cell = stats.truncnorm(a1, b1, loc=mus[k, 1], scale=sigmas[k, 1])
            total += w[k] * density * (cell.cdf(0.5) - cell.cdf(0.25)) * probs[k, cats[i, 0]]
        assert ours[i] == pytest.approx(np.log(total), rel=1e-6)
    # Bandwidths follow Optuna: farther neighbour (inner one at the ends), clipped to [1 / min(100, K + 1), 1]
    # with K kernels; the prior kernel is (0.5, 1).
    one_d = _tpe._bandwidths(np.array([[0.1], [0.2], [0.9]]), 4)
    np.testing.assert_allclose(one_d[:, 0], [0.2, 0.7, 0.7])
    one_d = _tpe._bandwidths(np.array([[0.1], [0.2], [0.9]]), 200)
    np.testing.assert_allclose(one_d[:, 0], [0.1, 0.7, 0.7])
    assert mus[-1].tolist() == [0.5, 0.5] and sigmas[-1].tolist() == [1.0, 1.0]
    samples, sampled_cats = mixture.sample(rng, 500)
    assert samples.min() >= 0 and samples.max() <= 1 and set(np.unique(sampled_cats)) <= {0, 1, 2}


def test_it_splits_good_and_bad_like_optuna() -> None:
    values = np.array([5.0, 1.0, np.inf, 3.0, 2.0, 0.5] + [10.0] * 24)
    finished = np.ones(30, dtype=bool)
    finished[-1] = False  # pending: always "above"
    below, above = _tpe.split(values, finished)
    assert below.tolist() == [1, 4, 5]  # the ceil(0.1 * 29 finished) = 3 best, in creation order
    assert sorted([*below, *above]) == list(range(30))
    assert _tpe.n_below(1000) == 25
    np.testing.assert_allclose(_tpe.default_weights(30)[:5], np.linspace(1 / 30, 1, 5))


# -- median stopping rule -------------------------------------------------------------------------


def median_reference(value, step, others, goal, min_trials, min_step):
    averages = []
    for curve in others:
        arr = np.array([(s, v) for s, v in curve if v is not None and np.isfinite(v)], dtype=float).reshape(-1, 2)
        if arr.shape[0] == 0 or arr[:, 0].max() < step or arr[:, 0].min() > step:
            continue
        averages.append(arr[arr[:, 0] <= step, 1].mean())
    if len(averages) < min_trials:
        return False, None
    median = float(np.median(averages))
    worse = value < median if goal == "maximize" else value > median
    return (step >= min_step and worse), median


def test_it_applies_the_median_stopping_rule_like_a_plain_reference() -> None:
    rng = np.random.default_rng(0)
    for case in range(300):
        others = []
        for _ in range(int(rng.integers(0, 7))):
            length = int(rng.integers(1, 10))
            steps = np.sort(rng.choice(np.arange(1, 15), size=length, replace=False))
            curve = [(int(s), float(v)) for s, v in zip(steps, rng.normal(size=length).cumsum(), strict=True)]
            if rng.random() < 0.2:
                curve.append((int(steps[-1]) + 1, float("nan")))
            others.append(curve)
        step, value = int(rng.integers(1, 12)), float(rng.normal())
        goal = "maximize" if case % 2 else "minimize"
        min_trials, min_step = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        assert median_stopping_rule(value=value, step=step, others=others, goal=goal, min_trials=min_trials,
                                    min_step=min_step) == median_reference(value, step, others, goal, min_trials,
                                                                           min_step)


def test_it_explains_the_median_rule_on_a_small_case() -> None:
    others = [[(1, 0.5), (2, 0.7), (3, 0.9)], [(1, 0.4), (2, 0.6)], [(1, 0.1), (2, 0.3)], [(1, 0.9)]]
    # At step 2 three trials reached it; running averages 0.6, 0.5, 0.2 -> median 0.5.
    assert median_stopping_rule(value=0.45, step=2, others=others, goal="maximize") == (True, 0.5)
    assert median_stopping_rule(value=0.55, step=2, others=others, goal="maximize") == (False, 0.5)
    assert median_stopping_rule(value=0.45, step=2, others=others, goal="minimize") == (False, 0.5)
    assert median_stopping_rule(value=0.45, step=3, others=others, goal="maximize") == (False, None)
    assert median_stopping_rule(value=0.1, step=2, others=others, goal="maximize", min_step=3) == (False, 0.5)
    assert median_stopping_rule(value=float("nan"), step=2, others=others, goal="maximize") == (True, 0.5)
    with pytest.raises(ValueError, match="goal"):
        median_stopping_rule(value=1.0, step=1, others=others, goal="up")


# -- Hyperband ------------------------------------------------------------------------------------


def test_it_plans_the_brackets_of_the_paper() -> None:
    # Li et al. (2018), Table 1: R = 81, eta = 3.
    table = {4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)], 3: [(34, 3), (11, 9), (3, 27), (1, 81)],
             2: [(15, 9), (5, 27), (1, 81)], 1: [(8, 27), (2, 81)], 0: [(5, 81)]}
    brackets = hyperband_brackets(1, 81, 3)
    assert [b["s"] for b in brackets] == [4, 3, 2, 1, 0]
    for b in brackets:
        assert [(r["n_configs"], r["budget"]) for r in b["rungs"]] == table[b["s"]]
    small = hyperband_brackets(1, 27, 3)
    assert [[(r["n_configs"], r["budget"]) for r in b["rungs"]] for b in small] == [
        [(27, 1), (9, 3), (3, 9), (1, 27)], [(12, 3), (4, 9), (1, 27)], [(6, 9), (2, 27)], [(4, 27)]]
    assert [b["total_epochs"] for b in small] == [108, 99, 108, 108]
    assert [b["total_epochs_resumed"] for b in small] == [81, 78, 90, 108]
    # Budgets stay integers >= min_resource, the last rung at max_resource.
    odd = hyperband_brackets(2, 100, 3)
    assert odd[0]["s"] == 3 and [r["budget"] for r in odd[0]["rungs"]] == [4, 11, 33, 100]
    # max_configs truncates, or repeats the brackets.
    assert [b["n_configs"] for b in hyperband_brackets(1, 27, 3, max_configs=30)] == [27, 3]
    assert [(b["s"], b["n_configs"]) for b in hyperband_brackets(1, 27, 3, max_configs=60)][-2:] == [(0, 4), (3, 11)]
    for bad, message in (((0, 27, 3), "min_resource"), ((5, 4, 3), "max_resource"), ((1, 27, 1), "eta")):
        with pytest.raises(ValueError, match=message):
            hyperband_brackets(*bad)


def quality(config: int) -> float:
    """A fixed, distinct objective per configuration (higher is better)."""
    return float(np.random.default_rng(config).random())


def simulate(max_configs: int, *, fail=lambda config, rung: False, slots: int = 1000, goal: str = "maximize",
             min_resource: int = 1, max_resource: int = 27, eta: int = 3):
    """Drive the plan to the end: each round starts up to ``slots`` actions, then they all finish."""
    args = {"min_resource": min_resource, "max_resource": max_resource, "eta": eta, "max_configs": max_configs,
            "goal": goal}
    trials: list[RungTrial] = []
    rounds = 0
    while not hyperband_finished(trials=trials, **args):
        actions = hyperband_plan(trials=trials, **args)
        assert actions, "not finished, yet nothing to start and nothing running"
        assert hyperband_plan(trials=trials, **args) == actions  # idempotent
        started = [RungTrial(a.config, a.bracket, a.rung, a.budget, "running", None) for a in actions[:slots]]
        # Calling again with the started trials returns the rest, unchanged.
        assert hyperband_plan(trials=trials + started, **args) == actions[slots:]
        for t in started:
            value = quality(t.config) * (1 if goal == "maximize" else -1) + 0.01 * t.budget
            status, value = ("failed", None) if fail(t.config, t.rung) else ("completed", value)
            trials.append(RungTrial(t.config, t.bracket, t.rung, t.budget, status, value))
        rounds += 1
        assert rounds < 500
    return trials


def test_it_runs_successive_halving_in_every_bracket() -> None:
    trials = simulate(49)
    configs = {t.config for t in trials}
    assert configs == set(range(49))  # one pass: 27 + 12 + 6 + 4 configurations
    for b, layout in enumerate(hyperband_brackets(1, 27, 3)):
        for rung in layout["rungs"]:
            here = [t for t in trials if t.bracket == b and t.rung == rung["rung"]]
            assert len(here) == rung["n_configs"] and {t.budget for t in here} == {rung["budget"]}
        # Each promoted set is exactly the best 1/eta of the rung below (by the fixed quality).
        for i in range(len(layout["rungs"]) - 1):
            below = [t for t in trials if t.bracket == b and t.rung == i]
            above = {t.config for t in trials if t.bracket == b and t.rung == i + 1}
            best = sorted(below, key=lambda t: -t.value)[: max(1, len(below) // 3)]
            assert above == {t.config for t in best}


def test_it_promotes_the_best_when_minimizing() -> None:
    trials = simulate(27, goal="minimize")
    finals = [t for t in trials if t.rung == 3]
    assert [t.config for t in finals] == [int(np.argmax([quality(c) for c in range(27)]))]


def test_it_never_promotes_failed_trials() -> None:
    best = sorted(range(27), key=quality, reverse=True)
    failing = set(best[:5])
    trials = simulate(27, fail=lambda config, rung: rung == 0 and config in failing)
    promoted = {t.config for t in trials if t.rung > 0}
    assert promoted and not promoted & failing
    assert {t.config for t in trials if t.rung == 1} == set(best[5:14])
    # A rung where everything failed ends the bracket instead of stalling.
    all_fail = simulate(27, fail=lambda config, rung: rung == 1)
    assert max(t.rung for t in all_fail) == 1


def test_it_respects_max_configs_and_repeats_brackets() -> None:
    trials = simulate(20)
    assert {t.config for t in trials} == set(range(20))
    assert {t.bracket for t in trials} == {0}
    assert len([t for t in trials if t.rung == 1]) == 20 // 3
    repeated = simulate(60, slots=4)
    assert {t.config for t in repeated} == set(range(60))
    assert {t.bracket for t in repeated} == {0, 1, 2, 3, 4}


def test_it_keeps_workers_busy_while_a_rung_is_running() -> None:
    args = {"min_resource": 1, "max_resource": 27, "eta": 3, "max_configs": 49, "goal": "maximize"}
    first = hyperband_plan(trials=[], **args)
    assert len(first) == 49 and all(a.kind == "new" for a in first)
    assert [a.config for a in first] == list(range(49))
    assert [a.bracket for a in first[:28]] == [0] * 27 + [1]
    # Bracket 0's rung 0 done except one running trial: no promotion yet, the next brackets' configs are offered.
    trials = [RungTrial(c, 0, 0, 1, "completed", quality(c)) for c in range(26)]
    trials.append(RungTrial(26, 0, 0, 1, "running", None))
    actions = hyperband_plan(trials=trials, **args)
    assert all(a.kind == "new" for a in actions) and actions[0] == HyperbandAction("new", 27, 1, 0, 3, None)
    # Once it completes, promotions come first, with the resume point.
    trials[-1] = RungTrial(26, 0, 0, 1, "completed", 2.0)
    actions = hyperband_plan(trials=trials, **args)
    assert actions[0] == HyperbandAction("promote", 26, 0, 1, 3, 0)
    assert [a.kind for a in actions[:9]] == ["promote"] * 9 and actions[9].kind == "new"
    assert not hyperband_finished(trials=trials, **args)


def test_it_rejects_inconsistent_trials() -> None:
    args = {"min_resource": 1, "max_resource": 9, "eta": 3, "max_configs": 10, "goal": "maximize"}
    with pytest.raises(ValueError, match="status"):
        hyperband_plan(trials=[RungTrial(0, 0, 0, 1, "done", 1.0)], **args)
    with pytest.raises(ValueError, match="bracket 7"):
        hyperband_plan(trials=[RungTrial(0, 7, 0, 1, "completed", 1.0)], **args)
    with pytest.raises(ValueError, match="goal"):
        hyperband_plan(trials=[], **{**args, "goal": "best"})
