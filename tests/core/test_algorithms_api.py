from __future__ import annotations

import pytest

from tests.conftest import api_client

pytestmark = pytest.mark.django_db


def test_it_lists_algorithms_with_their_declarations(world):
    body = api_client(world.viewer).get("/api/v1/algorithms").json()
    linear = next(a for a in body if a["name"] == "linear-learner")
    assert linear["input"] == "tabular" and linear["target"] == "required"
    assert all(a["target"] in {"required", "optional", "none"} for a in body)
    assert {"name", "title", "task", "hyperparameters", "metrics", "default_objective"} <= set(linear)
    for hp in linear["hyperparameters"]:
        assert hp["type"] in {"float", "int", "categorical", "bool"}
        assert "default" in hp and "tunable" in hp
    assert all(m["direction"] in {"maximize", "minimize"} for m in linear["metrics"])


def test_it_scopes_the_project_algorithm_list(world):
    url = f"/api/v1/projects/{world.project.id}/algorithms"
    assert api_client(world.viewer).get(url).status_code == 200
    assert api_client(world.outsider).get(url).status_code == 404
