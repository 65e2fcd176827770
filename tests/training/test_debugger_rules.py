"""The debugger rules themselves (studio.training.debugger): synthetic metric series, no database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studio.training import debugger
from studio.training.debugger import RuleError, clean_rules


def series(values, start: int = 1) -> list[tuple[int, float]]:
    return [(start + i, float(v)) for i, v in enumerate(values)]


def healthy_loss(n: int = 30, seed: int = 0) -> list[float]:
    """A loss that keeps falling, with a little noise on top of the decay."""
    rng = np.random.default_rng(seed)
    return list(0.2 + 2.0 * np.exp(-np.arange(n) / 8) + rng.normal(scale=0.002, size=n))


METRICS = {"train:loss": "minimize", "validation:loss": "minimize", "train:accuracy": "maximize",
           "validation:accuracy": "maximize"}


# --- loss_not_decreasing --------------------------------------------------------------------------------


def test_it_fires_loss_not_decreasing_where_the_loss_flattens():
    values = [1.0, 0.8, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5]  # steps 1..8; flat from step 4
    finding = debugger.loss_not_decreasing(series(values), metric="train:loss", patience=3, min_delta=0.0)
    assert finding is not None and finding.step == 7  # 0.5 at step 7 is no lower than 0.5 at step 4
    assert "train:loss has not decreased in 3 steps" in finding.message


def test_it_counts_min_delta_as_the_progress_loss_not_decreasing_asks_for():
    values = [1.0, 0.99, 0.98, 0.97, 0.96]  # 0.01 per step: 0.02 over 2 steps
    assert debugger.loss_not_decreasing(series(values), metric="m", patience=2, min_delta=0.01) is None
    finding = debugger.loss_not_decreasing(series(values), metric="m", patience=2, min_delta=0.05)
    assert finding is not None and finding.step == 3
    assert "by more than 0.05" in finding.message


def test_it_does_not_fire_loss_not_decreasing_on_a_healthy_curve():
    assert debugger.loss_not_decreasing(series(healthy_loss()), metric="m", patience=5, min_delta=0.0) is None


def test_it_reads_loss_not_decreasing_the_other_way_for_a_maximized_metric():
    rising = [0.5, 0.6, 0.7, 0.8, 0.9]
    assert debugger.loss_not_decreasing(series(rising), metric="a", patience=2, min_delta=0.0,
                                        direction="maximize") is None
    finding = debugger.loss_not_decreasing(series(rising[::-1]), metric="a", patience=2, min_delta=0.0,
                                           direction="maximize")
    assert finding is not None and finding.step == 3 and "has not increased" in finding.message


# --- overfit --------------------------------------------------------------------------------------------


def test_it_fires_overfit_when_validation_worsens_while_training_improves():
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
    valid = [1.0, 0.85, 0.7, 0.72, 0.75, 0.8, 0.9]  # worse from step 4 on, while training keeps improving
    finding = debugger.overfit(series(train), series(valid), train_metric="train:loss",
                               validation_metric="validation:loss", patience=3, ratio_threshold=0.1)
    assert finding is not None and finding.step == 6
    assert "validation:loss got worse while train:loss improved for 3 step(s)" in finding.message


def test_it_needs_the_gap_over_ratio_threshold_for_overfit():
    train = [1.0, 0.9, 0.8, 0.7, 0.6]
    valid = [0.5, 0.51, 0.52, 0.53, 0.54]  # validation worsens but stays below training: not overfit yet
    assert debugger.overfit(series(train), series(valid), train_metric="t", validation_metric="v", patience=2,
                            ratio_threshold=0.1) is None


def test_it_does_not_fire_overfit_on_healthy_curves():
    train = healthy_loss(seed=1)
    valid = [v * 1.05 for v in healthy_loss(seed=2)]
    assert debugger.overfit(series(train), series(valid), train_metric="t", validation_metric="v", patience=3,
                            ratio_threshold=0.1) is None


def test_it_resets_the_overfit_count_when_the_curves_stop_diverging():
    train = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    valid = [1.0, 1.1, 1.2, 1.0, 1.1, 1.2]  # two diverging steps, a recovery, two again
    assert debugger.overfit(series(train), series(valid), train_metric="t", validation_metric="v", patience=3,
                            ratio_threshold=0.1) is None


def test_it_aligns_overfit_series_by_step():
    train = series([1.0, 0.8, 0.6, 0.4, 0.2])
    valid = [(2, 0.9), (3, 1.0), (5, 1.2)]  # validation every other step: 2 -> 3 -> 5
    finding = debugger.overfit(train, valid, train_metric="t", validation_metric="v", patience=2,
                               ratio_threshold=0.1)
    assert finding is not None and finding.step == 5


def test_it_reads_overfit_on_accuracy_the_maximizing_way():
    train = [0.6, 0.7, 0.8, 0.9, 0.95]
    valid = [0.6, 0.65, 0.6, 0.55, 0.5]
    finding = debugger.overfit(series(train), series(valid), train_metric="train:accuracy",
                               validation_metric="validation:accuracy", patience=2, ratio_threshold=0.1,
                               direction="maximize")
    assert finding is not None and finding.step == 4


# --- overtraining ---------------------------------------------------------------------------------------


def test_it_fires_overtraining_patience_steps_after_the_best_validation_value():
    valid = [1.0, 0.8, 0.7, 0.71, 0.72, 0.70, 0.75]  # best 0.7 at step 3
    finding = debugger.overtraining(series(valid), metric="validation:loss", patience=4, min_delta=0.0)
    assert finding is not None and finding.step == 7
    assert "best, 0.7 at step 3" in finding.message


def test_it_does_not_fire_overtraining_while_validation_improves():
    assert debugger.overtraining(series(healthy_loss()), metric="v", patience=5, min_delta=0.0) is None


# --- exploding_loss -------------------------------------------------------------------------------------


def test_it_fires_exploding_loss_past_factor_times_the_first_value():
    values = [1.0, 2.0, 5.0, 11.0, 1e6]
    finding = debugger.exploding_loss(series(values), metric="train:loss", factor=10.0)
    assert finding is not None and finding.step == 4
    assert "over 10 times its first value 1" in finding.message


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_it_fires_exploding_loss_on_a_non_finite_value(bad):
    finding = debugger.exploding_loss(series([1.0, 0.9, bad]), metric="train:loss", factor=10.0)
    assert finding is not None and finding.step == 3 and "training diverged" in finding.message


def test_it_does_not_fire_exploding_loss_on_a_healthy_curve():
    assert debugger.exploding_loss(series(healthy_loss()), metric="m", factor=2.0) is None


# --- vanishing_loss_change ------------------------------------------------------------------------------


def test_it_fires_vanishing_loss_change_after_patience_still_steps():
    values = [1.0, 0.5, 0.4, 0.4, 0.4, 0.4]  # still from step 3 to 4, 5, 6
    finding = debugger.vanishing_loss_change(series(values), metric="train:loss", epsilon=1e-6, patience=3)
    assert finding is not None and finding.step == 6


def test_it_does_not_fire_vanishing_loss_change_on_a_moving_curve():
    assert debugger.vanishing_loss_change(series(healthy_loss()), metric="m", epsilon=1e-7, patience=3) is None


# --- class_imbalance and stalled_training --------------------------------------------------------------


def test_it_fires_class_imbalance_over_the_threshold():
    finding = debugger.class_imbalance({"no": 950, "yes": 50}, threshold=10)
    assert finding is not None and finding.step == 0
    assert "Class 'no' has 950 rows and class 'yes' 50: a ratio of 19" in finding.message
    assert debugger.class_imbalance({"no": 500, "yes": 400}, threshold=10) is None
    assert debugger.class_imbalance({"only": 10}, threshold=10) is None


def test_it_fires_stalled_training_only_past_the_threshold():
    assert debugger.stalled_training(last_ts=1000.0, last_step=4, now=1059.0, threshold_seconds=60) is None
    finding = debugger.stalled_training(last_ts=1000.0, last_step=4, now=1060.0, threshold_seconds=60)
    assert finding is not None and finding.step == 4 and "since step 4" in finding.message


# --- validating requests ----------------------------------------------------------------------------------


def test_it_fills_defaults_and_resolves_metrics_from_the_algorithm():
    cleaned = clean_rules(["overfit", {"rule": "loss_not_decreasing", "parameters": {"patience": "2"},
                                       "action": "stop"}], metrics=METRICS, objective="validation:loss")
    assert cleaned == [
        {"rule": "overfit", "action": "none", "parameters": {
            "train_metric": "train:loss", "validation_metric": "validation:loss", "patience": 3,
            "ratio_threshold": 0.1}},
        {"rule": "loss_not_decreasing", "action": "stop", "parameters": {
            "metric": "train:loss", "patience": 2, "min_delta": 0.0}},
    ]


def test_it_takes_the_objective_family_when_an_algorithm_has_no_loss():
    metrics = {"train:msd": "minimize", "validation:msd": "minimize"}
    cleaned = clean_rules(["overtraining"], metrics=metrics, objective="validation:msd")
    assert cleaned[0]["parameters"]["metric"] == "validation:msd"


@pytest.mark.parametrize(("rules", "field", "words"), [
    ([{"rule": "overfit", "parameters": {"patience": 0}}], "debugger_rules.0.parameters.patience",
     "between 1 and"),
    ([{"rule": "overfit", "parameters": {"patience": 2.5}}], "debugger_rules.0.parameters.patience",
     "whole number"),
    (["overfit", {"rule": "exploding_loss", "parameters": {"factor": "lots"}}],
     "debugger_rules.1.parameters.factor", "must be a number"),
    ([{"rule": "overfit", "parameters": {"ratio": 1}}], "debugger_rules.0.parameters.ratio", "no parameter"),
    ([{"rule": "loss_not_decreasing", "parameters": {"metric": "train:f1"}}],
     "debugger_rules.0.parameters.metric", "not a metric of this algorithm"),
    ([{"rule": "overfit", "action": "explode"}], "debugger_rules.0.action", "none, stop, notify"),
    (["no_such_rule"], "debugger_rules.0.rule", "Unknown rule"),
    (["overfit", "overfit"], "debugger_rules.1.rule", "already in the list"),
    ([{"rule": "overfit", "params": {}}], "debugger_rules.0.params", "Unknown field"),
    ([42], "debugger_rules.0", "a name or an object"),
    ("overfit", "debugger_rules", "must be a list"),
    ([{"rule": "overfit", "parameters": {"ratio_threshold": "nan"}}],
     "debugger_rules.0.parameters.ratio_threshold", "finite"),
])
def test_it_names_the_bad_field_of_a_rules_request(rules, field, words):
    with pytest.raises(RuleError) as caught:
        clean_rules(rules, metrics=METRICS, objective="validation:loss")
    assert field in caught.value.errors, caught.value.errors
    assert words in " ".join(caught.value.errors[field])


def test_it_refuses_a_validation_rule_for_an_algorithm_without_validation_metrics():
    with pytest.raises(RuleError) as caught:
        clean_rules(["overtraining"], metrics={"train:loss": "minimize"}, objective="train:loss")
    assert "records no validation metric" in caught.value.errors["debugger_rules.0.parameters.metric"][0]


def test_it_evaluates_each_epoch_rule_by_name():
    found = debugger.evaluate_epoch_rule(
        "exploding_loss", {"metric": "train:loss", "factor": 2.0},
        {"train:loss": series([1.0, 3.0])}, {"train:loss": "minimize"})
    assert found == debugger.Finding(2, found.message)
    with pytest.raises(ValueError, match="not evaluated on epochs"):
        debugger.evaluate_epoch_rule("stalled_training", {"threshold_seconds": 5}, {}, {})
