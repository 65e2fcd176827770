"""Loading a model for predictions: estimator + preprocessing from storage, records in, predictions out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studio.registry.models import Model
from studio.registry.services import model_load_bundle, model_predict_frame, model_preprocessing
from tests.training.factories import new_job, run_job

pytestmark = pytest.mark.django_db


def test_it_predicts_from_records_by_name_or_position(world, enqueued):
    model = run_job(new_job(world, hyperparameters={"epochs": 8})).model
    loaded = model_load_bundle(model=model)
    assert loaded.input_names == ["x1", "x2", "x3"]
    by_name = loaded.predict([{"x1": 1, "x2": 0, "x3": 0, "price": 99}])  # extra keys (the target) are ignored
    by_position = model_predict_frame(model=model, rows=[[1, 0, 0]], loaded=loaded)
    assert by_name[0] == pytest.approx(3.0, abs=0.4) and by_position[0] == by_name[0]
    X = loaded.features([["1", None, "true"]])  # strings, a missing value, a boolean: read like CSV cells
    assert X[0, 0] == 1 and math.isfinite(X[0, 1]) and X[0, 2] == 1


def test_a_model_saved_before_preprocessing_existed_reads_numbers_as_they_are(world, enqueued):
    model = run_job(new_job(world)).model
    Model.objects.filter(id=model.id).update(
        artifact_files=[n for n in model.artifact_files if not n.endswith("preprocessing.json")])
    model.refresh_from_db()
    assert model_preprocessing(model=model) is None
    loaded = model_load_bundle(model=model)
    assert loaded.preprocessor.missing_values == "keep"
    assert np.isnan(loaded.features([[1, None, 2]])[0, 1])  # the estimator imputes it itself
    assert loaded.predict([[1, None, 2]]).shape == (1,)
