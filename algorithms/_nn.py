"""Neural-network layers in numpy for the image algorithms: forward, backward, (de)serialization.

Images are NHWC arrays. Every layer computes in the dtype of its parameters (float32 for
training speed, float64 for gradient checks) and keeps what its backward pass needs from the
last forward pass, so a layer object serves one forward/backward pair at a time.

Layers describe themselves with :meth:`Layer.spec` (JSON) and list their arrays in ``params``
(trained) and ``buffers`` (running statistics), which lets a network be rebuilt from a JSON
architecture plus flat weight vectors without pickle (see :func:`build_layer`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = [
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "Network",
    "ReLU",
    "build_layer",
    "col2im",
    "im2col",
    "softmax_cross_entropy",
]


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """Patches of ``x`` (N, H, W, C) as rows of a matrix (N * Ho * Wo, kh * kw * C).

    The patch order is (kh, kw, C), matching a kernel stored as (kh, kw, C_in, C_out), so a
    convolution is one matrix product with the kernel reshaped to (kh * kw * C_in, C_out).
    """
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"a {kh}x{kw} kernel does not fit an image of {h - 2 * pad}x{w - 2 * pad} (padding {pad})")
    s_n, s_h, s_w, s_c = x.strides
    # A read-only strided view; the reshape below makes the one copy im2col needs.
    windows = as_strided(
        x, shape=(n, ho, wo, kh, kw, c), strides=(s_n, s_h * stride, s_w * stride, s_h, s_w, s_c), writeable=False
    )
    return windows.reshape(n * ho * wo, kh * kw * c), ho, wo


def col2im(
    cols: np.ndarray, x_shape: tuple[int, ...], kh: int, kw: int, stride: int, pad: int, ho: int, wo: int
) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum patch gradients back onto an (N, H, W, C) image."""
    n, h, w, c = x_shape
    dx = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=cols.dtype)
    patches = cols.reshape(n, ho, wo, kh, kw, c)
    # kh * kw strided additions instead of a scatter over every patch element.
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride, :] += patches[
                :, :, :, i, j, :
            ]
    return dx[:, pad : pad + h, pad : pad + w, :] if pad else dx


class Layer:
    """A differentiable step of a :class:`Network`."""

    kind: ClassVar[str] = ""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """Output of the layer; ``train`` selects batch statistics over running ones."""
        raise NotImplementedError

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Gradient of the input given the output's; fills ``grads`` for each of ``params``.

        ``input_grad=False`` (the first layer of a network) may skip the input gradient and return None.
        """
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """JSON description from which :func:`build_layer` rebuilds the layer (weights aside)."""
        return {"type": self.kind}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample given one input sample's."""
        return shape

    def astype(self, dtype: Any) -> None:
        """Convert parameters and buffers, e.g. to float64 for a gradient check."""
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}
        self.buffers = {k: v.astype(dtype) for k, v in self.buffers.items()}


class Conv2D(Layer):
    """2-D convolution by im2col + one matrix product; kernel (kh, kw, C_in, C_out), He-initialized.

    No bias by default: a batch norm that follows would cancel it.
    """

    kind = "conv2d"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        bias: bool = False,
        *,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.bias = kernel_size, stride, padding, bias
        rng = rng if rng is not None else np.random.default_rng(0)
        fan_in = kernel_size * kernel_size * in_channels
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        self.params["W"] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        k = self.kernel_size
        cols, ho, wo = im2col(x, k, k, self.stride, self.padding)
        out = cols @ self.params["W"].reshape(-1, self.out_channels)
        if self.bias:
            out += self.params["b"]
        self._cache = (cols, x.shape, ho, wo)
        return out.reshape(x.shape[0], ho, wo, self.out_channels)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        cols, x_shape, ho, wo = self._cache
        k = self.kernel_size
        d2 = dout.reshape(-1, self.out_channels)
        W = self.params["W"]
        self.grads["W"] = (cols.T @ d2).reshape(W.shape)
        if self.bias:
            self.grads["b"] = d2.sum(axis=0)
        if not input_grad:
            return None
        dcols = d2 @ W.reshape(-1, self.out_channels).T
        return col2im(dcols, x_shape, k, k, self.stride, self.padding, ho, wo)

    def spec(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "bias": self.bias,
        }

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        h, w, c = shape
        if c != self.in_channels:
            raise ValueError(f"conv2d expects {self.in_channels} input channels, got {c}")
        k, s, p = self.kernel_size, self.stride, self.padding
        return ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, self.out_channels)


