"""Image classification: layer gradients against finite differences, learning, persistence, input checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from algorithms import HyperparameterError, NotFittedError
from algorithms._nn import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    Layer,
    MaxPool2D,
    Network,
    ReLU,
    im2col,
    softmax_cross_entropy,
)
from algorithms.image_classification import ImageClassification
from tests.algorithms.recorder import Recorder

# -- gradient checks (float64) ----------------------------------------------------------------


def numeric_grad(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(array)
    flat, out = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out[i] = (plus - minus) / (2 * eps)
    return grad


def check_layer(layer: Layer, x: np.ndarray, seed: int = 0) -> None:
    """Compare backward() with central differences of sum(forward(x) * R), for x and every param."""
    layer.astype(np.float64)
    weights = np.random.default_rng(seed).standard_normal(layer.forward(x, True).shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x, True) * weights))

    loss()
    dx = layer.backward(weights)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    for name, param in layer.params.items():
        loss()
        layer.backward(weights)
        analytic = layer.grads[name].copy()
        np.testing.assert_allclose(analytic, numeric_grad(loss, param), rtol=1e-5, atol=1e-7, err_msg=name)


def images(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize(("kernel", "stride", "padding", "bias"), [(3, 1, 1, False), (3, 2, 1, True), (2, 2, 0, True)])
def test_it_checks_conv2d_gradients(kernel: int, stride: int, padding: int, bias: bool) -> None:
    layer = Conv2D(2, 3, kernel, stride, padding, bias, rng=np.random.default_rng(0), dtype=np.float64)
    check_layer(layer, images((2, 5, 5, 2)))


def test_it_matches_a_direct_convolution() -> None:
    x = images((2, 7, 6, 3))
    layer = Conv2D(3, 4, 3, 2, 1, True, rng=np.random.default_rng(0), dtype=np.float64)
    layer.params["b"] = np.arange(4.0)
    out = layer.forward(x, False)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    W = layer.params["W"]
    expected = np.zeros((2, 4, 3, 4))
    for i in range(4):
        for j in range(3):
            patch = padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            expected[:, i, j, :] = np.einsum("nhwc,hwcf->nf", patch, W) + layer.params["b"]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    cols, ho, wo = im2col(x, 3, 3, 2, 1)
    assert (cols.shape, ho, wo) == ((2 * 4 * 3, 27), 4, 3)


@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (6, 3)])
def test_it_checks_batchnorm_gradients(shape: tuple[int, ...]) -> None:
    layer = BatchNorm(shape[-1], dtype=np.float64)
    layer.params["gamma"] = np.linspace(0.5, 1.5, shape[-1])
    layer.params["beta"] = np.linspace(-0.2, 0.3, shape[-1])
    check_layer(layer, images(shape))


def test_it_uses_batch_stats_in_training_and_running_stats_in_eval() -> None:
    layer = BatchNorm(2, momentum=0.0, dtype=np.float64)
    x = images((50, 2)) * np.array([3.0, 0.5]) + np.array([1.0, -2.0])
    out = layer.forward(x, True)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(layer.buffers["running_mean"], x.mean(axis=0))
    np.testing.assert_allclose(layer.buffers["running_var"], x.var(axis=0, ddof=1))
    # Eval mode is the fixed affine map of the running statistics, independent of the batch.
    one = layer.forward(x[:1], False)
    np.testing.assert_allclose(one, (x[:1] - x.mean(axis=0)) / np.sqrt(x.var(axis=0, ddof=1) + 1e-5))


def test_it_checks_relu_maxpool_flatten_dense_gradients() -> None:
    # Values kept away from 0 and from ties so the piecewise-linear layers are differentiable.
    x = np.random.default_rng(3).permutation(np.arange(1, 2 * 5 * 5 * 2 + 1, dtype=np.float64)) / 7 - 3.6
    x = x.reshape(2, 5, 5, 2)
    check_layer(ReLU(), x)
    check_layer(MaxPool2D(2), x)  # 5x5 -> 2x2, the last row and column dropped
    check_layer(Flatten(), x)
    check_layer(Dense(6, 4, rng=np.random.default_rng(0), dtype=np.float64), images((3, 6)))


def test_it_checks_softmax_cross_entropy_and_a_whole_network() -> None:
    logits = images((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    _, proba, grad = softmax_cross_entropy(logits, y)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(grad, numeric_grad(lambda: softmax_cross_entropy(logits, y)[0], logits), atol=1e-8)

    rng = np.random.default_rng(0)
    kw = {"rng": rng, "dtype": np.float64}
    net = Network(
        [
            Conv2D(1, 3, 3, 1, 1, **kw),
            BatchNorm(3, dtype=np.float64),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(12, 3, **kw),
        ]
    )
    x, targets = images((4, 4, 4, 1)), np.array([0, 1, 2, 1])

    def loss() -> float:
        return softmax_cross_entropy(net.forward(x, True), targets)[0]

    assert net.backward(softmax_cross_entropy(net.forward(x, True), targets)[2]) is None  # first layer skips it
    dx = net.backward(softmax_cross_entropy(net.forward(x, True), targets)[2], input_grad=True)
    conv_grad = net.layers[0].grads["W"].copy()
    np.testing.assert_allclose(conv_grad, numeric_grad(loss, net.layers[0].params["W"]), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-4, atol=1e-8)


# -- training ---------------------------------------------------------------------------------


@cache
def bars(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 uint8 images of a horizontal bar, a vertical bar or a diagonal at random places, with noise."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 60, (n, 8, 8, 1))
    labels = np.array(["horizontal", "vertical", "diagonal"])[np.arange(n) % 3]
    for i, label in enumerate(labels):
        k = int(rng.integers(1, 7))
        if label == "horizontal":
            X[i, k, 1:7, 0] = 230
        elif label == "vertical":
            X[i, 1:7, k, 0] = 230
        else:
            X[i, np.arange(8), np.arange(8), 0] = 230
    return X.astype(np.uint8), labels


def small(**params: object) -> ImageClassification:
    defaults: dict[str, object] = {"epochs": 6, "width": 8, "mini_batch_size": 16}
    return ImageClassification(**{**defaults, **params})


@pytest.mark.parametrize("augmentation", ["none", "flip_crop"])
def test_it_learns_a_tiny_dataset_with_any_labels(augmentation: str) -> None:
    X, y = bars()
    seen: list[tuple[int, dict[str, float]]] = []
    model = small(augmentation=augmentation).fit(
        X[:180], y[:180], X_val=X[180:], y_val=y[180:], callback=lambda s, m: seen.append((s, m))
    )
    assert list(model.classes_) == ["diagonal", "horizontal", "vertical"]
    assert model.score(X[180:], y[180:]) >= 0.9  # chance is 1/3
    assert [step for step, _ in seen] == list(range(1, 7))
    assert set(seen[-1][1]) == {"train:loss", "train:accuracy", "validation:loss", "validation:accuracy"}
    assert seen[-1][1]["train:loss"] < seen[0][1]["train:loss"]
    final = model.evaluate(X[180:], y[180:])
    assert final["validation:accuracy"] == pytest.approx(seen[-1][1]["validation:accuracy"])
    assert final["validation:loss"] == pytest.approx(seen[-1][1]["validation:loss"], rel=1e-5)
    proba = model.predict_proba(X[180:])
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert model.task_ == "image_classification"


def test_it_accepts_float_images_and_reproduces_with_a_seed() -> None:
    X, y = bars()
    codes = np.unique(y, return_inverse=True)[1]
    a = small(epochs=2, lr_scheduler="step").fit(X / 255.0, codes)
    b = small(epochs=2, lr_scheduler="step").fit((X / 255.0).astype(np.float32), codes)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    c = small(epochs=2, lr_scheduler="constant", random_state=1).fit(X / 255.0, codes)
    assert not np.array_equal(a.weights_, c.weights_)
    assert a.weights_.dtype == np.float32
    # Odd, non-square RGB images: pooling drops the odd row, crops pad by 1.
    rgb = np.random.default_rng(0).random((20, 5, 7, 3))
    model = small(epochs=1, num_layers=3).fit(rgb, np.arange(20) % 2)
    assert model.predict(rgb).shape == (20,)


def test_it_saves_and_loads_a_model_that_predicts_identically(tmp_path: Path) -> None:
    X, y = bars()
    model = small(epochs=2).fit(X, y)
    model.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [layer["type"] for layer in manifest["fitted"]["architecture_"]][:4] == [
        "conv2d",
        "batchnorm",
        "relu",
        "maxpool2d",
    ]
    loaded = ImageClassification.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.get_params() == model.get_params()

    # A tampered architecture is refused at load time, not in a later prediction.
    manifest["fitted"]["architecture_"][0]["out_channels"] = 9
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"channels|values"):
        ImageClassification.load(tmp_path)


def test_it_stops_when_the_callback_says_so() -> None:
    X, y = bars()
    steps: list[int] = []

    def stop_at_two(step: int, metrics: dict[str, float]) -> bool:
        steps.append(step)
        assert set(metrics) == {"train:loss", "train:accuracy"}
        return step < 2

    model = small(epochs=5).fit(X, y, callback=stop_at_two)
    assert steps == [1, 2]
    assert (model.n_epochs_, model.stopped_early_) == (2, True)
    assert model.predict(X[:3]).shape == (3,)


# -- input checks -----------------------------------------------------------------------------


def test_it_rejects_bad_inputs_with_clear_messages() -> None:
    X, y = bars(30)
    model = small(epochs=1)
    with pytest.raises(ValueError, match="4-D"):
        model.fit(X.reshape(30, -1), y)
    with pytest.raises(ValueError, match=r"X\[\.\.\., None\]"):
        model.fit(X[..., 0], y)
    bad = X.astype(np.float64)
    bad[7, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*image 7"):
        model.fit(bad, y)
    with pytest.raises(ValueError, match="y has 29 values"):
        model.fit(X, y[:29])
    with pytest.raises(ValueError, match="single class"):
        model.fit(X, np.zeros(30))
    with pytest.raises(ValueError, match=r"not trained on.*'square'"):
        model.fit(X, y, X_val=X[:2], y_val=np.array(["square", "vertical"]))
    with pytest.raises(ValueError, match="both X_val and y_val"):
        model.fit(X, y, X_val=X)
    with pytest.raises(ValueError, match="numeric"):
        model.fit(X.astype(str), y)
    with pytest.raises(NotFittedError):
        model.predict(X)
    model.fit(X, y)
    with pytest.raises(ValueError, match=r"expects \(8, 8, 1\)"):
        model.predict(np.zeros((2, 8, 9, 1)))
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(X, y, channel="test")


def test_it_validates_hyperparameters() -> None:
    X, y = bars(30)
    with pytest.raises(HyperparameterError) as info:
        ImageClassification(augmentation="rotate", num_layers=0, learning_rate="fast").fit(X, y)
    assert set(info.value.errors) == {"augmentation", "num_layers", "learning_rate"}
    described = ImageClassification.describe()
    assert described["input"] == "image"
    assert described["default_objective"] == "validation:accuracy"


def test_it_predicts_in_chunks_like_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = bars()
    model = small(epochs=1).fit(X, y)
    whole = model.predict_proba(X)
    monkeypatch.setattr("algorithms.image_classification._PREDICT_PIXELS", 64 * 7)  # 7 images per pass
    np.testing.assert_allclose(model.predict_proba(X), whole, rtol=1e-5, atol=1e-6)


# -- resuming ---------------------------------------------------------------------------------


def fit_recorded(
    model: ImageClassification, *, stop_at: int | None = None, resume: bool = False
) -> list[tuple[int, dict[str, float]]]:
    X, y = bars()
    recorder = Recorder(stop_at)
    model.fit(X[:180], y[:180], X_val=X[180:], y_val=y[180:], callback=recorder, resume=resume)
    return recorder.calls


@pytest.mark.parametrize(("scheduler", "first", "stop"), [("constant", 3, None), ("cosine", 4, 2)])
def test_it_resumes_from_a_saved_model_exactly_when_the_schedule_allows(
    tmp_path: Path, scheduler: str, first: int, stop: int | None
) -> None:
    """Constant rates do not depend on the total; a cosine run stopped by its callback keeps its total."""
    X, _ = bars()
    settings = {"lr_scheduler": scheduler, "augmentation": "flip_crop"}
    straight = small(epochs=4, **settings)
    expected = fit_recorded(straight)
    model = small(epochs=first, **settings)
    fit_recorded(model, stop_at=stop)
    done = stop or first
    model.save(tmp_path)
    resumed = ImageClassification.load(tmp_path).set_params(epochs=4)
    calls = fit_recorded(resumed, resume=True)
    assert [step for step, _ in calls] == list(range(done + 1, 5))
    for (_, got), (_, want) in zip(calls, expected[done:], strict=True):
        np.testing.assert_allclose([got[k] for k in sorted(want)], [want[k] for k in sorted(want)])
    np.testing.assert_allclose(resumed.predict_proba(X), straight.predict_proba(X))
    np.testing.assert_array_equal(resumed.velocity_, straight.velocity_)
    assert (resumed.n_epochs_, resumed.stopped_early_) == (4, False)


def test_it_resumes_a_cosine_run_with_the_schedule_recomputed_for_the_new_total() -> None:
    X, y = bars()
    straight = small(epochs=6)
    straight.fit(X[:180], y[:180])
    model = small(epochs=3)
    first = fit_recorded(model)
    later = fit_recorded(model.set_params(epochs=6), resume=True)
    assert [step for step, _ in later] == [4, 5, 6]
    assert later[-1][1]["train:loss"] < first[-1][1]["train:loss"]
    assert later[-1][1]["validation:loss"] < first[0][1]["validation:loss"] / 10
    assert model.score(X[180:], y[180:]) >= straight.score(X[180:], y[180:]) - 0.05


def test_it_refuses_to_resume_on_other_data_and_keeps_the_model_when_resuming_fails(tmp_path: Path) -> None:
    from tests.algorithms.test_base import forget_training_state

    X, y = bars()
    with pytest.raises(NotFittedError, match="nothing to resume"):
        small().fit(X, y, resume=True)
    model = small(epochs=1).fit(X, y)
    proba, weights = model.predict_proba(X), model.weights_.copy()
    with pytest.raises(ValueError, match=r"model expects \(8, 8, 1\)"):
        model.fit(X[:, :4], y, resume=True)
    with pytest.raises(ValueError, match="cannot resume: y has the classes"):
        model.fit(X, np.where(y == "diagonal", "ring", y), resume=True)
    with pytest.raises(ValueError, match="cannot resume: width differ"):
        model.set_params(width=4).fit(X, y, resume=True)
    model.set_params(width=8, epochs=3)

    def fail_at_three(step: int, metrics: dict[str, float]) -> None:
        if step == 3:
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        model.fit(X, y, callback=fail_at_three, resume=True)
    assert model.n_epochs_ == 1
    np.testing.assert_array_equal(model.predict_proba(X), proba)
    np.testing.assert_array_equal(model.weights_, weights)
    assert model.set_params(epochs=1).fit(X, y, resume=True) is model
    model.save(tmp_path)
    forget_training_state(tmp_path, ImageClassification)
    old = ImageClassification.load(tmp_path)
    np.testing.assert_array_equal(old.predict_proba(X), proba)
    with pytest.raises(ValueError, match="no saved training state"):
        old.set_params(epochs=2).fit(X, y, resume=True)
