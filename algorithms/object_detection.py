"""Object detection: a single-shot grid detector (YOLO-v1 style) written in numpy.

A small convolutional network (im2col 3x3 convolutions, ReLU, 2x2 max pooling) turns an image
into a grid with one cell per 8x8 pixels. Each cell predicts whether an object's centre falls in
it (objectness), where in the cell the centre is, the box width and height, and the class. At
prediction time the cells' boxes are scored (objectness x class probability), filtered and
passed through per-class non-maximum suppression. Training minimizes, per image, binary
cross-entropy of the objectness of every cell plus, for the cells holding an object, squared
errors of the box coordinates and the softmax cross-entropy of the class, with Adam.

The module also provides the pieces an evaluator needs on its own: :func:`box_iou`,
:func:`non_max_suppression` and :func:`mean_average_precision` (PASCAL VOC, all-point
interpolation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from algorithms._checks import check_channel, check_saved_array, check_saved_count
from algorithms._detection_net import N_BOX, backward, forward, layer_shapes
from algorithms.base import Callback, Estimator, Hyperparameter, Metric, rng_from_state

__all__ = ["CELL", "ObjectDetection", "box_iou", "mean_average_precision", "non_max_suppression"]

CELL = 8
"""Pixels per grid cell: the network pools three times by 2."""


# -- box utilities -------------------------------------------------------------------------------


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Parameters
    ----------
    boxes_a : ndarray of shape (n, 4)
    boxes_b : ndarray of shape (m, 4)
        Boxes as ``x1, y1, x2, y2`` with ``x2 >= x1`` and ``y2 >= y1``.

    Returns
    -------
    ndarray of shape (n, m)
        IoU in [0, 1]; 0 where both boxes are empty.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : ndarray of shape (n, 4)
    scores : ndarray of shape (n,)
    iou_threshold : float
        A box is dropped when its IoU with an already kept, higher scoring box exceeds this.

    Returns
    -------
    ndarray of int
        Indices of the kept boxes, by decreasing score (ties keep the earlier box).
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        overlap = box_iou(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ AP: area under the monotone precision envelope, at every recall step."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def mean_average_precision(
    truth: Sequence[Sequence[Mapping[str, Any]]],
    detections: Sequence[Sequence[Mapping[str, Any]]],
    iou_threshold: float = 0.5,
) -> tuple[float, dict[Any, float]]:
    """PASCAL VOC mean average precision (all-point interpolation) over the classes with boxes.

    Detections of a class are sorted by score over all images; each is a true positive when it
    overlaps a not yet matched ground-truth box of its class in its image with IoU at least
    ``iou_threshold`` (the best overlapping box is the candidate), a false positive otherwise.

    Parameters
    ----------
    truth : sequence of sequences of dict
        Per image, the ground-truth boxes ``{label, x1, y1, x2, y2}``.
    detections : sequence of sequences of dict
        Per image, the detections ``{label, score, x1, y1, x2, y2}``.
    iou_threshold : float
        Overlap needed for a match (0.5 for mAP@0.5).

    Returns
    -------
    tuple
        ``(mAP, {label: AP})``; classes that only appear in detections count for nothing, and
        the mAP of data without any ground-truth box is 0.
    """
    if len(truth) != len(detections):
        raise ValueError(f"truth has {len(truth)} images but detections has {len(detections)}")
    labels = sorted({box["label"] for image in truth for box in image}, key=str)
    per_class: dict[Any, float] = {}
    for label in labels:
        gt = [np.array([_coords(b) for b in image if b["label"] == label]).reshape(-1, 4) for image in truth]
        n_gt = sum(len(g) for g in gt)
        found = [
            (float(d["score"]), i, _coords(d))
            for i, image in enumerate(detections)
            for d in image
            if d["label"] == label
        ]
        found.sort(key=lambda item: -item[0])
        used = [np.zeros(len(g), dtype=bool) for g in gt]
        hits = np.zeros(len(found))
        for rank, (_, image, coords) in enumerate(found):
            if not len(gt[image]):
                continue
            overlap = box_iou(np.array([coords]), gt[image])[0]
            best = int(np.argmax(overlap))
            if overlap[best] >= iou_threshold and not used[image][best]:
                used[image][best] = True
                hits[rank] = 1.0
        tp = np.cumsum(hits)
        recall = tp / n_gt
        precision = tp / np.arange(1, len(found) + 1)
        per_class[label] = _average_precision(recall, precision) if len(found) else 0.0
    value = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return value, per_class


def _coords(box: Mapping[str, Any]) -> list[float]:
    return [float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"])]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# -- the estimator -------------------------------------------------------------------------------


class ObjectDetection(Estimator):
    """Single-shot grid object detector (one box per 8x8 cell) with non-maximum suppression.

    Parameters
    ----------
    epochs : int
        Passes over the training images.
    mini_batch_size : int
        Images per Adam step.
    learning_rate : float
        Adam step size.
    base_filters : int
        Channels of the first convolution; the next ones have 2x, 4x and 4x as many.
    weight_decay : float
        L2 penalty on the convolution weights.
    box_loss_weight : float
        Weight of the box coordinate errors relative to the objectness and class losses.
    augment : bool
        Flip training images left-right at random (boxes follow).
    score_threshold : float
        Detections scoring below this are dropped by ``predict`` (keep it low for mAP).
    nms_iou : float
        IoU above which a lower scoring box of the same class is suppressed.
    max_detections : int
        Most detections returned per image.
    random_state : int
        Seed of the initial weights, shuffling and augmentation.

    Attributes
    ----------
    classes_ : ndarray
        Sorted box labels seen in ``fit``.
    image_shape_ : list of 3 int
        ``[height, width, channels]`` of the training images; ``predict`` needs the same.
    input_mean_, input_scale_ : ndarray of shape (channels,)
        Per-channel standardization of the pixels.
    w1_ ... w5_, b1_ ... b5_ : ndarray
        Convolution weights ``(k*k*in, out)`` and biases.
    loss_curve_ : list of float
        Mean training loss per epoch.
    n_epochs_ : int
    stopped_early_ : bool
    adam_moments_, adam_squares_ : ndarray of float32
        Adam's first and second moments of every weight and bias, flat in the order
        ``w1_, b1_, ..., w5_, b5_``: the optimizer state ``fit(resume=True)`` continues from.
        They triple the size of the saved weights.
    training_state_ : dict
        Adam steps taken, the generator's state and the trained hyperparameters (small JSON).
    """

    name: ClassVar[str] = "object-detection"
    title: ClassVar[str] = "Object Detection"
    task: ClassVar[str] = "object detection (boxes + labels)"
    input: ClassVar[str] = "image"
    target: ClassVar[str] = "required"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter("epochs", "int", 20, min=1, max=1000, help="Passes over the training images."),
        Hyperparameter("mini_batch_size", "int", 32, min=1, max=1024, scale="log", help="Images per optimizer step."),
        Hyperparameter("learning_rate", "float", 0.002, min=1e-5, max=0.1, scale="log", help="Adam step size."),
        Hyperparameter(
            "base_filters",
            "int",
            16,
            min=4,
            max=64,
            tunable=False,
            help="Channels of the first convolution; the following layers use 2x, 4x and 4x as many.",
        ),
        Hyperparameter("weight_decay", "float", 1e-4, min=0.0, max=0.1, help="L2 penalty on the convolution weights."),
        Hyperparameter(
            "box_loss_weight",
            "float",
            5.0,
            min=0.01,
            max=100.0,
            scale="log",
            help="Weight of the box position/size errors relative to the objectness and class losses.",
        ),
        Hyperparameter("augment", "bool", True, tunable=False, help="Flip training images left-right at random."),
        Hyperparameter(
            "score_threshold",
            "float",
            0.05,
            min=0.0,
            max=1.0,
            tunable=False,
            help="Detections scoring below this are not returned (keep it low when measuring mAP).",
        ),
        Hyperparameter(
            "nms_iou",
            "float",
            0.45,
            min=0.0,
            max=1.0,
            tunable=False,
            help="Non-maximum suppression: a box overlapping a better box of its class by more IoU is dropped.",
        ),
        Hyperparameter(
            "max_detections", "int", 50, min=1, max=1000, tunable=False, help="Most detections returned per image."
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False, help="Seed of weights and shuffling."
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("train:loss", "minimize"),
        Metric("validation:loss", "minimize"),
        Metric("train:map", "maximize"),
        Metric("validation:map", "maximize"),
    )
    default_objective: ClassVar[str] = "validation:map"
    budget_hyperparameter: ClassVar[str | None] = "epochs"
    resumable: ClassVar[bool] = True

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "classes_",
        "input_mean_",
        "input_scale_",
        *(f"{kind}{i}_" for i in range(1, 6) for kind in ("w", "b")),
        "adam_moments_",
        "adam_squares_",
    )
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "image_shape_",
        "loss_curve_",
        "n_epochs_",
        "stopped_early_",
        "training_state_",
    )
    _training_state: ClassVar[tuple[str, ...]] = ("adam_moments_", "adam_squares_", "training_state_")

    def __init__(
        self,
        epochs: int = 20,
        mini_batch_size: int = 32,
        learning_rate: float = 0.002,
        base_filters: int = 16,
        weight_decay: float = 1e-4,
        box_loss_weight: float = 5.0,
        augment: bool = True,
        score_threshold: float = 0.05,
        nms_iou: float = 0.45,
        max_detections: int = 50,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs,
            mini_batch_size=mini_batch_size,
            learning_rate=learning_rate,
            base_filters=base_filters,
            weight_decay=weight_decay,
            box_loss_weight=box_loss_weight,
            augment=augment,
            score_threshold=score_threshold,
            nms_iou=nms_iou,
            max_detections=max_detections,
            random_state=random_state,
        )

    @property
    def task_(self) -> str:
        """Always ``"object_detection"``."""
        return "object_detection"

    # -- input checks --------------------------------------------------------------------------

    def _images(self, X: Any, name: str, shape: Sequence[int] | None = None) -> np.ndarray:
        if X is None:
            raise ValueError(f"{name} is required")
        array = np.asarray(X)
        if array.ndim == 3:
            array = array[..., None]
        if array.ndim != 4:
            raise ValueError(f"{name} must be images of shape (n_images, height, width, channels), got {array.ndim}-D")
        if array.shape[0] == 0:
            raise ValueError(f"{name} has no images")
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold numeric pixel values, got dtype {array.dtype}")
        _, h, w, c = array.shape
        if shape is None:
            if h % CELL or w % CELL or h < CELL or w < CELL:
                raise ValueError(f"{name}: image height and width must be multiples of {CELL}, got {h}x{w}")
        elif [h, w, c] != list(shape):
            raise ValueError(
                f"{name} has images of shape {h}x{w}x{c}, but the model expects {'x'.join(map(str, shape))}"
            )
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or infinite pixel values")
        return array

    @staticmethod
    def _boxes(y: Any, name: str, n_images: int, height: int, width: int) -> list[list[dict[str, Any]]]:
        if y is None:
            raise ValueError(f"{name} is required: give a list of boxes per image")
        if isinstance(y, np.ndarray | str) or not isinstance(y, Sequence):
            raise ValueError(f"{name} must be a list with one list of boxes per image")
        if len(y) != n_images:
            raise ValueError(f"{name} has {len(y)} entries but there are {n_images} images")
        out: list[list[dict[str, Any]]] = []
        for index, image in enumerate(y):
            boxes = []
            for box in image:
                if not isinstance(box, Mapping) or not {"label", "x1", "y1", "x2", "y2"} <= set(box):
                    raise ValueError(f"{name}[{index}]: each box must be a dict with label, x1, y1, x2, y2")
                try:
                    x1, y1, x2, y2 = _coords(box)
                except (TypeError, ValueError):
                    raise ValueError(f"{name}[{index}]: box coordinates must be numbers") from None
                if not np.isfinite([x1, y1, x2, y2]).all() or x2 <= x1 or y2 <= y1:
                    raise ValueError(f"{name}[{index}]: box {x1, y1, x2, y2} needs x1 < x2 and y1 < y2")
                x1, x2 = max(x1, 0.0), min(x2, float(width))
                y1, y2 = max(y1, 0.0), min(y2, float(height))
                if x2 <= x1 or y2 <= y1:
                    raise ValueError(f"{name}[{index}]: a box lies outside the image")
                label = box["label"]
                boxes.append(
                    {
                        "label": label.item() if isinstance(label, np.generic) else label,
                        "x1": x1,
                        "y1": y1,
                        "x2": x2,
                        "y2": y2,
                    }
                )
            out.append(boxes)
        return out

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
        resume: bool = False,
    ) -> Self:
        """Train the detector.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images, uint8 or float; height and width multiples of 8 (a 3-D array is grayscale).
        y : list of lists of dict
            Per image, its boxes ``{"label", "x1", "y1", "x2", "y2"}`` in pixels (x to the right,
            y down). Images without objects have an empty list.
        X_val, y_val : optional
            Validation images and boxes, given together; adds ``validation:loss`` and
            ``validation:map`` to every epoch's metrics.
        callback : callable, optional
            ``callback(epoch, {"train:loss", ...})`` after each epoch; ``False`` stops training.
        resume : bool
            Continue the fitted (or loaded) detector's training from epoch ``n_epochs_ + 1`` up
            to ``epochs`` in total, from its current weights, Adam moments and generator state;
            the saved pixel standardization is kept. The cosine learning-rate schedule runs over
            ``epochs``, so it is recomputed for the new total: resumed epochs use the rates of
            the same epochs of a straight run with the new total (the earlier ones annealed
            faster). Images must have the model's shape, the boxes its labels, and only
            ``epochs`` may differ from the trained hyperparameters. With ``epochs`` not above
            ``n_epochs_`` no epoch runs and the model is returned unchanged (after the checks).

        Returns
        -------
        ObjectDetection
            ``self``.

        Raises
        ------
        ValueError
            On invalid data; when resuming, if the model is not fitted, lacks its training
            state (saved by an older version), or the data or hyperparameters differ.
        """
        params = self._validated_params()
        state = self._check_resumable(params) if resume else None
        images = self._images(X, "X", None if state is None else self.image_shape_)
        n, height, width, channels = images.shape
        boxes = self._boxes(y, "y", n, height, width)
        has_val = X_val is not None or y_val is not None
        if has_val:
            if X_val is None or y_val is None:
                raise ValueError("X_val and y_val must be given together")
            val_images = self._images(X_val, "X_val", (height, width, channels))
            val_boxes = self._boxes(y_val, "y_val", val_images.shape[0], height, width)
        labels = sorted({box["label"] for image in boxes for box in image}, key=str)
        if not labels:
            raise ValueError("y has no boxes: a detector needs at least one labelled object")
        kinds = {type(label) for label in labels}
        if not (kinds <= {int} or kinds <= {str}):
            raise ValueError("box labels must all be strings or all be integers")
        if state is None:
            self.classes_ = np.asarray(labels)
            self.image_shape_ = [height, width, channels]
            self.input_mean_ = images.mean(axis=(0, 1, 2)).astype(np.float32)
            scale = images.std(axis=(0, 1, 2)).astype(np.float32)
            self.input_scale_ = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
        elif labels != self.classes_.tolist():
            raise ValueError(f"cannot resume: y has the labels {labels[:10]}, the model {self.classes_[:10].tolist()}")
        train_x = self._standardize(images)
        train_t = self._targets(boxes, height, width)
        if has_val:
            val_x = self._standardize(val_images)
            val_t = self._targets(val_boxes, height, width)

        if state is None:
            rng = np.random.default_rng(params["random_state"])
            weights: list[np.ndarray] = []
            for k, c_in, c_out in layer_shapes(channels, params["base_filters"], len(labels)):
                fan_in = k * k * c_in
                weights.append((rng.standard_normal((fan_in, c_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
                weights.append(np.zeros(c_out, dtype=np.float32))
            # A low prior objectness keeps the many empty cells from dominating the first steps.
            weights[-1][0] = -4.0
            weights[-2] *= 0.1
            moments = [np.zeros_like(w) for w in weights]
            squares = [np.zeros_like(w) for w in weights]
            t = 0
            self.loss_curve_, self.n_epochs_ = [], 0
        elif self.n_epochs_ >= params["epochs"]:
            return self
        else:
            rng = rng_from_state(state["rng"])
            t = state.get("adam_t")
            check_saved_count("training_state_ adam_t", t, minimum=0)
            weights = [w.copy() for w in self._weights()]
            moments = self._unflatten("adam_moments_", weights)
            squares = self._unflatten("adam_squares_", weights)
            self.loss_curve_ = list(self.loss_curve_)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        lr, decay = params["learning_rate"], params["weight_decay"]
        batch = min(params["mini_batch_size"], n)

        self.stopped_early_ = False
        for epoch in range(self.n_epochs_ + 1, params["epochs"] + 1):
            # Cosine schedule: large steps early, fine ones at the end of the planned epochs.
            rate = lr * 0.5 * (1.0 + np.cos(np.pi * (epoch - 1) / params["epochs"]))
            order = rng.permutation(n)
            total = 0.0
            for start in range(0, n, batch):
                idx = order[start : start + batch]
                xb, tb = train_x[idx], train_t[idx]
                if params["augment"]:
                    flip = rng.random(idx.size) < 0.5
                    if flip.any():
                        xb, tb = xb.copy(), tb.copy()
                        xb[flip] = xb[flip, :, ::-1]
                        tb[flip] = tb[flip, :, ::-1]
                        # x offset within a mirrored cell is 1 - x.
                        tb[flip, :, :, 1] = np.where(tb[flip, :, :, 0] > 0, 1.0 - tb[flip, :, :, 1], 0.0)
                out, cache = forward(weights, xb, keep=True)
                loss, dout = self._loss(out, tb, params["box_loss_weight"])
                total += loss * idx.size
                grads = backward(weights, cache, dout)
                t += 1
                for i, (w, g) in enumerate(zip(weights, grads, strict=True)):
                    if decay and w.ndim == 2:
                        g = g + decay * w
                    moments[i] = beta1 * moments[i] + (1 - beta1) * g
                    squares[i] = beta2 * squares[i] + (1 - beta2) * g * g
                    m_hat = moments[i] / (1 - beta1**t)
                    v_hat = squares[i] / (1 - beta2**t)
                    w -= (rate * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)
            self._set_weights(weights)
            self.loss_curve_.append(total / n)
            self.n_epochs_ = epoch
            metrics = {"train:loss": total / n}
            if has_val:
                raw = self._raw(val_x)
                metrics["validation:loss"] = self._loss(raw, val_t, params["box_loss_weight"])[0]
                metrics["validation:map"] = mean_average_precision(val_boxes, self._decode(raw, params))[0]
            if not self._emit(callback, epoch, metrics):
                self.stopped_early_ = epoch < params["epochs"]
                break
        self.adam_moments_ = np.concatenate([m.ravel() for m in moments])
        self.adam_squares_ = np.concatenate([v.ravel() for v in squares])
        self.training_state_ = {"hyperparameters": params, "adam_t": t, "rng": rng.bit_generator.state}
        return self

    def _unflatten(self, attr: str, like: list[np.ndarray]) -> list[np.ndarray]:
        """Split a flat saved optimizer array into arrays shaped as ``like``; ValueError if sizes differ."""
        flat = check_saved_array(attr, getattr(self, attr), (sum(w.size for w in like),))
        ends = np.cumsum([w.size for w in like])
        return [flat[end - w.size : end].reshape(w.shape).astype(w.dtype) for end, w in zip(ends, like, strict=True)]

    def _set_weights(self, weights: list[np.ndarray]) -> None:
        for i in range(5):
            setattr(self, f"w{i + 1}_", weights[2 * i])
            setattr(self, f"b{i + 1}_", weights[2 * i + 1])

    def _weights(self) -> list[np.ndarray]:
        return [getattr(self, f"{kind}{i}_") for i in range(1, 6) for kind in ("w", "b")]

    def _standardize(self, images: np.ndarray) -> np.ndarray:
        return ((images - self.input_mean_) / self.input_scale_).astype(np.float32)

    def _targets(self, boxes: list[list[dict[str, Any]]], height: int, width: int) -> np.ndarray:
        """Per cell: ``[has object, x offset, y offset, log(w / cell), log(h / cell), class]``."""
        gh, gw = height // CELL, width // CELL
        target = np.zeros((len(boxes), gh, gw, 6), dtype=np.float32)
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        for n, image in enumerate(boxes):
            # Larger boxes first, so a small box sharing a cell wins it (large ones stay findable
            # from neighbouring evidence less often, but small ones have no other cell).
            for box in sorted(image, key=lambda b: -(b["x2"] - b["x1"]) * (b["y2"] - b["y1"])):
                cx, cy = (box["x1"] + box["x2"]) / 2 / CELL, (box["y1"] + box["y2"]) / 2 / CELL
                col, row = min(int(cx), gw - 1), min(int(cy), gh - 1)
                target[n, row, col] = (
                    1.0,
                    cx - col,
                    cy - row,
                    np.log((box["x2"] - box["x1"]) / CELL),
                    np.log((box["y2"] - box["y1"]) / CELL),
                    index.get(box["label"], -1),
                )
        return target

    @staticmethod
    def _loss(out: np.ndarray, target: np.ndarray, box_weight: float) -> tuple[float, np.ndarray]:
        """Mean per-image loss and its gradient with respect to the network output."""
        n = out.shape[0]
        obj = target[..., 0]
        grad = np.zeros_like(out)
        logit = out[..., 0]
        prob = _sigmoid(logit)
        # Binary cross-entropy with logits, in its overflow-safe form.
        bce = np.maximum(logit, 0) - logit * obj + np.log1p(np.exp(-np.abs(logit)))
        loss = float(bce.sum())
        grad[..., 0] = prob - obj
        pos = obj > 0
        if pos.any():
            p = out[pos]
            t = target[pos]
            offsets = _sigmoid(p[:, 1:3])
            diff_xy = offsets - t[:, 1:3]
            diff_wh = p[:, 3:5] - t[:, 3:5]
            loss += box_weight * float((diff_xy**2).sum() + (diff_wh**2).sum())
            g = np.zeros_like(p)
            g[:, 1:3] = box_weight * 2 * diff_xy * offsets * (1 - offsets)
            g[:, 3:5] = box_weight * 2 * diff_wh
            logits = p[:, N_BOX:]
            shifted = logits - logits.max(axis=1, keepdims=True)
            soft = np.exp(shifted)
            soft /= soft.sum(axis=1, keepdims=True)
            cls = t[:, 5].astype(np.intp)
            known = cls >= 0  # validation labels unseen in training have no class target
            rows = np.flatnonzero(known)
            loss -= float(np.log(soft[rows, cls[known]] + 1e-12).sum())
            soft[rows, cls[known]] -= 1.0
            soft[~known] = 0.0
            g[:, N_BOX:] = soft
            g[:, 0] = grad[pos][:, 0]
            grad[pos] = g
        return loss / n, (grad / n).astype(np.float32)

    # -- prediction ----------------------------------------------------------------------------

    def _raw(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        weights = self._weights()
        return np.concatenate([forward(weights, x[i : i + batch], keep=False)[0] for i in range(0, len(x), batch)])

    def _decode(self, raw: np.ndarray, params: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
        n, gh, gw, _ = raw.shape
        height, width = gh * CELL, gw * CELL
        objectness = _sigmoid(raw[..., 0].astype(np.float64))
        logits = raw[..., N_BOX:].astype(np.float64)
        soft = np.exp(logits - logits.max(axis=-1, keepdims=True))
        soft /= soft.sum(axis=-1, keepdims=True)
        cls = soft.argmax(axis=-1)
        score = objectness * soft.max(axis=-1)
        rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cx = (cols + _sigmoid(raw[..., 1].astype(np.float64))) * CELL
        cy = (rows + _sigmoid(raw[..., 2].astype(np.float64))) * CELL
        half_w = np.exp(np.clip(raw[..., 3].astype(np.float64), -5, 5)) * CELL / 2
        half_h = np.exp(np.clip(raw[..., 4].astype(np.float64), -5, 5)) * CELL / 2
        boxes = np.stack(
            [
                np.clip(cx - half_w, 0, width),
                np.clip(cy - half_h, 0, height),
                np.clip(cx + half_w, 0, width),
                np.clip(cy + half_h, 0, height),
            ],
            axis=-1,
        )
        labels = self.classes_.tolist()
        results: list[list[dict[str, Any]]] = []
        for i in range(n):
            keep = score[i] >= params["score_threshold"]
            s, b, c = score[i][keep], boxes[i][keep], cls[i][keep]
            found: list[tuple[float, int, np.ndarray]] = []
            for k in np.unique(c):
                members = np.flatnonzero(c == k)
                for j in non_max_suppression(b[members], s[members], params["nms_iou"]):
                    found.append((float(s[members[j]]), int(k), b[members[j]]))
            found.sort(key=lambda item: -item[0])
            results.append(
                [
                    {
                        "label": labels[k],
                        "score": sc,
                        "x1": float(bx[0]),
                        "y1": float(bx[1]),
                        "x2": float(bx[2]),
                        "y2": float(bx[3]),
                    }
                    for sc, k, bx in found[: params["max_detections"]]
                ]
            )
        return results

    def predict(self, X: Any) -> list[list[dict[str, Any]]]:
        """Detect objects.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            Images of the training shape.

        Returns
        -------
        list of lists of dict
            Per image, detections ``{"label", "score", "x1", "y1", "x2", "y2"}`` by decreasing
            score (score = objectness x class probability, in [0, 1]).
        """
        self._check_is_fitted()
        images = self._images(X, "X", self.image_shape_)
        return self._decode(self._raw(self._standardize(images)), self._validated_params())

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Loss and mAP@0.5 on images with known boxes.

        Returns
        -------
        dict
            ``{"<channel>:loss": ..., "<channel>:map": ...}``.
        """
        check_channel(channel)
        self._check_is_fitted()
        params = self._validated_params()
        images = self._images(X, "X", self.image_shape_)
        height, width, _ = self.image_shape_
        boxes = self._boxes(y, "y", images.shape[0], height, width)
        raw = self._raw(self._standardize(images))
        loss = self._loss(raw, self._targets(boxes, height, width), params["box_loss_weight"])[0]
        return {
            f"{channel}:loss": loss,
            f"{channel}:map": mean_average_precision(boxes, self._decode(raw, params))[0],
        }

    def _after_load(self) -> None:
        shape = self.image_shape_
        if not (isinstance(shape, list) and len(shape) == 3):
            raise ValueError(f"saved model has an invalid image_shape_ {shape!r}")
        for value in shape:
            check_saved_count("image_shape_", value)
        height, width, channels = shape
        if height % CELL or width % CELL:
            raise ValueError(f"saved model has image size {height}x{width}, not multiples of {CELL}")
        classes = np.asarray(self.classes_)
        if classes.ndim != 1 or classes.size == 0 or classes.dtype.kind not in "iuU":
            raise ValueError("saved model has invalid classes_")
        self.classes_ = classes
        self.input_mean_ = check_saved_array("input_mean_", self.input_mean_, (channels,)).astype(np.float32)
        self.input_scale_ = check_saved_array("input_scale_", self.input_scale_, (channels,)).astype(np.float32)
        base = np.asarray(self.w1_).shape[1] if np.asarray(self.w1_).ndim == 2 else 0
        check_saved_count("base_filters", base)
        for i, (k, c_in, c_out) in enumerate(layer_shapes(channels, base, classes.size), start=1):
            w = check_saved_array(f"w{i}_", getattr(self, f"w{i}_"), (k * k * c_in, c_out))
            b = check_saved_array(f"b{i}_", getattr(self, f"b{i}_"), (c_out,))
            setattr(self, f"w{i}_", w.astype(np.float32))
            setattr(self, f"b{i}_", b.astype(np.float32))
