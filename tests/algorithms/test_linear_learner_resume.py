"""LinearLearner persistence: save/load round trips, checks of loaded files, and resuming training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algorithms import LinearLearner, load_model
from tests.algorithms.recorder import Recorder
from tests.algorithms.test_linear_learner import Split, dataset_split, regression_split

# -- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["regression", "breast_cancer", "breast_cancer-hinge", "iris-strings"])
def test_it_round_trips_through_save_and_load(tmp_path: Path, dataset: str) -> None:
    if dataset == "regression":
        X_train, X_test, y_train, y_test = regression_split()
    else:
        X_train, X_test, y_train, y_test = dataset_split(dataset.split("-")[0])
    if dataset.endswith("strings"):
        y_train = np.array(["setosa", "versicolor", "virginica"])[y_train]
    X_test = X_test.copy()
    X_test[0, 0] = np.nan
    loss = "hinge_loss" if dataset.endswith("hinge") else "auto"
    model = LinearLearner(epochs=3, wd=0.01, loss=loss, positive_example_weight_mult=2.0).fit(X_train, y_train)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, LinearLearner)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
    np.testing.assert_array_equal(loaded.decision_function(X_test), model.decision_function(X_test))
    if model.classes_ is not None:
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
        np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    else:
        assert loaded.classes_ is None
    for attr in ("n_epochs_", "best_epoch_", "stopped_early_", "stop_reason_", "predictor_type_", "n_features_in_"):
        assert getattr(loaded, attr) == getattr(model, attr)
    for attr in ("loss_", "threshold_", "proba_calibration_", "best_model_", "model_params_", "model_scores_"):
        assert getattr(loaded, attr) == getattr(model, attr), attr
    if dataset.startswith("breast_cancer"):
        assert loaded.threshold_ != 0.0 and loaded.class_weights_ is not None
        np.testing.assert_array_equal(loaded.class_weights_, model.class_weights_)
        final = model.evaluate(X_test[1:], y_test[1:])
        assert loaded.evaluate(X_test[1:], y_test[1:]) == final


def test_it_rejects_a_saved_model_whose_arrays_do_not_fit_together(tmp_path: Path) -> None:
    X_train, _, y_train, _ = dataset_split("wine")
    LinearLearner(epochs=1).fit(X_train, y_train).save(tmp_path)
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["coef_"] = arrays["coef_"][:, :5]
    np.savez(tmp_path / "arrays.npz", **arrays)
    with pytest.raises(ValueError, match=r"coef_ of shape \(3, 5\), expected \(3, 13\)"):
        LinearLearner.load(tmp_path)


# -- resuming from a checkpoint -----------------------------------------------------------------

RESUMABLE = {"learning_rate_decay": 0.9, "num_models": 8, "early_stopping_patience": 50}


def split_of(dataset: str) -> Split:
    return regression_split() if dataset == "regression" else dataset_split(dataset)


def assert_same_epochs(resumed: Recorder, straight: Recorder) -> None:
    assert [step for step, _ in resumed.calls] == [step for step, _ in straight.calls]
    for (_, got), (_, want) in zip(resumed.calls, straight.calls, strict=True):
        assert got.keys() == want.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()))


@pytest.mark.parametrize(("dataset", "optimizer"), [("wine", "adam"), ("breast_cancer", "sgd"), ("regression", "adam")])
def test_it_resumes_from_a_saved_model_exactly_as_one_longer_fit(tmp_path: Path, dataset: str, optimizer: str) -> None:
    X_train, X_test, y_train, y_test = split_of(dataset)
    straight_calls, resumed_calls = Recorder(), Recorder()
    settings = {**RESUMABLE, "optimizer": optimizer}
    straight = LinearLearner(epochs=6, **settings).fit(
        X_train, y_train, X_val=X_test, y_val=y_test, callback=straight_calls
    )
    LinearLearner(epochs=3, **settings).fit(X_train, y_train, X_val=X_test, y_val=y_test).save(tmp_path)
    resumed = load_model(tmp_path).set_params(epochs=6)
    resumed.fit(X_train, y_train, X_val=X_test, y_val=y_test, callback=resumed_calls, resume=True)
    straight_calls.calls = straight_calls.calls[3:]
    assert_same_epochs(resumed_calls, straight_calls)
    np.testing.assert_allclose(resumed.decision_function(X_test), straight.decision_function(X_test))
    for attr in ("n_epochs_", "best_epoch_", "best_model_", "model_scores_", "threshold_", "stop_reason_"):
        assert getattr(resumed, attr) == getattr(straight, attr), attr
    np.testing.assert_array_equal(resumed.state_weights_, straight.state_weights_)


def test_it_resumes_after_the_callback_stopped_training() -> None:
    X_train, X_test, y_train, _ = dataset_split("iris")
    straight_calls, resumed_calls = Recorder(), Recorder()
    straight = LinearLearner(epochs=5, **RESUMABLE).fit(X_train, y_train, callback=straight_calls)
    model = LinearLearner(epochs=5, **RESUMABLE).fit(X_train, y_train, callback=Recorder(stop_at=2))
    assert model.stop_reason_ == "callback"
    model.fit(X_train, y_train, callback=resumed_calls, resume=True)
    straight_calls.calls = straight_calls.calls[2:]
    assert_same_epochs(resumed_calls, straight_calls)
    assert (model.n_epochs_, model.stop_reason_, model.stopped_early_) == (5, None, False)
    np.testing.assert_allclose(model.predict_proba(X_test), straight.predict_proba(X_test))


def test_it_resumes_no_epoch_past_the_budget_or_after_early_stopping() -> None:
    X_train, X_test, y_train, _ = regression_split()
    calls = Recorder()
    done = LinearLearner(epochs=3).fit(X_train, y_train)
    before = done.decision_function(X_test)
    assert done.fit(X_train, y_train, callback=calls, resume=True) is done
    stopped = LinearLearner(epochs=200, early_stopping_patience=1, early_stopping_tolerance=0.05).fit(X_train, y_train)
    assert stopped.stop_reason_ == "early_stopping"
    n_epochs = stopped.n_epochs_
    stopped.set_params(epochs=300).fit(X_train, y_train, callback=calls, resume=True)
    assert calls.calls == [] and stopped.n_epochs_ == n_epochs
    np.testing.assert_array_equal(done.decision_function(X_test), before)


def test_it_refuses_to_resume_on_other_data_or_settings(tmp_path: Path) -> None:
    from tests.algorithms.test_base import forget_training_state

    X_train, X_test, y_train, y_test = dataset_split("wine")
    with pytest.raises(ValueError, match="not fitted; nothing to resume"):
        LinearLearner().fit(X_train, y_train, resume=True)
    model = LinearLearner(epochs=2).fit(X_train, y_train)
    with pytest.raises(ValueError, match="X has 5 features, but the model expects 13"):
        model.fit(X_train[:, :5], y_train, resume=True)
    with pytest.raises(ValueError, match=r"cannot resume: y has classes \[0, 1, 3\]"):
        model.fit(X_train, np.where(y_train == 2, 3, y_train), resume=True)
    with pytest.raises(ValueError, match="y gives predictor_type 'binary_classifier'"):
        model.fit(X_train[y_train < 2], y_train[y_train < 2], resume=True)
    with pytest.raises(ValueError, match="trained without validation data"):
        model.fit(X_train, y_train, X_val=X_test, y_val=y_test, resume=True)
    with pytest.raises(ValueError, match="cannot resume: wd differ"):
        model.set_params(wd=0.1, epochs=4).fit(X_train, y_train, resume=True)
    model.set_params(wd=0.0).save(tmp_path)
    forget_training_state(tmp_path, LinearLearner)
    old = load_model(tmp_path)
    np.testing.assert_array_equal(old.predict(X_test), model.predict(X_test))
    with pytest.raises(ValueError, match="no saved training state"):
        old.fit(X_train, y_train, resume=True)
