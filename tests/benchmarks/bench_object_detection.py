"""Object detection on a generated shapes dataset: mAP@0.5 on held-out images (bar >= 0.7).

1200 RGB images of 64x64 pixels (fixed seed), each with 1 to 3 circles, squares or triangles
of random size (10-28 px) and colour on a noisy background of another random colour; shapes
overlap little (IoU < 0.1). Train on the first 80 %, measure VOC mAP@0.5 (all-point
interpolation) on the last 20 %. There is no reference implementation in the same run (the
issue's bar is absolute), so the table shows our training time twice (reference "none").
"""

from __future__ import annotations

import tempfile

import numpy as np

from algorithms.object_detection import ObjectDetection, box_iou, mean_average_precision
from tests.benchmarks.harness import best_time, record

SHAPES = ("circle", "square", "triangle")


def draw_shape(kind: str, size: int, cx: float, cy: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape of bounding size ``size`` centred on (cx, cy)."""
    half = size / 2
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= half**2
    if kind == "square":
        return (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    # Upright triangle: apex at the top centre, base at the bottom.
    top, bottom = cy - half, cy + half
    inside_y = (yy >= top) & (yy <= bottom)
    spread = (yy - top) / size * half
    return inside_y & (np.abs(xx - cx) <= spread)


def make_shapes(n_images: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, list[list[dict]]]:
    """Images (n, size, size, 3) uint8 and their boxes (tight bounds of the drawn pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    boxes: list[list[dict]] = []
    for i in range(n_images):
        background = rng.uniform(0.0, 1.0, 3)
        image = background + rng.normal(0.0, 0.08, (size, size, 3))
        placed: list[dict] = []
        for _ in range(int(rng.integers(1, 4))):
            for _attempt in range(20):
                kind = SHAPES[int(rng.integers(3))]
                side = int(rng.integers(10, 29))
                cx, cy = rng.uniform(side / 2, size - side / 2, 2)
                mask = draw_shape(kind, side, cx, cy, yy, xx)
                if mask.sum() < 20:
                    continue
                rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                box = {
                    "label": kind,
                    "x1": float(cols[0]),
                    "y1": float(rows[0]),
                    "x2": float(cols[-1] + 1),
                    "y2": float(rows[-1] + 1),
                }
                coords = np.array([[box["x1"], box["y1"], box["x2"], box["y2"]]])
                if (
                    placed
                    and box_iou(coords, np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in placed])).max() > 0.1
                ):
                    continue
                colour = rng.uniform(0.0, 1.0, 3)
                while np.abs(colour - background).max() < 0.35:
                    colour = rng.uniform(0.0, 1.0, 3)
                image[mask] = colour + rng.normal(0.0, 0.08, (int(mask.sum()), 3))
                placed.append(box)
                break
        images[i] = np.clip(image * 255, 0, 255).astype(np.uint8)
        boxes.append(placed)
    return images, boxes


def test_bench_object_detection_shapes():
    images, boxes = make_shapes(1200, seed=0)
    split = int(0.8 * len(images))
    train_x, train_y, test_x, test_y = images[:split], boxes[:split], images[split:], boxes[split:]
    losses: list[float] = []

    def train():
        losses.clear()
        model = ObjectDetection(random_state=0)
        return model.fit(train_x, train_y, callback=lambda step, m: losses.append(m["train:loss"]))

    seconds, model = best_time(train, repeats=1)
    detections = model.predict(test_x)
    score, per_class = mean_average_precision(test_y, detections)
    train_map = model.evaluate(train_x, train_y, channel="train")["train:map"]
    with tempfile.TemporaryDirectory() as directory:
        reloaded = ObjectDetection.load(model.save(directory)).predict(test_x) == detections
    print(f"\nloss per epoch: {[round(v, 3) for v in losses]}")
    record(
        name="object-detection shapes 1200x64x64 (mAP@0.5, 20% held out)",
        ours_s=seconds,
        reference="none",
        reference_s=seconds,
        quality={
            "map50": score,
            "train_map50": train_map,
            **{f"ap_{k}": v for k, v in per_class.items()},
            "epochs": model.n_epochs_,
            "n_train": split,
            "n_test": len(test_x),
            "saved_model_predicts_identically": reloaded,
        },
        bar="mAP@0.5 >= 0.7",
        met=score >= 0.7 and reloaded,
    )
