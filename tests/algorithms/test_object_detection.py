"""Grid object detector: box utilities, VOC mAP by hand, network gradients, training, saving, checks."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from algorithms import HyperparameterError, NotFittedError
from algorithms._detection_net import backward, forward, layer_shapes
from algorithms._nn import col2im, im2col
from algorithms.object_detection import ObjectDetection, box_iou, mean_average_precision, non_max_suppression
from tests.algorithms.recorder import Recorder


@cache
def tiny_shapes(n: int = 96, size: int = 32, seed: int = 0) -> tuple[np.ndarray, list[list[dict]]]:
    """Dark noisy images with one bright square ("box") or plus sign ("plus") each."""
    rng = np.random.default_rng(seed)
    images = rng.normal(40, 10, (n, size, size, 3))
    boxes = []
    for i in range(n):
        side = int(rng.integers(8, 14))
        x, y = (int(v) for v in rng.integers(0, size - side, 2))
        label = "box" if i % 2 else "plus"
        if label == "box":
            images[i, y : y + side, x : x + side] = 220
        else:
            mid = side // 2
            images[i, y : y + side, x + mid - 1 : x + mid + 2] = 220
            images[i, y + mid - 1 : y + mid + 2, x : x + side] = 220
        boxes.append([{"label": label, "x1": x, "y1": y, "x2": x + side, "y2": y + side}])
    return np.clip(images, 0, 255).astype(np.uint8), boxes




def small(**params) -> ObjectDetection:
    return ObjectDetection(**{"epochs": 2, "base_filters": 4, "mini_batch_size": 16, **params})


# -- boxes, NMS and mAP ------------------------------------------------------------------------------


def test_it_computes_iou_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[25 / 175, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_it_suppresses_overlapping_lower_scores():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = np.array([0.8, 0.9, 0.3, 0.85])
    assert non_max_suppression(boxes, scores, 0.5).tolist() == [1, 2]
    assert non_max_suppression(boxes, scores, 0.99).tolist() == [1, 3, 0, 2]
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def box(label, x1, y1, x2, y2, score=None):
    out = {"label": label, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
    if score is not None:
        out["score"] = score
    return out


def test_it_computes_voc_all_point_average_precision_by_hand():
    truth = [[box("a", 0, 0, 10, 10)], [box("a", 0, 0, 10, 10), box("b", 20, 20, 30, 30)]]
    detections = [
        [box("a", 0, 0, 10, 10, 0.9), box("a", 0, 0, 10, 10, 0.8)],  # the second is a duplicate: FP
        [box("a", 1, 1, 10, 10, 0.7), box("b", 50, 50, 60, 60, 0.95), box("c", 0, 0, 5, 5, 0.99)],
    ]
    value, per_class = mean_average_precision(truth, detections)
    # Class a: TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3.
    assert per_class["a"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert per_class["b"] == 0.0  # its only detection misses
    assert "c" not in per_class  # no ground truth: not averaged
    assert value == pytest.approx((0.5 + 1 / 3) / 2)


def test_it_interpolates_precision_over_all_recall_points():
    truth = [[box("a", 0, 0, 10, 10), box("a", 20, 0, 30, 10), box("a", 40, 0, 50, 10)]]
    detections = [[box("a", 60, 0, 70, 10, 0.9), box("a", 0, 0, 10, 10, 0.8), box("a", 20, 0, 30, 10, 0.7)]]
    # FP, TP, TP: precision 0, 1/2, 2/3; the envelope at recall 1/3 and 2/3 is 2/3; recall 1 never reached.
    assert mean_average_precision(truth, detections)[0] == pytest.approx(2 / 3 * 2 / 3)
    assert mean_average_precision(truth, [[]])[0] == 0.0
    assert mean_average_precision([[]], [[]]) == (0.0, {})
    perfect = [[dict(b, score=1.0) for b in image] for image in truth]
    assert mean_average_precision(truth, perfect)[0] == 1.0
    with pytest.raises(ValueError, match="truth has 1 images but detections has 2"):
        mean_average_precision(truth, [[], []])


# -- network pieces ----------------------------------------------------------------------------------


def test_it_convolves_like_a_direct_sum():
    # The detector's convolutions: same padding, stride 1.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 3))
    weight = rng.standard_normal((3, 3, 3, 4))
    cols, ho, wo = im2col(x, 3, 3, 1, 1)
    assert (ho, wo) == (5, 6)
    out = (cols @ weight.reshape(27, 4)).reshape(2, 5, 6, 4)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.zeros_like(out)
    for i in range(3):
        for j in range(3):
            expected += np.einsum("nhwc,cf->nhwf", padded[:, i : i + 5, j : j + 6], weight[i, j])
    np.testing.assert_allclose(out, expected, atol=1e-12)
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    grads = rng.standard_normal((2 * 5 * 6, 27))
    assert np.sum(cols * grads) == pytest.approx(np.sum(x * col2im(grads, x.shape, 3, 3, 1, 1, 5, 6)))


def test_it_backpropagates_the_exact_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 16, 3))
    params = []
    for k, c_in, c_out in layer_shapes(3, 4, 2):
        params += [rng.standard_normal((k * k * c_in, c_out)) * 0.3, rng.standard_normal(c_out) * 0.1]
    target = np.zeros((2, 2, 2, 6))
    target[0, 1, 0] = [1, 0.3, 0.6, 0.2, -0.1, 1]
    target[1, 0, 1] = [1, 0.8, 0.1, 0.5, 0.3, 0]

    def loss(ps):
        return ObjectDetection._loss(forward(ps, x, keep=True)[0], target, 5.0)[0]

    out, stash = forward(params, x, keep=True)
    grads = backward(params, stash, ObjectDetection._loss(out, target, 5.0)[1])
    for layer, param in enumerate(params):
        for _ in range(3):
            index = tuple(int(rng.integers(0, s)) for s in param.shape)
            shifted = [p.copy() for p in params]
            shifted[layer][index] += 1e-6
            up = loss(shifted)
            shifted[layer][index] -= 2e-6
            numeric = (up - loss(shifted)) / 2e-6
            assert grads[layer][index] == pytest.approx(numeric, rel=1e-4, abs=1e-6)


# -- the estimator -----------------------------------------------------------------------------------


def test_it_learns_to_find_tiny_shapes():
    images, boxes = tiny_shapes()
    model = ObjectDetection(epochs=12, base_filters=8, mini_batch_size=16, learning_rate=0.005)
    model.fit(images[:80], boxes[:80])
    assert model.loss_curve_[-1] < model.loss_curve_[0] / 2
    assert model.evaluate(images[80:], boxes[80:])["validation:map"] > 0.5
    detections = model.predict(images[80:])
    assert len(detections) == 16
    for found in detections:
        scores = [d["score"] for d in found]
        assert scores == sorted(scores, reverse=True)
        for d in found:
            assert set(d) == {"label", "score", "x1", "y1", "x2", "y2"}
            assert d["label"] in ("box", "plus") and isinstance(d["label"], str)
            assert 0 <= d["x1"] <= d["x2"] <= 32 and 0 <= d["y1"] <= d["y2"] <= 32
            assert 0.05 <= d["score"] <= 1


def test_it_reports_metrics_per_epoch_and_stops_on_request():
    images, boxes = tiny_shapes()
    recorder = Recorder()
    small(epochs=3).fit(images[:32], boxes[:32], X_val=images[80:], y_val=boxes[80:], callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2, 3]
    for _, metrics in recorder.calls:
        assert set(metrics) == {"train:loss", "validation:loss", "validation:map"}
        assert set(metrics) <= {m.name for m in ObjectDetection.metrics}
    stopper = Recorder(stop_at=2)
    model = small(epochs=5).fit(images[:32], boxes[:32], callback=stopper)
    assert [step for step, _ in stopper.calls] == [1, 2]
    assert model.stopped_early_ and model.n_epochs_ == 2 and len(model.loss_curve_) == 2
    assert set(stopper.calls[0][1]) == {"train:loss"}
    assert len(model.predict(images[:2])) == 2


def test_it_round_trips_through_saved_files(tmp_path: Path):
    images, boxes = tiny_shapes()
    model = small(score_threshold=0.0, max_detections=5).fit(images[:32], boxes[:32])
    loaded = ObjectDetection.load(model.save(tmp_path / "model"))
    assert loaded.predict(images[80:]) == model.predict(images[80:])
    assert loaded.evaluate(images[80:], boxes[80:], channel="train") == model.evaluate(
        images[80:], boxes[80:], channel="train"
    )
    assert loaded.task_ == "object_detection"
    assert all(len(found) == 5 for found in model.predict(images[80:]))


def test_it_accepts_integer_labels_grayscale_and_images_without_objects():
    images, boxes = tiny_shapes()
    gray = images[:24, :, :, 0].astype(np.float32) / 255  # 3-D: one channel
    numbered = [[dict(b, label=1 if b["label"] == "box" else 7) for b in image] for image in boxes[:24]]
    numbered[0] = []
    model = small().fit(gray, numbered)
    assert model.classes_.tolist() == [1, 7]
    assert model.image_shape_ == [32, 32, 1]
    for found in model.predict(gray[:4]):
        assert all(isinstance(d["label"], int) for d in found)


def test_it_rejects_bad_inputs_with_clear_messages():
    images, boxes = tiny_shapes()
    with pytest.raises(ValueError, match="multiples of 8"):
        small().fit(images[:4, :30, :30], boxes[:4])
    with pytest.raises(ValueError, match="y has 3 entries but there are 4 images"):
        small().fit(images[:4], boxes[:3])
    with pytest.raises(ValueError, match="needs x1 < x2"):
        small().fit(images[:1], [[box("a", 5, 5, 5, 9)]])
    with pytest.raises(ValueError, match="outside the image"):
        small().fit(images[:1], [[box("a", 40, 40, 50, 50)]])
    with pytest.raises(ValueError, match="label, x1, y1, x2, y2"):
        small().fit(images[:1], [[{"label": "a", "x1": 0}]])
    with pytest.raises(ValueError, match="no boxes"):
        small().fit(images[:2], [[], []])
    with pytest.raises(ValueError, match="all be strings or all be integers"):
        small().fit(images[:2], [[box("a", 0, 0, 5, 5)], [box(1, 0, 0, 5, 5)]])
    bad = images[:2].astype(np.float64)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small().fit(bad, boxes[:2])
    with pytest.raises(ValueError, match="y is required"):
        small().fit(images[:2])
    with pytest.raises(ValueError, match="given together"):
        small().fit(images[:2], boxes[:2], X_val=images[:2])
    with pytest.raises(NotFittedError):
        small().predict(images[:2])
    model = small(epochs=1).fit(images[:8], boxes[:8])
    with pytest.raises(ValueError, match="model expects 32x32x3"):
        model.predict(images[:2, :16, :16])
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(images[:2], boxes[:2], channel="test")


def test_it_validates_hyperparameters():
    with pytest.raises(HyperparameterError, match=r"nms_iou must be between 0\.0 and 1\.0"):
        ObjectDetection(nms_iou=2).fit(*tiny_shapes())
    with pytest.raises(HyperparameterError, match="epochs must be an integer"):
        ObjectDetection(epochs="many").fit(*tiny_shapes())
    description = ObjectDetection.describe()
    assert description["input"] == "image" and description["default_objective"] == "validation:map"


def test_it_refuses_a_tampered_saved_model(tmp_path: Path):
    images, boxes = tiny_shapes()
    path = small(epochs=1).fit(images[:8], boxes[:8]).save(tmp_path / "model")
    with np.load(path / "arrays.npz") as npz:
        arrays = dict(npz)
    arrays["w3_"] = arrays["w3_"][:, :3]
    np.savez(path / "arrays.npz", **arrays)
    with pytest.raises(ValueError, match="w3_"):
        ObjectDetection.load(path)


# -- resuming ------------------------------------------------------------------------------------


def test_it_resumes_exactly_where_the_callback_stopped_it(tmp_path: Path):
    images, boxes = tiny_shapes()
    data = {"X": images[:48], "y": boxes[:48], "X_val": images[80:], "y_val": boxes[80:]}
    straight = Recorder()
    reference = small(epochs=4).fit(**data, callback=straight)
    small(epochs=4).fit(**data, callback=Recorder(stop_at=2)).save(tmp_path)
    resumed, calls = ObjectDetection.load(tmp_path), Recorder()
    resumed.fit(**data, callback=calls, resume=True)
    # The cosine schedule runs over the same 4 epochs, so the run continues as if never stopped.
    assert [step for step, _ in calls.calls] == [3, 4]
    for (_, got), (_, want) in zip(calls.calls, straight.calls[2:], strict=True):
        assert got.keys() == want.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()))
    np.testing.assert_allclose(resumed.loss_curve_, reference.loss_curve_)
    np.testing.assert_allclose(resumed.w5_, reference.w5_)
    assert (resumed.n_epochs_, resumed.stopped_early_) == (4, False)


def test_it_resumes_a_shorter_run_with_the_schedule_recomputed_for_the_new_total():
    images, boxes = tiny_shapes()
    straight = small(epochs=6).fit(images[:64], boxes[:64])
    model = small(epochs=3).fit(images[:64], boxes[:64])
    calls = Recorder()
    model.set_params(epochs=6).fit(images[:64], boxes[:64], callback=calls, resume=True)
    assert [step for step, _ in calls.calls] == [4, 5, 6]
    assert len(model.loss_curve_) == 6
    assert all(b < a for a, b in zip(model.loss_curve_, model.loss_curve_[1:], strict=False)), model.loss_curve_
    held_out = straight.evaluate(images[64:], boxes[64:])["validation:loss"]
    assert model.evaluate(images[64:], boxes[64:])["validation:loss"] == pytest.approx(held_out, rel=0.05)


def test_it_refuses_to_resume_on_other_images_or_labels(tmp_path: Path):
    from tests.algorithms.test_base import forget_training_state

    images, boxes = tiny_shapes()
    with pytest.raises(NotFittedError, match="nothing to resume"):
        small().fit(images[:8], boxes[:8], resume=True)
    model = small(epochs=1).fit(images[:8], boxes[:8])
    with pytest.raises(ValueError, match="model expects 32x32x3"):
        model.fit(images[:8, :16, :16], boxes[:8], resume=True)
    renamed = [[dict(b, label="ring" if b["label"] == "box" else b["label"]) for b in image] for image in boxes[:8]]
    with pytest.raises(ValueError, match=r"cannot resume: y has the labels \['plus', 'ring'\]"):
        model.fit(images[:8], renamed, resume=True)
    with pytest.raises(ValueError, match="cannot resume: learning_rate differ"):
        model.set_params(learning_rate=0.01).fit(images[:8], boxes[:8], resume=True)
    weights = model.w1_.copy()
    assert model.set_params(learning_rate=0.002).fit(images[:8], boxes[:8], resume=True) is model
    np.testing.assert_array_equal(model.w1_, weights)
    model.save(tmp_path)
    forget_training_state(tmp_path, ObjectDetection)
    old = ObjectDetection.load(tmp_path)
    assert old.predict(images[8:10]) == model.predict(images[8:10])
    with pytest.raises(ValueError, match="no saved training state"):
        old.set_params(epochs=2).fit(images[:8], boxes[:8], resume=True)
