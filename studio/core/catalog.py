"""The algorithm catalog in words: what each built-in algorithm does, needs and reports, for the catalog pages.

Everything comes from the algorithm's own declaration (``describe()`` and its docstring), so the
catalog can never drift from what the training form and the API accept.
"""

from __future__ import annotations

import inspect
from typing import Any

from algorithms import Estimator

TARGET_TEXT = {
    "required": "Needs a target column: the labels or values to predict.",
    "optional": "Target optional: 0/1 labels (1 = anomaly) are used only to report AUC.",
    "none": "Takes no target: it learns from the feature columns alone.",
}
INPUT_TEXT = {
    "tabular": "Tabular datasets (CSV with a header row). Text columns are one-hot encoded and missing numbers "
               "filled in as the training job says (missing_values).",
    "text": "Text datasets (a text column, optional labels).",
    "image": "Image datasets.",
}


def _summary(algo: type[Estimator]) -> str:
    """The first paragraph of the class docstring, on one line."""
    doc = inspect.getdoc(algo) or ""
    first = doc.split("\n\n", 1)[0]
    return " ".join(first.split())


def _range_text(hp: dict[str, Any]) -> str:
    if hp.get("choices") is not None:
        return ", ".join(str(c) for c in hp["choices"])
    low, high = hp.get("min"), hp.get("max")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"≥ {low}"
    if high is not None:
        return f"≤ {high}"
    return "true / false" if hp["type"] == "bool" else "any"


def algorithm_entry(algo: type[Estimator]) -> dict[str, Any]:
    """``describe()`` plus the words the catalog page shows."""
    info = algo.describe()
    info["summary"] = _summary(algo)
    info["target_text"] = TARGET_TEXT.get(info.get("target", "required"), "")
    info["input_text"] = INPUT_TEXT.get(info["input"], info["input"])
    info["hyperparameter_rows"] = [
        {**hp, "range": _range_text(hp), "scale": hp.get("scale", "")} for hp in info["hyperparameters"]
    ]
    return info
