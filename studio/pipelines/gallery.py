"""Ready-made pipelines the template gallery offers; "Use" copies one into the project as a new pipeline.

Each definition must pass definition_validate as it stands (tests check it), so a template saves
and runs once its dataset parameter names a dataset of the project. Parameters carry the parts a
user changes per project; defaults are what works on the bundled examples.
"""

from __future__ import annotations

import copy
from typing import Any


def _ref(path: str) -> dict[str, str]:
    return {"ref": path}


TRAIN_EVALUATE_REGISTER_DEPLOY: dict[str, Any] = {
    "slug": "train-evaluate-register-deploy",
    "name": "Train, evaluate, register if good, deploy",
    "description": (
        "Splits a tabular dataset, trains a model on the training part and checks its validation accuracy "
        "against a threshold. A good enough model is registered (approved) in a model group and deployed to "
        "a real-time endpoint; otherwise the run fails and says why."
    ),
    "definition": {
        "parameters": {
            "dataset": "",
            "target": "",
            "algorithm": "linear-learner",
            "threshold": 0.7,
            "model_group": "pipeline-models",
            "endpoint": "pipeline-endpoint",
        },
        "steps": [
            {
                "name": "split",
                "type": "processing",
                "depends_on": [],
                "arguments": {
                    "operation": "split",
                    "dataset": _ref("parameters.dataset"),
                    "fractions": {"train": 0.8, "validation": 0.2},
                    "seed": 0,
                },
            },
            {
                "name": "train",
                "type": "training",
                "depends_on": [],
                "arguments": {
                    "algorithm": _ref("parameters.algorithm"),
                    "dataset": _ref("steps.split.train"),
                    "validation_dataset": _ref("steps.split.validation"),
                    "target": _ref("parameters.target"),
                    "hyperparameters": {"epochs": 5},
                },
            },
            {
                "name": "evaluate",
                "type": "condition",
                "depends_on": [],
                "arguments": {
                    "left": _ref("steps.train.metrics.validation:accuracy"),
                    "op": ">=",
                    "right": _ref("parameters.threshold"),
                    "if_true": ["register"],
                    "if_false": ["too-weak"],
                },
            },
            {
                "name": "register",
                "type": "register",
                "depends_on": [],
                "arguments": {
                    "model": _ref("steps.train.model"),
                    "model_group": _ref("parameters.model_group"),
                    "approve": True,
                },
            },
            {
                "name": "deploy",
                "type": "deploy",
                "depends_on": [],
                "arguments": {
                    "model": _ref("steps.register.model"),
                    "endpoint": _ref("parameters.endpoint"),
                    "type": "realtime",
                },
            },
            {
                "name": "too-weak",
                "type": "fail",
                "depends_on": [],
                "arguments": {"message": "The model's validation accuracy is below the threshold: not deployed."},
            },
        ],
    },
}

PREPROCESS_AND_TRAIN: dict[str, Any] = {
    "slug": "preprocess-and-train",
    "name": "Preprocess and train",
    "description": (
        "Fills missing values, one-hot encodes a categorical column, splits into training and validation "
        "parts and trains a model on them. Each step makes a new dataset, so every stage can be inspected."
    ),
    "definition": {
        "parameters": {
            "dataset": "",
            "target": "",
            "category_column": "category",
            "algorithm": "linear-learner",
        },
        "steps": [
            {
                "name": "impute",
                "type": "processing",
                "depends_on": [],
                "arguments": {"operation": "impute", "dataset": _ref("parameters.dataset"), "strategy": "median"},
            },
            {
                "name": "encode",
                "type": "processing",
                "depends_on": [],
                "arguments": {
                    "operation": "one_hot",
                    "dataset": _ref("steps.impute.dataset"),
                    "columns": [_ref("parameters.category_column")],
                },
            },
            {
                "name": "split",
                "type": "processing",
                "depends_on": [],
                "arguments": {
                    "operation": "split",
                    "dataset": _ref("steps.encode.dataset"),
                    "fractions": {"train": 0.8, "validation": 0.2},
                    "seed": 0,
                },
            },
            {
                "name": "train",
                "type": "training",
                "depends_on": [],
                "arguments": {
                    "algorithm": _ref("parameters.algorithm"),
                    "dataset": _ref("steps.split.train"),
                    "validation_dataset": _ref("steps.split.validation"),
                    "target": _ref("parameters.target"),
                },
            },
        ],
    },
}

BATCH_SCORING: dict[str, Any] = {
    "slug": "batch-scoring",
    "name": "Batch scoring",
    "description": (
        "Scores every row of a dataset with a model as a batch transform job and keeps the input columns "
        "next to the predictions in a new dataset. Pair it with a \"new dataset\" trigger to score data as it "
        "arrives."
    ),
    "definition": {
        "parameters": {"model": "", "dataset": ""},
        "steps": [
            {
                "name": "score",
                "type": "transform",
                "depends_on": [],
                "arguments": {
                    "model": _ref("parameters.model"),
                    "input_dataset": _ref("parameters.dataset"),
                    "join_source": "input",
                },
            },
        ],
    },
}

TEMPLATES = (TRAIN_EVALUATE_REGISTER_DEPLOY, PREPROCESS_AND_TRAIN, BATCH_SCORING)


def pipeline_templates() -> list[dict[str, Any]]:
    """Every template as ``{"slug", "name", "description", "definition"}``; copies, so callers may edit them."""
    return [copy.deepcopy(template) for template in TEMPLATES]


def pipeline_template(slug: str) -> dict[str, Any] | None:
    return next((copy.deepcopy(t) for t in TEMPLATES if t["slug"] == slug), None)
