"""Image classification on scikit-learn's digits against LogisticRegression on scaled pixels.

Run with ``make bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_image_classification.py -o python_files='bench_*.py' -q -s``.
"""

from __future__ import annotations

import tempfile

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from algorithms.image_classification import ImageClassification
from tests.benchmarks.harness import best_time, record

SEED = 0


def test_bench_digits_held_out_20_percent() -> None:
    digits = load_digits()
    images = digits.images.reshape(-1, 8, 8, 1)  # 0..16 gray levels, one channel
    X_train, X_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target
    )
    # Default hyperparameters: crop augmentation, no flips (digits are not mirror-symmetric).
    model = ImageClassification(random_state=SEED)
    ours_s, model = best_time(lambda: model.fit(X_train, y_train), repeats=1)
    ours_accuracy = float(np.mean(model.predict(X_test) == y_test))

    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    flat_train, flat_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    reference_s, reference = best_time(lambda: reference.fit(flat_train, y_train), repeats=3)
    reference_accuracy = float(reference.score(flat_test, y_test))

    with tempfile.TemporaryDirectory() as directory:
        model.save(directory)
        loaded = ImageClassification.load(directory)
        identical = bool(np.array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test)))

    record(
        name="image-classification digits (8x8x1), 1437 train / 360 test",
        ours_s=ours_s,
        reference="sklearn StandardScaler + LogisticRegression(max_iter=5000)",
        reference_s=reference_s,
        quality={
            "test_accuracy_ours": ours_accuracy,
            "test_accuracy_reference": reference_accuracy,
            "epochs": model.n_epochs_,
            "train_images_per_s": model.n_epochs_ * len(X_train) / ours_s,
            "saved_model_identical": identical,
        },
        bar="test accuracy >= 0.97 and above the reference's; times are training times (not a bar)",
        met=ours_accuracy >= 0.97 and ours_accuracy > reference_accuracy and identical,
    )
