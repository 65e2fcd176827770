"""The object detector's network: four 3x3 convolutions with ReLU (2x2 max pooling after the
first three), then a 1x1 convolution that outputs one prediction per grid cell.

Plain functions over a flat parameter list ``[w1, b1, ..., w5, b5]``, each weight of shape
``(k * k * c_in, c_out)``, so that :class:`algorithms.object_detection.ObjectDetection` saves the
weights as plain arrays and runs Adam on them directly. The convolutions are same-padded, stride 1,
by :func:`algorithms._nn.im2col` and its adjoint :func:`algorithms._nn.col2im`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from algorithms._nn import col2im, im2col

__all__ = ["N_BOX", "backward", "forward", "layer_shapes"]

N_BOX = 5  # objectness, x offset, y offset, log width, log height


def _pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max pooling; also returns the mask of the winners for the backward pass."""
    n, h, w, c = x.shape
    blocks = x.reshape(n, h // 2, 2, w // 2, 2, c)
    out = blocks.max(axis=(2, 4))
    # Ties pass the gradient to every winner; they are zeros after ReLU, whose gradient the
    # ReLU mask removes, so exact positive ties (measure zero) are the only imprecision.
    return out, blocks == out[:, :, None, :, None, :]


def _unpool(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n, h2, _, w2, _, c = mask.shape
    return (mask * dout[:, :, None, :, None, :]).reshape(n, h2 * 2, w2 * 2, c)


def layer_shapes(channels: int, width: int, n_classes: int) -> list[tuple[int, int, int]]:
    """``(kernel, in, out)`` of the five convolutions; the first three are followed by pooling."""
    return [
        (3, channels, width),
        (3, width, 2 * width),
        (3, 2 * width, 4 * width),
        (3, 4 * width, 4 * width),
        (1, 4 * width, N_BOX + n_classes),
    ]


def forward(params: list[np.ndarray], x: np.ndarray, keep: bool) -> tuple[np.ndarray, list[Any]]:
    """Run the network; ``keep`` stores what the backward pass needs."""
    cache: list[Any] = []
    h = x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        weight, bias = params[2 * layer], params[2 * layer + 1]
        k = round(float(np.sqrt(weight.shape[0] / h.shape[3])))
        cols = im2col(h, k, k, 1, k // 2)[0]
        out = (cols @ weight + bias).reshape(*h.shape[:3], weight.shape[1])
        entry: dict[str, Any] = {"cols": cols if keep else None, "shape": h.shape, "k": k}
        if layer < n_layers - 1:
            out = np.maximum(out, 0)
            entry["relu"] = out > 0 if keep else None
            if layer < 3:
                out, mask = _pool(out)
                entry["pool"] = mask if keep else None
        cache.append(entry)
        h = out
    return h, cache


def backward(params: list[np.ndarray], cache: list[Any], dout: np.ndarray) -> list[np.ndarray]:
    """Gradients of every parameter, given the output gradient and :func:`forward`'s cache."""
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    d = dout
    for layer in range(len(cache) - 1, -1, -1):
        entry = cache[layer]
        weight = params[2 * layer]
        if "pool" in entry:
            d = _unpool(d, entry["pool"])
        if "relu" in entry:
            d = d * entry["relu"]
        d2 = d.reshape(-1, weight.shape[1])
        grads[2 * layer] = entry["cols"].T @ d2
        grads[2 * layer + 1] = d2.sum(axis=0)
        if layer:
            # Same padding and stride 1: the output grid has the input's height and width.
            _, height, width, _ = entry["shape"]
            k = entry["k"]
            d = col2im(d2 @ weight.T, entry["shape"], k, k, 1, k // 2, height, width)
    return grads
