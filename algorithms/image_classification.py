"""Image classification: a small convolutional network in numpy, in the spirit of SageMaker's built-in.

The network is ``num_layers`` blocks of 3x3 convolution (im2col) -> batch norm -> ReLU -> 2x2 max
pooling (while the image is at least 2 pixels wide), then a dense softmax head. It trains in
float32 with momentum SGD, weight decay, a learning-rate schedule and optional flip / random-crop
augmentation. Layers live in :mod:`algorithms._nn`; the saved model is the JSON architecture plus
two flat float32 vectors (weights and batch-norm running statistics).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np

from algorithms import metrics as metric_fns
from algorithms._checks import as_labels, check_channel, check_saved_array, check_saved_count
from algorithms._nn import BatchNorm, Conv2D, Dense, Flatten, Layer, MaxPool2D, Network, ReLU, softmax_cross_entropy
from algorithms.base import Callback, Estimator, Hyperparameter, Metric, rng_from_state

__all__ = ["AUGMENTATIONS", "LR_SCHEDULERS", "ImageClassification"]

AUGMENTATIONS = ("none", "flip", "crop", "flip_crop")
LR_SCHEDULERS = ("cosine", "step", "constant")
# Channels double with each block up to this many times the base width.
_MAX_WIDTH_DOUBLINGS = 3
# Pixels (images x height x width) per forward pass at prediction time: bounds the im2col
# matrices (about 9 * width floats per pixel of the first blocks), not the result.
_PREDICT_PIXELS = 2**18
_LEARNER = "image classification"


def as_images(X: Any, name: str, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``X`` as an (N, H, W, C) float32 array, or raise a ``ValueError`` a user can act on.

    uint8 (and other integer) images keep their 0-255 values; the model's per-channel
    standardization takes care of the scale.
    """
    if X is None:
        raise ValueError(f"{name} is required")
    array = np.asarray(X)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numeric pixel values, got dtype {array.dtype}")
    if array.ndim != 4:
        hint = f"; for grayscale images add a channel axis: {name}[..., None]" if array.ndim == 3 else ""
        raise ValueError(f"{name} must be 4-D (n_images, height, width, channels), got {array.ndim}-D{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no images")
    if min(array.shape[1:]) == 0:
        raise ValueError(f"{name} has empty images of shape {array.shape[1:]}")
    if image_shape is not None and tuple(array.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{name} has images of shape {tuple(array.shape[1:])}, but the model expects {tuple(image_shape)} "
            "(height, width, channels); resize them first"
        )
    array = array.astype(np.float32, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(array.sum(dtype=np.float64))
    if not finite:
        bad = ~np.isfinite(array)
        if bad.any():
            index = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
            what = "NaN" if np.isnan(array[index]).any() else "infinite values"
            raise ValueError(f"{name} contains {what} (first in image {index}); fix or drop those images first")
    return array


class ImageClassification(Estimator):
    """Convolutional image classifier trained by momentum SGD, in numpy.

    ``num_layers`` blocks of 3x3 convolution (stride 1, padding 1, no bias) -> batch norm ->
    ReLU -> 2x2 max pooling, then a dense softmax layer. Block ``i`` has
    ``width * 2**min(i, 3)`` channels; pooling is skipped once the feature map is 1 pixel wide.
    Pixels are standardized per channel with the training mean and standard deviation. Labels
    may be any values (integers, strings); they are exposed in ``classes_``.

    Parameters
    ----------
    epochs : int
        Passes over the training data.
    mini_batch_size : int
        Images per SGD step (the last, smaller batch of an epoch is kept unless it has one image).
    learning_rate : float
        Peak SGD step size.
    momentum : float
        Momentum of SGD.
    weight_decay : float
        L2 penalty on convolution and dense weights (not on batch-norm parameters or biases).
    lr_scheduler : {"cosine", "step", "constant"}
        ``"cosine"`` anneals the rate to 0 over the training steps; ``"step"`` divides it by 10
        after 50% and 75% of the epochs.
    num_layers : int
        Convolution blocks.
    width : int
        Channels of the first block.
    augmentation : {"none", "flip", "crop", "flip_crop"}
        Training-time augmentation: random horizontal flips (not for digits or text) and/or
        random crops of the image padded by ``max(1, round(min(H, W) / 8))`` pixels.
    random_state : int
        Seed of the initialization, shuffling and augmentation.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted class labels.
    image_shape_ : list of int
        ``[height, width, channels]`` of the training images.
    channel_mean_, channel_scale_ : ndarray of shape (channels,)
        Per-channel standardization of the pixels.
    architecture_ : list of dict
        Layer specifications (see :mod:`algorithms._nn`).
    weights_, buffers_ : ndarray
        Flat float32 trained parameters and batch-norm running statistics, in layer order.
    n_epochs_ : int
        Epochs run.
    stopped_early_ : bool
        Whether the callback stopped training.
    velocity_ : ndarray
        Flat float32 SGD momentum of every parameter, in the order of ``weights_``: the optimizer
        state ``fit(resume=True)`` continues from. It doubles the size of the saved weights.
    training_state_ : dict
        SGD steps taken, the generator's state and the trained hyperparameters (small JSON).
    """

    name: ClassVar[str] = "image-classification"
    title: ClassVar[str] = "Image Classification"
    task: ClassVar[str] = "image classification"
    input: ClassVar[str] = "image"
    target: ClassVar[str] = "required"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter("epochs", "int", 30, min=1, max=1000, help="Passes over the training images."),
        Hyperparameter("mini_batch_size", "int", 32, min=2, max=4096, scale="log", help="Images per SGD step."),
        Hyperparameter("learning_rate", "float", 0.05, min=1e-5, max=1.0, scale="log", help="Peak SGD step size."),
        Hyperparameter("momentum", "float", 0.9, min=0.0, max=0.999, help="Momentum of SGD (0 disables it)."),
        Hyperparameter(
            "weight_decay",
            "float",
            5e-4,
            min=0.0,
            max=0.1,
            help="L2 penalty on convolution and dense weights; larger values fight overfitting.",
        ),
        Hyperparameter(
            "lr_scheduler",
            "categorical",
            "cosine",
            choices=LR_SCHEDULERS,
            help="Learning-rate schedule: cosine annealing to 0, step (÷10 at 50% and 75% of epochs) or constant.",
        ),
        Hyperparameter(
            "num_layers",
            "int",
            2,
            min=1,
            max=6,
            help="Convolution blocks (conv 3x3, batch norm, ReLU, 2x2 max pool); more suit larger images.",
        ),
        Hyperparameter(
            "width",
            "int",
            32,
            min=4,
            max=256,
            scale="log",
            help="Channels of the first block; each further block doubles them (up to 8x).",
        ),
        Hyperparameter(
            "augmentation",
            "categorical",
            "crop",
            choices=AUGMENTATIONS,
            help="Training augmentation: random crops of padded images and/or horizontal flips "
            "(leave flips off for digits, letters and other mirror-sensitive images).",
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False, help="Seed of initialization and shuffling."
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("train:loss", "minimize"),
        Metric("train:accuracy", "maximize"),
        Metric("validation:loss", "minimize"),
        Metric("validation:accuracy", "maximize"),
    )
    default_objective: ClassVar[str] = "validation:accuracy"
    budget_hyperparameter: ClassVar[str | None] = "epochs"
    resumable: ClassVar[bool] = True

    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "classes_",
        "channel_mean_",
        "channel_scale_",
        "weights_",
        "buffers_",
        "velocity_",
    )
    _fitted_json: ClassVar[tuple[str, ...]] = (
        "image_shape_",
        "architecture_",
        "n_epochs_",
        "stopped_early_",
        "training_state_",
    )
    _training_state: ClassVar[tuple[str, ...]] = ("velocity_", "training_state_")

    def __init__(
        self,
        *,
        epochs: int = 30,
        mini_batch_size: int = 32,
        learning_rate: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_scheduler: str = "cosine",
        num_layers: int = 2,
        width: int = 32,
        augmentation: str = "crop",
        random_state: int = 0,
    ) -> None:
        self.epochs = epochs
        self.mini_batch_size = mini_batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.lr_scheduler = lr_scheduler
        self.num_layers = num_layers
        self.width = width
        self.augmentation = augmentation
        self.random_state = random_state

    @property
    def task_(self) -> str:
        """Always ``"image_classification"``."""
        return "image_classification"

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
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
            uint8 or float pixels.
        y : array-like of shape (n_images,)
            Class labels, any values.
        X_val, y_val : array-like, optional
            Validation images and labels (labels among those of ``y``).
        callback : callable, optional
            ``callback(epoch, metrics)`` after each epoch with ``train:loss``, ``train:accuracy``
            (running averages over the epoch's augmented mini-batches) and, with validation
            data, ``validation:loss`` and ``validation:accuracy``. Returning ``False`` stops.
        resume : bool
            Continue the fitted (or loaded) network's training from epoch ``n_epochs_ + 1`` up
            to ``epochs`` in total, from its current weights, batch-norm statistics, momentum,
            step counter and generator state; the saved pixel standardization is kept. With the
            constant schedule the result is exactly that of one ``fit(epochs=...)``. The cosine
            and step schedules depend on the total: they are recomputed for the new ``epochs``
            from the current step on, so the resumed epochs use the learning rates of the same
            epochs of a straight run with the new total (the earlier ones annealed faster). The
            images must have the model's shape, ``y`` its classes, and only ``epochs`` may
            differ from the trained hyperparameters. With ``epochs`` not above ``n_epochs_`` no
            epoch runs and the model is returned unchanged (after the data checks). If resumed
            training fails, the model stays as it was.

        Returns
        -------
        ImageClassification
            ``self``.

        Raises
        ------
        ValueError
            On invalid data or divergence; when resuming, if the model is not fitted, lacks its
            training state (saved by an older version), or the data or hyperparameters differ.
        """
        params = self._validated_params()
        state = self._check_resumable(params) if resume else None
        images = as_images(X, "X", None if state is None else tuple(self.image_shape_))
        labels = as_labels(y, "y", images.shape[0], learner=_LEARNER)
        classes, targets = np.unique(labels, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"y has a single class ({classes[0]!r}); image classification needs at least 2")
        if state is not None and (
            (classes.dtype.kind in "US") != (self.classes_.dtype.kind in "US")
            or not np.array_equal(classes, self.classes_)
        ):
            raise ValueError(
                f"cannot resume: y has the classes {classes[:10].tolist()}, the model {self.classes_[:10].tolist()}"
            )
        val = None
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValueError("give both X_val and y_val, or neither")
            val_images = as_images(X_val, "X_val", images.shape[1:])
            val_labels = as_labels(y_val, "y_val", val_images.shape[0], learner=_LEARNER)
            val = (val_images, self._encode(classes, val_labels, "y_val"))

        h, w, c = images.shape[1:]
        if state is None:
            # A failed refit must not leave the previous model's arrays next to a new network.
            for attr in (*self._fitted_arrays, *self._fitted_json):
                self.__dict__.pop(attr, None)
            self.classes_ = classes
            self.image_shape_ = [int(h), int(w), int(c)]
            mean = images.mean(axis=(0, 1, 2), dtype=np.float64)
            std = images.std(axis=(0, 1, 2), dtype=np.float64)
            self.channel_mean_ = mean.astype(np.float32)
            self.channel_scale_ = np.where(std > 1e-12, std, 1.0).astype(np.float32)
            rng = np.random.default_rng(params["random_state"])
            self._network = self._build(params, (h, w, c), classes.size, rng)
            self.n_epochs_, step = 0, 0
        elif self.n_epochs_ >= params["epochs"]:
            return self
        else:
            rng = rng_from_state(state["rng"])
            step = state.get("step")
            check_saved_count("training_state_ step", step, minimum=0)
            # Rebuilt from the saved arrays, momentum included, so a loaded model resumes like
            # the one still in memory, and a failure can fall back to the saved model.
            self._network = self._saved_network(velocity=True)
        x_train = self._standardize(images)
        if val is not None:
            val = (self._standardize(val[0]), val[1])
        counters = (self.n_epochs_, getattr(self, "stopped_early_", False))
        try:
            self._train(params, x_train, targets, val, rng, step, callback)
        except BaseException:
            if state is not None:
                self._network = self._saved_network(velocity=True)
                self.n_epochs_, self.stopped_early_ = counters
            raise
        return self

    def _train(
        self,
        params: dict[str, Any],
        x_train: np.ndarray,
        targets: np.ndarray,
        val: tuple[np.ndarray, np.ndarray] | None,
        rng: np.random.Generator,
        step: int,
        callback: Callback | None,
    ) -> None:
        """Epochs ``n_epochs_ + 1`` to ``epochs`` of SGD on standardized images; store the result."""
        n, h, w = x_train.shape[:3]
        batch = min(params["mini_batch_size"], n)
        steps_per_epoch = math.ceil(n / batch)
        total_steps = steps_per_epoch * params["epochs"]
        pad = max(1, round(min(h, w) / 8))
        self.stopped_early_ = False
        for epoch in range(self.n_epochs_ + 1, params["epochs"] + 1):
            order = rng.permutation(n)
            loss_sum = correct = seen = 0.0
            for start in range(0, n, batch):
                index = order[start : start + batch]
                if index.size < 2:
                    continue  # batch statistics of one image are meaningless
                xb = self._augment(x_train[index], params["augmentation"], pad, rng)
                yb = targets[index]
                lr = self._learning_rate(params, step, total_steps, epoch)
                logits = self._network.forward(xb, train=True)
                loss, proba, grad = softmax_cross_entropy(logits, yb)
                self._network.backward(grad)
                self._network.sgd_step(lr, params["momentum"], params["weight_decay"])
                step += 1
                loss_sum += loss * index.size
                correct += float(np.sum(proba.argmax(axis=1) == yb))
                seen += index.size
            if not np.isfinite(loss_sum):
                raise ValueError(f"training diverged (loss is not finite in epoch {epoch}); lower learning_rate")
            self.n_epochs_ = epoch
            metrics = {"train:loss": loss_sum / seen, "train:accuracy": correct / seen}
            if val is not None:
                metrics.update(self._scores(val[0], val[1], "validation"))
            if not self._emit(callback, epoch, metrics):
                self.stopped_early_ = epoch < params["epochs"]
                break
        self._store()
        self.training_state_ = {"hyperparameters": params, "step": step, "rng": rng.bit_generator.state}

    @staticmethod
    def _build(
        params: dict[str, Any], shape: tuple[int, int, int], n_classes: int, rng: np.random.Generator
    ) -> Network:
        h, w, channels = shape
        layers: list[Layer] = []
        for block in range(params["num_layers"]):
            out = params["width"] * 2 ** min(block, _MAX_WIDTH_DOUBLINGS)
            layers += [Conv2D(channels, out, 3, 1, 1, rng=rng), BatchNorm(out), ReLU()]
            if min(h, w) >= 2:
                layers.append(MaxPool2D(2))
                h, w = h // 2, w // 2
            channels = out
        layers += [Flatten(), Dense(h * w * channels, n_classes, rng=rng)]
        return Network(layers)

    @staticmethod
    def _learning_rate(params: dict[str, Any], step: int, total_steps: int, epoch: int) -> float:
        lr = params["learning_rate"]
        schedule = params["lr_scheduler"]
        if schedule == "cosine":
            return 0.5 * lr * (1.0 + math.cos(math.pi * step / total_steps))
        if schedule == "step":
            done = (epoch - 1) / params["epochs"]
            return lr * (0.1 if done >= 0.5 else 1.0) * (0.1 if done >= 0.75 else 1.0)
        return lr

    @staticmethod
    def _augment(x: np.ndarray, augmentation: str, pad: int, rng: np.random.Generator) -> np.ndarray:
        """Random crops of the zero-padded (i.e. mean-padded, after standardization) images and flips."""
        n, h, w, _ = x.shape
        if "crop" in augmentation:
            padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
            dy = rng.integers(0, 2 * pad + 1, n)
            dx = rng.integers(0, 2 * pad + 1, n)
            rows = dy[:, None] + np.arange(h)
            cols = dx[:, None] + np.arange(w)
            x = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        if "flip" in augmentation:
            flip = rng.random(n) < 0.5
            x = x.copy() if "crop" not in augmentation else x
            x[flip] = x[flip, :, ::-1]
        return x

    def _standardize(self, images: np.ndarray) -> np.ndarray:
        return (images - self.channel_mean_) / self.channel_scale_

    @staticmethod
    def _encode(classes: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
        if classes.dtype.kind in "US" and labels.dtype.kind not in "US":
            labels = labels.astype(classes.dtype)
        index = np.searchsorted(classes, labels)
        index = np.clip(index, 0, classes.size - 1)
        unknown = classes[index] != labels
        if unknown.any():
            raise ValueError(
                f"{name} holds labels the model was not trained on, e.g. {labels[np.argmax(unknown)].item()!r}; "
                f"known: {', '.join(map(str, classes[:10]))}{'...' if classes.size > 10 else ''}"
            )
        return index

    def _store(self) -> None:
        self.architecture_ = self._network.spec()
        self.weights_ = self._network.flat("params").astype(np.float32)
        self.buffers_ = self._network.flat("buffers").astype(np.float32)
        self.velocity_ = self._network.flat("velocity").astype(np.float32)

    def _saved_network(self, *, velocity: bool) -> Network:
        """The network of ``architecture_`` with the saved weights (and momentum); ValueError if they do not fit."""
        network = Network.from_spec(self.architecture_, tuple(self.image_shape_))
        if network.layers[-1].kind != "dense" or network.layers[-1].spec()["out_features"] != self.classes_.size:
            raise ValueError("saved model's last layer does not output one score per class")
        kinds = ("params", "buffers", "velocity") if velocity else ("params", "buffers")
        for kind, attr in zip(kinds, ("weights_", "buffers_", "velocity_"), strict=False):
            values = np.asarray(getattr(self, attr))
            if values.dtype.kind != "f":
                raise ValueError(f"saved model has non-float {attr}")
            network.load_flat(kind, values)
        return network

    # -- prediction ----------------------------------------------------------------------------

    def _logits(self, X: Any, name: str = "X") -> np.ndarray:
        self._check_is_fitted()
        return self._forward(self._standardize(as_images(X, name, tuple(self.image_shape_))))

    def _forward(self, images: np.ndarray) -> np.ndarray:
        """Eval-mode logits of standardized images, a bounded chunk at a time."""
        rows = max(1, _PREDICT_PIXELS // (images.shape[1] * images.shape[2]))
        chunks = [
            self._network.forward(images[start : start + rows], train=False)
            for start in range(0, images.shape[0], rows)
        ]
        return np.concatenate(chunks)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)

        Returns
        -------
        ndarray of shape (n_images, n_classes), float32
        """
        logits = self._logits(X)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label of each image.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)

        Returns
        -------
        ndarray of shape (n_images,)
            Values of ``classes_``.
        """
        best = self._logits(X).argmax(axis=1)
        return self.classes_[best]

    def _scores(self, images: np.ndarray, targets: np.ndarray, channel: str) -> dict[str, float]:
        """Loss and accuracy of standardized images."""
        logits = self._forward(images)
        loss, proba, _ = softmax_cross_entropy(logits.astype(np.float64), targets)
        accuracy = metric_fns.accuracy(targets, proba.argmax(axis=1))
        return {f"{channel}:loss": loss, f"{channel}:accuracy": accuracy}

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Cross-entropy loss and accuracy on one channel.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, channels)
        y : array-like of shape (n_images,)
            Labels among ``classes_``.
        channel : {"train", "validation"}

        Returns
        -------
        dict of str to float
            ``{"<channel>:loss": ..., "<channel>:accuracy": ...}``.
        """
        check_channel(channel)
        self._check_is_fitted()
        images = as_images(X, "X", tuple(self.image_shape_))
        labels = as_labels(y, "y", images.shape[0], learner=_LEARNER)
        return self._scores(self._standardize(images), self._encode(self.classes_, labels, "y"), channel)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``, as scikit-learn classifiers define ``score``."""
        return self.evaluate(X, y)["validation:accuracy"]

    # -- persistence ---------------------------------------------------------------------------

    def _after_load(self) -> None:
        shape = self.image_shape_
        if not isinstance(shape, list) or len(shape) != 3:
            raise ValueError(f"saved model has an invalid image_shape_ {shape!r}")
        for value in shape:
            check_saved_count("image_shape_", value)
        check_saved_count("n_epochs_", self.n_epochs_, minimum=0)
        if not isinstance(self.stopped_early_, bool):
            raise ValueError("saved model has an invalid stopped_early_")
        if self.classes_.ndim != 1 or self.classes_.size < 2 or self.classes_.dtype.kind not in "biufUS":
            raise ValueError("saved model lacks valid classes_")
        channels = shape[2]
        self.channel_mean_ = check_saved_array("channel_mean_", self.channel_mean_, (channels,))
        self.channel_scale_ = check_saved_array("channel_scale_", self.channel_scale_, (channels,))
        # The momentum (velocity_) is only checked when resuming: a model saved before it existed
        # still predicts.
        self._network = self._saved_network(velocity=False)
