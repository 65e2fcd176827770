"""The algorithm catalog pages: every registered algorithm, described from its own declaration."""

from __future__ import annotations

import pytest
from django.test import Client

from algorithms import list_algorithms
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/algorithms/{suffix}"


def test_it_lists_every_algorithm_with_its_target_metrics_and_hyperparameters(world):
    response = signed_in(world.viewer).get(page(world))
    body = response.content.decode()
    assert response.status_code == 200
    assert f'href="{page(world)}" class="active">Algorithms</a>' in body  # the left navigation marks it
    for algo in list_algorithms():
        assert f'data-algorithm="{algo.name}"' in body and algo.title in body
        assert f'href="{page(world, algo.name + "/")}"' in body
        for hp in algo.hyperparameters:
            assert f'<td><span class="mono">{hp.name}</span>' in body, (algo.name, hp.name)
        for metric in algo.metrics:
            assert metric.name in body
    assert "Needs a target column" in body  # the linear learner
    assert "train:loss" in body and "lower ↓" in body


def test_it_shows_one_algorithm_with_a_train_button_for_members_only(world):
    member = signed_in(world.member).get(page(world, "linear-learner/")).content.decode()
    assert "Linear Learner" in member and 'data-testid="algorithm-hyperparameters"' in member
    assert f'href="/projects/{world.project.id}/training/new/?algorithm=linear-learner"' in member
    assert "Train with this algorithm" in member
    assert '<td>int</td><td class="mono">15</td><td class="mono">1 to 1000</td>' in member
    assert "Maximum passes over the training data." in member
    viewer = signed_in(world.viewer).get(page(world, "linear-learner/")).content.decode()
    assert "Train with this algorithm" not in viewer and 'data-testid="algorithm-metrics"' in viewer


def test_it_answers_404_for_an_unknown_algorithm(world):
    assert signed_in(world.viewer).get(page(world, "deep-magic/")).status_code == 404


def test_it_hides_the_catalog_of_other_teams_projects(world):
    client = signed_in(world.outsider)
    assert client.get(page(world)).status_code == 404
    assert client.get(page(world, "linear-learner/")).status_code == 404
