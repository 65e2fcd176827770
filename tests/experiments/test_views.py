from __future__ import annotations

import json
import re
import uuid

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from tests.experiments.runs import add_points, make_run, make_trial

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "", project=None) -> str:
    return f"/projects/{(project or world.project).id}/experiments/{suffix}"


def row_names(body: str) -> list[str]:
    return re.findall(r'data-testid="run-name">([^<]+)</a>', body)


@pytest.fixture
def three(world):
    p = world.project
    a = make_run(p, "lr-small", metrics={"validation:accuracy": 0.91, "validation:loss": 0.25},
                 params={"learning_rate": 0.01, "epochs": 10, "optimizer": "adam"}, tags=["baseline"],
                 user=world.member)
    b = make_run(p, "lr-big", metrics={"validation:accuracy": 0.84, "validation:loss": 0.41},
                 params={"learning_rate": 0.5, "epochs": 10, "optimizer": "sgd"})
    c = make_run(p, "lr-mid", status="running", params={"learning_rate": 0.1, "epochs": 10, "optimizer": "adam"})
    add_points(a, "validation:loss", [0.6, 0.4, 0.25])
    add_points(b, "validation:loss", [0.7, 0.5, 0.41])
    add_points(c, "validation:loss", [0.65])
    return a, b, c


def test_it_shows_an_empty_state_with_next_steps(world):
    body = signed_in(world.member).get(page(world)).content.decode()
    assert "No runs yet" in body and "Train a model</a>" in body and "Tune a model</a>" in body
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "No runs yet" in viewer and "Train a model</a>" not in viewer
    assert f'href="/projects/{world.project.id}/experiments/" class="active">Experiments</a>' in viewer


def test_it_lists_runs_with_default_columns(world, three):
    response = signed_in(world.viewer).get(page(world))
    body = response.content.decode()
    assert response.status_code == 200
    assert row_names(body) == ["lr-mid", "lr-big", "lr-small"]
    # The algorithm's default objective is a column by default, sorted best-first on a click: a loss ascending.
    assert 'data-col="metric:validation:loss"' in body and "0.25" in body and "0.41" in body
    assert '<a href="?sort=metric%3Avalidation%3Aloss">validation:loss</a>' in body
    assert '<a class="chip" href="?tag=baseline">baseline</a>' in body
    assert '<span class="badge running"' in body and 'data-testid="select-run"' in body
    assert "1\u20133 of 3 runs" in body


def test_it_filters_sorts_and_pages(world, three):
    client = signed_in(world.viewer)
    body = client.get(page(world), {"sort": "-metric:validation:accuracy"}).content.decode()
    assert row_names(body) == ["lr-small", "lr-big", "lr-mid"]
    assert 'data-col="name"' in body and 'aria-sort="descending"' not in body.split('data-col="name"')[1][:40]
    assert client.get(page(world), {"q": "metric:validation:accuracy>=0.9"}).content.decode().count(
        'data-testid="run-name"') == 1
    body = client.get(page(world), {"param": "optimizer=adam", "sort": "name"}).content.decode()
    assert row_names(body) == ["lr-mid", "lr-small"]
    assert 'data-testid="filter-chip">param:optimizer=adam ✕' in body
    paged = client.get(page(world), {"sort": "name", "page_size": "2"}).content.decode()
    assert row_names(paged) == ["lr-big", "lr-mid"] and "1\u20132 of 3 runs" in paged
    assert 'href="?sort=name&amp;page_size=2&amp;page=2"' in paged
    second = client.get(page(world), {"sort": "name", "page_size": "2", "page": "2"}).content.decode()
    assert row_names(second) == ["lr-small"]
    none = client.get(page(world), {"tag": "nothing"}).content.decode()
    assert "No run matches these filters" in none


def test_it_offers_the_projects_tags_as_a_filter(world, three):
    body = signed_in(world.viewer).get(page(world), {"tag": "baseline"}).content.decode()
    assert '<option value="baseline" selected>baseline</option>' in body and row_names(body) == ["lr-small"]
    # A second tag (from a chip link) rides along hidden, so filtering again keeps both.
    body = signed_in(world.viewer).get(page(world) + "?tag=baseline&tag=gone").content.decode()
    assert '<input type="hidden" name="tag" value="gone">' in body and row_names(body) == []


def test_it_answers_400_with_the_error_for_a_bad_filter(world, three):
    response = signed_in(world.viewer).get(page(world), {"q": "metric:validation:accuracy>=lots"})
    body = response.content.decode()
    assert response.status_code == 400
    assert 'data-testid="filter-errors"' in body and "<strong>q</strong>" in body and "lots" in body
    assert row_names(body) == []


def test_it_shows_the_chosen_columns(world, three):
    make_trial(three[1])
    client = signed_in(world.viewer)
    body = client.get(page(world), {"cols": "param:learning_rate,tuning_job,bogus,metric:validation:accuracy"}
                      ).content.decode()
    heads = re.findall(r'<th class="[^"]*" data-col="([^"]+)"', body)
    assert heads == ["name", "param:learning_rate", "tuning_job", "metric:validation:accuracy"]
    assert "tune-lr-big</a> <span class=\"muted\">#1</span>" in body
    # Without script, the columns form sends col= once per ticked box.
    body = client.get(page(world) + "?col=status&col=param:epochs").content.decode()
    assert re.findall(r'<th class="[^"]*" data-col="([^"]+)"', body) == ["name", "status", "param:epochs"]
    assert '<input type="checkbox" name="col" value="param:epochs" checked>' in body


