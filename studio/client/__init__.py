"""The Studio Python client: the REST API as objects, in the spirit of the sagemaker SDK.

    from studio.client import Studio
    studio = Studio("http://localhost:8000", token="stu_...")
    project = studio.project("churn")
    data = project.datasets.upload("churn.csv", target="churned")
    job = project.train("linear-learner", data, hyperparameters={"epochs": 5})
    job.wait(logs=True)
    endpoint = job.model.deploy(name="churn", wait=True)
    endpoint.predict([[0.3, 1.2]])

Standard library only, and no Django: it runs wherever Python does. The `studio` command is studio.client.cli.
"""

from __future__ import annotations

from studio.client.http import JobFailed, StudioError
from studio.client.resources import (
    Dataset,
    Endpoint,
    Execution,
    Model,
    ModelGroup,
    ModelVersion,
    Pipeline,
    TrainingJob,
    TransformJob,
    TuningJob,
)
from studio.client.session import Project, Studio

__all__ = [
    "Dataset",
    "Endpoint",
    "Execution",
    "JobFailed",
    "Model",
    "ModelGroup",
    "ModelVersion",
    "Pipeline",
    "Project",
    "Studio",
    "StudioError",
    "TrainingJob",
    "TransformJob",
    "TuningJob",
]