class BatchNorm(Layer):
    """Batch normalization over every axis but the last (channels); running stats for eval mode."""

    kind = "batchnorm"

    def __init__(self, channels: int, momentum: float = 0.9, eps: float = 1e-5, *, dtype: Any = np.float32) -> None:
        super().__init__()
        self.channels, self.momentum, self.eps = channels, momentum, eps
        self.params["gamma"] = np.ones(channels, dtype=dtype)
        self.params["beta"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_var"] = np.ones(channels, dtype=dtype)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        x2 = x.reshape(-1, self.channels)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not train:
            inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + x.dtype.type(self.eps))
            scale = gamma * inv_std
            return (x2 * scale + (beta - self.buffers["running_mean"] * scale)).reshape(x.shape)
        m = x2.shape[0]
        mean = x2.mean(axis=0)
        centered = x2 - mean
        var = np.mean(centered * centered, axis=0)
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(self.eps))
        xhat = centered * inv_std
        mom = x.dtype.type(self.momentum)
        self.buffers["running_mean"] = mom * self.buffers["running_mean"] + (1 - mom) * mean
        # Unbiased variance for inference, as in the original paper and the common frameworks.
        unbiased = var * x.dtype.type(m / max(m - 1, 1))
        self.buffers["running_var"] = mom * self.buffers["running_var"] + (1 - mom) * unbiased
        self._cache = (xhat, inv_std, x.shape)
        return (xhat * gamma + beta).reshape(x.shape)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        xhat, inv_std, shape = self._cache
        d2 = dout.reshape(-1, self.channels)
        m = d2.shape[0]
        self.grads["gamma"] = np.sum(d2 * xhat, axis=0)
        self.grads["beta"] = d2.sum(axis=0)
        dxhat = d2 * self.params["gamma"]
        dx = (inv_std / m) * (m * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
        return dx.reshape(shape)

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "channels": self.channels, "momentum": self.momentum, "eps": self.eps}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if shape[-1] != self.channels:
            raise ValueError(f"batchnorm expects {self.channels} channels, got {shape[-1]}")
        return shape


class ReLU(Layer):
    """max(x, 0)."""

    kind = "relu"

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._mask = x > 0
        return x * self._mask

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dout * self._mask


class MaxPool2D(Layer):
    """Non-overlapping ``size`` x ``size`` max pooling; trailing rows/columns that do not fill a window are dropped."""

    kind = "maxpool2d"

    def __init__(self, size: int = 2) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        n, h, w, c = x.shape
        s = self.size
        ho, wo = h // s, w // s
        blocks = x[:, : ho * s, : wo * s, :].reshape(n, ho, s, wo, s, c).transpose(0, 1, 3, 5, 2, 4)
        blocks = blocks.reshape(n, ho, wo, c, s * s)
        # argmax routes the gradient to exactly one element per window, ties included.
        idx = blocks.argmax(axis=-1)[..., None]
        self._cache = (idx, x.shape)
        return np.take_along_axis(blocks, idx, axis=-1)[..., 0]

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        idx, shape = self._cache
        n, h, w, c = shape
        s = self.size
        ho, wo = h // s, w // s
        dblocks = np.zeros((n, ho, wo, c, s * s), dtype=dout.dtype)
        np.put_along_axis(dblocks, idx, dout[..., None], axis=-1)
        dx = dblocks.reshape(n, ho, wo, c, s, s).transpose(0, 1, 4, 2, 5, 3).reshape(n, ho * s, wo * s, c)
        if (ho * s, wo * s) != (h, w):
            dx = np.pad(dx, ((0, 0), (0, h - ho * s), (0, w - wo * s), (0, 0)))
        return dx

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "size": self.size}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        h, w, c = shape
        return (h // self.size, w // self.size, c)


class Flatten(Layer):
    """(N, ...) -> (N, features)."""

    kind = "flatten"

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dout.reshape(self._shape)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(shape)),)


class Dense(Layer):
    """Fully connected ``x @ W + b``, He-initialized."""

    kind = "dense"

    def __init__(
        self, in_features: int, out_features: int, *, rng: np.random.Generator | None = None, dtype: Any = np.float32
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        rng = rng if rng is not None else np.random.default_rng(0)
        self.params["W"] = (rng.standard_normal((in_features, out_features)) * np.sqrt(2.0 / in_features)).astype(dtype)
        self.params["b"] = np.zeros(out_features, dtype=dtype)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self._x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        self.grads["W"] = self._x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        if not input_grad:
            return None
        return dout @ self.params["W"].T

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "in_features": self.in_features, "out_features": self.out_features}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if shape != (self.in_features,):
            raise ValueError(f"dense expects {self.in_features} features, got shape {shape}")
        return (self.out_features,)