def test_it_refreshes_just_the_table_for_htmx(world, three):
    body = signed_in(world.viewer).get(page(world), HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<div id="runs-live"') and "<html" not in body


def test_it_keeps_the_number_of_queries_constant(world, django_assert_max_num_queries):
    client = signed_in(world.viewer)
    cols = {"cols": "algorithm,status,tags,tuning_job,created_by,created_at,duration,metric:validation:loss,"
                    "param:learning_rate"}
    for i in range(3):
        make_trial(make_run(world.project, f"few-{i}", metrics={"validation:loss": i}, user=world.member))
    client.get(page(world), cols)  # warm the session and caches of the first request
    with django_assert_max_num_queries(12) as few:
        assert client.get(page(world), cols).status_code == 200
    for i in range(60):
        job = make_run(world.project, f"many-{i}", metrics={"validation:loss": i}, params={"learning_rate": i},
                       tags=["x"], user=world.member)
        if i % 2:
            make_trial(job)
    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        body = client.get(page(world), cols).content.decode()
    assert body.count('data-testid="run-name"') == 50 and len(many.captured_queries) == len(few.captured_queries)


# --- compare ------------------------------------------------------------------------------------


def compare_url(world, runs, **extra) -> str:
    query = "&".join([f"runs={','.join(str(r.id) for r in runs)}", *(f"{k}={v}" for k, v in extra.items())])
    return page(world, "compare/?" + query)


def test_it_compares_runs_with_charts_diff_and_best_values(world, three):
    a, b, c = three
    response = signed_in(world.viewer).get(compare_url(world, three))
    body = response.content.decode()
    assert response.status_code == 200 and "Compare 3 runs" in body
    data = json.loads(re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', body,
                                re.S).group(1))
    assert data["active"] == [str(c.id)] and [r["name"] for r in data["runs"]] == ["lr-small", "lr-big", "lr-mid"]
    chart = data["charts"][0]
    assert chart["metric"] == "validation:loss" and chart["figure"]["layout"]["uirevision"] == "validation:loss"
    assert [t["uid"] for t in chart["figure"]["data"]] == [str(a.id), str(b.id), str(c.id)]
    assert chart["figure"]["data"][0]["x"] == [1, 2, 3]
    # Differing hyperparameters are highlighted, equal ones are not.
    assert '<tr class="differs" data-param="learning_rate">' in body
    assert '<tr class="same" data-param="epochs">' in body and "2 of 3 differ" in body
    # Best final value per row by the declared direction: accuracy up, loss down.
    accuracy = body.split('<tr data-metric="validation:accuracy">')[1].split("</tr>")[0]
    assert '<td class="num best">0.91</td>' in accuracy and '<td class="num">0.84</td>' in accuracy
    loss = body.split('<tr data-metric="validation:loss">')[1].split("</tr>")[0]
    assert '<td class="num best">0.25</td>' in loss and "↓" in loss
    assert 'id="chart-parallel"' in body and '<option value="validation:loss" selected>' in body


def test_it_serves_the_tables_alone_for_a_live_refresh(world, three):
    body = signed_in(world.viewer).get(compare_url(world, three, partial="tables", metric="validation:accuracy")
                                       ).content.decode()
    assert body.lstrip().startswith("<div id=\"compare-tables\">") and "<html" not in body
    assert '<option value="validation:accuracy" selected>' in body


def test_it_falls_back_to_the_default_metric_of_a_stale_link(world, three):
    response = signed_in(world.viewer).get(compare_url(world, three, metric="validation:gone"))
    assert response.status_code == 200 and "No compared run has a final &#x27;validation:gone&#x27;" in (
        response.content.decode())


def test_it_answers_400_to_a_bad_selection(world, three):
    client = signed_in(world.viewer)
    for runs in (three[:1], [*three, *(make_run(world.project, f"r{i}") for i in range(48))]):
        response = client.get(compare_url(world, runs))
        assert response.status_code == 400 and 'data-testid="compare-error"' in response.content.decode()
    assert client.get(page(world, "compare/?runs=abc,def")).status_code == 400
    # The no-script form sends run= once per ticked box.
    ids = "&".join(f"run={r.id}" for r in three[:2])
    assert client.get(page(world, f"compare/?{ids}")).status_code == 200


def test_it_never_leaks_runs_of_other_teams(world, three):
    secret = make_run(world.other_project, "secret-run")
    member = signed_in(world.member)
    response = member.get(compare_url(world, [three[0], secret]))
    assert response.status_code == 404 and "secret-run" not in response.content.decode()
    assert member.get(compare_url(world, [three[0]]).replace(str(three[0].id), f"{three[0].id},{uuid.uuid4()}")
                      ).status_code == 404
    outsider = signed_in(world.outsider)
    assert outsider.get(page(world)).status_code == 404
    assert outsider.get(compare_url(world, three)).status_code == 404
    assert member.get(page(world, project=world.other_project)).status_code == 404
    anonymous = Client()
    assert anonymous.get(page(world)).status_code == 302
    assert anonymous.get(compare_url(world, three)).status_code == 302