_LAYER_ARGS: dict[str, tuple[type[Layer], dict[str, type]]] = {
    "conv2d": (
        Conv2D,
        {"in_channels": int, "out_channels": int, "kernel_size": int, "stride": int, "padding": int, "bias": bool},
    ),
    "batchnorm": (BatchNorm, {"channels": int, "momentum": float, "eps": float}),
    "relu": (ReLU, {}),
    "maxpool2d": (MaxPool2D, {"size": int}),
    "flatten": (Flatten, {}),
    "dense": (Dense, {"in_features": int, "out_features": int}),
}


def build_layer(spec: Any, *, dtype: Any = np.float32) -> Layer:
    """Rebuild a layer from :meth:`Layer.spec`, checking every field (specs may come from uploaded files)."""
    if not isinstance(spec, dict) or spec.get("type") not in _LAYER_ARGS:
        raise ValueError(f"unknown layer spec {spec!r}")
    cls, fields = _LAYER_ARGS[spec["type"]]
    kwargs: dict[str, Any] = {}
    for name, kind in fields.items():
        value = spec.get(name)
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
        elif kind is bool:
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or name == "padding")
            ok = ok and 0 <= value <= 1_000_000
        if not ok:
            raise ValueError(f"layer {spec['type']} has an invalid {name} {value!r}")
        kwargs[name] = value
    if cls in (BatchNorm, Conv2D, Dense):
        kwargs["dtype"] = dtype
    return cls(**kwargs)


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy of integer targets ``y``; returns (loss, probabilities, d loss / d logits)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    proba = exp / total
    rows = np.arange(y.shape[0])
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
    grad = proba.copy()
    grad[rows, y] -= 1
    grad /= y.shape[0]
    return loss, proba, grad


class Network:
    """A sequence of layers trained by momentum SGD with decoupled-from-BN weight decay."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers
        self._velocity: list[dict[str, np.ndarray]] = [
            {k: np.zeros_like(v) for k, v in layer.params.items()} for layer in layers
        ]

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Fill every layer's ``grads``; the gradient of the input only when ``input_grad``."""
        for layer in self.layers[:0:-1]:
            dout = layer.backward(dout)
        return self.layers[0].backward(dout, input_grad=input_grad)

    def sgd_step(self, lr: float, momentum: float, weight_decay: float) -> None:
        """``v = momentum * v - lr * (g + wd * w); w += v``; no decay on batch-norm scales or biases."""
        for layer, velocity in zip(self.layers, self._velocity, strict=True):
            for name, param in layer.params.items():
                grad = layer.grads[name]
                if weight_decay and name == "W":
                    grad = grad + param.dtype.type(weight_decay) * param
                v = velocity[name]
                v *= param.dtype.type(momentum)
                v -= param.dtype.type(lr) * grad
                param += v

    def spec(self) -> list[dict[str, Any]]:
        return [layer.spec() for layer in self.layers]

    def _stores(self, kind: str) -> list[dict[str, np.ndarray]]:
        return self._velocity if kind == "velocity" else [getattr(layer, kind) for layer in self.layers]

    def flat(self, kind: str) -> np.ndarray:
        """Every ``params`` (kind="params"), ``buffers`` or SGD ``velocity`` array concatenated in layer order.

        The velocity (one array per parameter, in the order of ``params``) is the optimizer
        state that resuming training needs.
        """
        arrays = [a.ravel() for store in self._stores(kind) for a in store.values()]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float32)

    def load_flat(self, kind: str, values: np.ndarray) -> None:
        """Inverse of :meth:`flat`; raises ``ValueError`` when the sizes do not add up."""
        stores = self._stores(kind)
        total = sum(a.size for store in stores for a in store.values())
        if values.ndim != 1 or values.size != total:
            raise ValueError(f"saved model has {values.size} {kind} values, its architecture needs {total}")
        offset = 0
        for store in stores:
            for name, array in store.items():
                store[name] = values[offset : offset + array.size].reshape(array.shape).astype(array.dtype)
                offset += array.size

    @classmethod
    def from_spec(cls, specs: Any, input_shape: tuple[int, ...], *, dtype: Any = np.float32) -> Network:
        """Rebuild from :meth:`spec`, checking that the layers chain from ``input_shape``."""
        if not isinstance(specs, list) or not specs:
            raise ValueError("saved model has no layers")
        layers = [build_layer(spec, dtype=dtype) for spec in specs]
        shape = tuple(input_shape)
        for layer in layers:
            if layer.kind in ("conv2d", "maxpool2d") and len(shape) != 3:
                raise ValueError(f"layer {layer.kind} needs an image input, got shape {shape}")
            shape = layer.output_shape(shape)
            if min(shape) < 1:
                raise ValueError(f"layer {layer.kind} leaves an empty output of shape {shape}")
        return cls(layers)
