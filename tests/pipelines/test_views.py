"""Pipeline pages: list, gallery, builder (save, preview, run), schedules and triggers, the execution page.

Members build, save and run through the forms; viewers see every page without its edit controls and
their POSTs are refused; outsiders get a 404 for everything. Runs use the fake step kinds of
conftest.py (fast, deterministic) next to the real condition and fail kinds.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django_celery_beat.models import PeriodicTask

from studio.pipelines import engine, services
from studio.pipelines.models import Pipeline, PipelineExecution, PipelineSchedule, PipelineTrigger
from tests.conftest import PASSWORD
from tests.pipelines.conftest import committed, drive, start
from tests.training.factories import classification_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_kinds")]


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(world, suffix: str = "") -> str:
    return f"/projects/{world.project.id}/pipelines/{suffix}"


def definition(**overrides) -> dict:
    """emit → check (a real condition) → done if the threshold is high enough, else a real fail step."""
    value = {
        "parameters": {"threshold": 0.5, "note": "hello", "loud": False},
        "steps": [
            {"name": "first", "type": "emit", "depends_on": [],
             "arguments": {"value": {"ref": "parameters.threshold"}}},
            {"name": "check", "type": "condition", "depends_on": [],
             "arguments": {"left": {"ref": "steps.first.value"}, "op": ">=", "right": 0.3,
                           "if_true": ["done"], "if_false": ["too-low"]}},
            {"name": "done", "type": "emit", "depends_on": [], "arguments": {"value": 1}},
            {"name": "too-low", "type": "fail", "depends_on": [], "arguments": {"message": "below the bar"}},
        ],
    }
    value.update(overrides)
    return value


def make(world, name: str = "flow", **overrides) -> Pipeline:
    return services.pipeline_create(user=world.member, project=world.project, name=name,
                                    definition=definition(**overrides))


def page_data(body: str, script_id: str) -> dict:
    match = re.search(rf'<script id="{script_id}" type="application/json">(.*?)</script>', body, re.S)
    assert match, f"no {script_id} on the page"
    return json.loads(match.group(1))


def save_form(name: str, value, description: str = "") -> dict:
    return {"name": name, "description": description,
            "definition": value if isinstance(value, str) else json.dumps(value)}


# --- list and gallery -----------------------------------------------------------------------------


def test_it_shows_an_empty_list_with_the_next_steps(world):
    body = signed_in(world.member).get(page(world)).content.decode()
    assert "No pipelines yet" in body
    assert f'href="{page(world)}" class="active">Pipelines</a>' in body  # the left nav
    assert f'href="{page(world, "new/")}"' in body and f'href="{page(world, "templates/")}"' in body
    viewer = signed_in(world.viewer).get(page(world)).content.decode()
    assert "No pipelines yet" in viewer and "Members of this team can create pipelines." in viewer
    assert page(world, "new/") not in viewer and page(world, "templates/") not in viewer


def test_it_lists_pipelines_with_their_last_execution_and_count(world, pipeline_tasks):
    flow = make(world)
    make(world, name="idle")
    drive(start(world, flow), pipeline_tasks)
    last = drive(start(world, flow, parameters={"threshold": 0.1}), pipeline_tasks)
    body = signed_in(world.viewer).get(page(world)).content.decode()
    row = re.search(rf'<tr data-pipeline="{flow.id}">.*?</tr>', body, re.S).group(0)
    assert ">flow</a>" in row and '<td class="num">4</td>' in row
    assert f'href="{page(world, f"{flow.id}/executions/{last.id}/")}">#2</a>' in row
    assert '<span class="badge failed" data-testid="last-status">failed</span>' in row
    assert '<td class="num" data-testid="execution-count">2</td>' in row
    idle = re.search(r'<tr data-pipeline="[^"]+">(?:(?!</tr>).)*>idle</a>.*?</tr>', body, re.S).group(0)
    assert "never run" in idle and 'data-testid="execution-count">0</td>' in idle


def test_it_shows_the_gallery_and_creates_a_pipeline_from_a_template(world):
    client = signed_in(world.member)
    body = client.get(page(world, "templates/")).content.decode()
    assert 'data-template="train-evaluate-register-deploy"' in body
    assert body.count('<svg class="dag"') >= 3 and 'data-step="evaluate"' in body
    assert 'name="name" value="train-evaluate-register-deploy"' in body
    response = client.post(page(world, "templates/train-evaluate-register-deploy/"), {"name": "churn flow"})
    pipeline = Pipeline.objects.get(name="churn flow")
    assert response.status_code == 302 and response.url == page(world, f"{pipeline.id}/")
    assert [s["name"] for s in pipeline.definition["steps"]][:3] == ["split", "train", "evaluate"]
    assert pipeline.description.startswith("Splits a tabular dataset")
    # The name is taken now: the gallery comes back with the error on that card, and suggests a free one.
    again = client.post(page(world, "templates/train-evaluate-register-deploy/"), {"name": "churn flow"})
    assert again.status_code == 400 and "already exists" in again.content.decode()
    assert Pipeline.objects.count() == 1
    assert client.post(page(world, "templates/nope/"), {"name": "x"}).status_code == 404


def test_it_lets_viewers_browse_the_gallery_but_not_use_it(world):
    client = signed_in(world.viewer)
    body = client.get(page(world, "templates/")).content.decode()
    assert 'data-template="batch-scoring"' in body and 'data-testid="use-batch-scoring"' not in body
    assert client.post(page(world, "templates/batch-scoring/"), {"name": "x"}).status_code == 403
    assert not Pipeline.objects.exists()


# --- builder: new, save, preview -----------------------------------------------------------------------


def test_it_opens_an_empty_builder_with_the_palette_and_project_objects(world):
    dataset = classification_dataset(world.project)
    response = signed_in(world.member).get(page(world, "new/"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="name" value="pipeline"' in body and 'data-testid="palette"' in body
    assert 'data-testid="save-pipeline">Create pipeline</button>' in body
    data = page_data(body, "builder-data")
    assert data["definition"] == {"parameters": {}, "steps": []}
    types = [entry["type"] for entry in data["palette"]]
    assert types[:8] == ["processing", "training", "tuning", "condition", "register", "deploy", "transform", "fail"]
    training = next(entry for entry in data["palette"] if entry["type"] == "training")
    assert {"name": "model", "kind": "model"} in training["outputs"]
    dataset_arg = next(a for a in training["arguments"] if a["name"] == "dataset")
    assert (dataset_arg["kind"], dataset_arg["required"]) == ("dataset", True)
    assert data["objects"]["dataset"] == [{"id": str(dataset.id), "name": "churn"}]
    assert "validation:accuracy" in data["metrics"]["linear-learner"]
    assert data["dag_url"] == page(world, "dag/")
    assert signed_in(world.viewer).get(page(world, "new/")).status_code == 403


def test_it_creates_a_pipeline_from_the_builder(world):
    response = signed_in(world.member).post(page(world, "new/"), save_form("built", definition(), "mine"))
    pipeline = Pipeline.objects.get(name="built")
    assert response.status_code == 302 and response.url == page(world, f"{pipeline.id}/")
    assert pipeline.description == "mine" and pipeline.version == 1 and pipeline.created_by == world.member
    assert [s["name"] for s in pipeline.definition["steps"]] == ["first", "check", "done", "too-low"]


def test_it_shows_invalid_json_next_to_the_json_and_keeps_what_was_typed(world):
    broken = '{"parameters": {}, "steps": [ {"name": "a",, }'
    last_good = json.dumps(definition())
    response = signed_in(world.member).post(page(world, "new/"), {**save_form("broken", broken),
                                                                   "last_valid_definition": last_good})
    body = response.content.decode()
    assert response.status_code == 400 and not Pipeline.objects.exists()
    assert "Not valid JSON: Expecting property name enclosed in double quotes at line 1, column 44." in body
    assert 'data-testid="builder-errors"' in body
    # The JSON tab shows the text as typed; the step forms start from the last definition that parsed.
    assert '{&quot;name&quot;: &quot;a&quot;,, }</textarea>' in body
    data = page_data(body, "builder-data")
    assert data["json_active"] is True and data["definition"]["steps"][0]["name"] == "first"


def test_it_names_the_step_and_argument_a_definition_error_is_about(world):
    bad = definition()
    bad["steps"][2]["arguments"]["value"] = {"ref": "steps.ghost.model"}
    bad["steps"][1]["arguments"]["op"] = "≈"
    response = signed_in(world.member).post(page(world, "new/"), save_form("bad", bad))
    body = response.content.decode()
    assert response.status_code == 400 and not Pipeline.objects.exists()
    assert "definition.steps.done.arguments.value" in body and "ghost" in body
    assert "definition.steps.check.arguments.op" in body
    data = page_data(body, "builder-data")
    assert set(data["errors"]["steps"]) == {"done", "check"}
    assert data["errors"]["steps"]["done"][0]["field"] == "arguments.value"
    assert data["json_active"] is False  # the JSON parsed: the problems are shown on the step forms
    assert data["definition"]["steps"][2]["arguments"]["value"] == {"ref": "steps.ghost.model"}


def test_it_saves_a_new_version_from_the_builder(world):
    pipeline = make(world)
    changed = definition(parameters={"threshold": 0.9, "note": "", "loud": True})
    response = signed_in(world.member).post(page(world, f"{pipeline.id}/"), save_form("renamed", changed, "v2"))
    assert response.status_code == 302 and response.url == page(world, f"{pipeline.id}/")
    pipeline.refresh_from_db()
    assert (pipeline.name, pipeline.description, pipeline.version) == ("renamed", "v2", 2)
    assert pipeline.definition["parameters"]["threshold"] == 0.9


def test_it_keeps_the_saved_pipeline_when_a_save_is_refused(world):
    pipeline = make(world)
    make(world, name="taken")
    bad = definition()
    bad["steps"].append({"name": "first", "type": "emit", "arguments": {}})
    response = signed_in(world.member).post(page(world, f"{pipeline.id}/"), save_form("taken", bad))
    body = response.content.decode()
    assert response.status_code == 400
    assert "A pipeline named &#x27;taken&#x27; already exists in this project." in body
    assert "definition.steps" in body and "first" in body
    pipeline.refresh_from_db()
    assert pipeline.name == "flow" and pipeline.version == 1 and len(pipeline.definition["steps"]) == 4


def test_it_draws_the_dag_preview_of_what_the_builder_holds(world):
    client = signed_in(world.member)
    response = client.post(page(world, "dag/"), {"definition": json.dumps(definition())})
    body = response.content.decode()
    assert response.status_code == 200 and body.count('<g class="node"') == 4
    assert 'data-from="check" data-to="too-low"' in body and 'class="edge false"' in body
    assert '<text class="edge-label true"' in body
    # Half-typed JSON or an empty definition draws the empty state rather than failing.
    assert "No steps yet" in client.post(page(world, "dag/"), {"definition": "{"}).content.decode()
    assert signed_in(world.viewer).post(page(world, "dag/"), {"definition": "{}"}).status_code == 403


def test_it_shows_members_the_builder_with_run_and_delete(world):
    pipeline = make(world)
    body = signed_in(world.member).get(page(world, f"{pipeline.id}/")).content.decode()
    for control in ('data-testid="save-pipeline">Save</button>', 'data-testid="run-pipeline"',
                    'data-testid="delete-pipeline"', 'data-testid="palette"', 'id="step-editor"',
                    'data-testid="schedule-form"', 'data-testid="trigger-form"', 'id="run-dialog"'):
        assert control in body, control
    assert '<svg class="dag"' in body and body.count('<g class="node"') == 4
    data = page_data(body, "builder-data")
    assert data["definition"]["steps"][1]["name"] == "check"
    # The run form has one input per parameter, typed by its default.
    assert 'type="number" step="any" id="id_param_threshold" name="param_threshold" value="0.5"' in body
    assert 'id="id_param_note" name="param_note" value="hello"' in body
    assert 'type="checkbox" id="id_param_loud" name="param_loud" value="true">' in body


def test_it_shows_viewers_the_pipeline_read_only(world, pipeline_tasks):
    pipeline = make(world)
    drive(start(world, pipeline), pipeline_tasks)
    body = signed_in(world.viewer).get(page(world, f"{pipeline.id}/")).content.decode()
    assert '<svg class="dag"' in body and 'data-step-row="check"' in body
    assert "readonly" in re.search(r'<textarea id="id_definition"[^>]*>', body).group(0)
    assert '<td class="mono">threshold</td><td>number</td><td class="mono">0.5</td>' in body
    assert 'data-testid="executions"' in body and ">#1</a>" in body
    for control in ('data-testid="save-pipeline"', 'data-testid="run-pipeline"', 'data-testid="delete-pipeline"',
                    'data-testid="palette"', 'id="step-editor"', 'data-testid="schedule-form"',
                    'data-testid="trigger-form"', "builder-data", 'id="run-dialog"'):
        assert control not in body, control


def test_it_refuses_every_change_to_viewers(world, pipeline_tasks):
    pipeline = make(world)
    failed = drive(start(world, pipeline, parameters={"threshold": 0.1}), pipeline_tasks)
    schedule_id = PipelineSchedule.objects.create(pipeline=pipeline, cron="0 3 * * *").id
    trigger_id = PipelineTrigger.objects.create(pipeline=pipeline, event="dataset_created").id
    client = signed_in(world.viewer)
    execution = f"{pipeline.id}/executions/{failed.id}/"
    posts = {
        page(world, f"{pipeline.id}/"): save_form("mine", definition()),
        page(world, "new/"): save_form("mine", definition()),
        page(world, f"{pipeline.id}/run/"): {"param_threshold": "0.9"},
        page(world, f"{pipeline.id}/delete/"): {},
        page(world, f"{pipeline.id}/schedules/"): {"cron": "* * * * *"},
        page(world, f"{pipeline.id}/schedules/{schedule_id}/toggle/"): {},
        page(world, f"{pipeline.id}/schedules/{schedule_id}/delete/"): {},
        page(world, f"{pipeline.id}/triggers/"): {"event": "dataset_created"},
        page(world, f"{pipeline.id}/triggers/{trigger_id}/delete/"): {},
        page(world, execution + "stop/"): {},
        page(world, execution + "retry/"): {},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    assert client.get(page(world, f"{pipeline.id}/run/")).status_code == 403
    pipeline.refresh_from_db()
    assert pipeline.version == 1 and pipeline.executions.count() == 1
    assert PipelineSchedule.objects.get().enabled and PipelineTrigger.objects.exists()


def test_it_deletes_a_pipeline_unless_an_execution_runs(world):
    pipeline = make(world)
    running = start(world, pipeline)
    client = signed_in(world.member)
    response = client.post(page(world, f"{pipeline.id}/delete/"), follow=True)
    assert "stop it before deleting" in response.content.decode() and Pipeline.objects.exists()
    PipelineExecution.objects.filter(id=running.id).update(status="completed")
    response = client.post(page(world, f"{pipeline.id}/delete/"))
    assert response.status_code == 302 and response.url == page(world) and not Pipeline.objects.exists()


# --- run -----------------------------------------------------------------------------------------


def test_it_runs_a_pipeline_with_typed_parameter_values(world, pipeline_tasks):
    pipeline = make(world)
    client = signed_in(world.member)
    form = client.get(page(world, f"{pipeline.id}/run/")).content.decode()
    assert 'value="0.5"' in form and 'data-testid="start-run"' in form
    with committed():
        response = client.post(page(world, f"{pipeline.id}/run/"),
                               {"param_threshold": "0.25", "param_note": "", "param_loud": ["false", "true"]})
    execution = PipelineExecution.objects.get()
    assert response.status_code == 302
    assert response.url == page(world, f"{pipeline.id}/executions/{execution.id}/")
    assert execution.parameters == {"threshold": 0.25, "note": "", "loud": True}
    assert execution.created_by == world.member and execution.trigger == "manual"
    assert pipeline_tasks.advances  # handed to the workers


def test_it_keeps_defaults_for_numbers_left_empty(world, pipeline_tasks):
    pipeline = make(world)
    signed_in(world.member).post(page(world, f"{pipeline.id}/run/"), {"param_threshold": "  "})
    assert PipelineExecution.objects.get().parameters["threshold"] == 0.5


def test_it_names_a_parameter_the_engine_refuses(world):
    pipeline = make(world)
    response = signed_in(world.member).post(page(world, f"{pipeline.id}/run/"), {"param_threshold": "high"})
    body = response.content.decode()
    assert response.status_code == 400 and not PipelineExecution.objects.exists()
    assert re.search(r'name="param_threshold" value="high".*?data-testid="run-error">[^<]*number', body, re.S)


# --- schedules and triggers -------------------------------------------------------------------------


def test_it_adds_pauses_and_removes_a_schedule(world):
    pipeline = make(world)
    client = signed_in(world.member)
    response = client.post(page(world, f"{pipeline.id}/schedules/"),
                           {"cron": "0 3 * * 1", "timezone": "Europe/Paris", "schedule_name": "weekly",
                            "schedule_parameters": '{"threshold": 0.8}'})
    assert response.status_code == 302 and response.url.endswith(f"{pipeline.id}/#automation")
    schedule = PipelineSchedule.objects.get()
    assert (schedule.cron, schedule.timezone, schedule.name, schedule.parameters) == (
        "0 3 * * 1", "Europe/Paris", "weekly", {"threshold": 0.8})
    body = client.get(page(world, f"{pipeline.id}/")).content.decode()
    assert f'data-schedule="{schedule.id}"' in body and "0 3 * * 1" in body and "threshold=0.8" in body
    client.post(page(world, f"{pipeline.id}/schedules/{schedule.id}/toggle/"))
    schedule.refresh_from_db()
    assert not schedule.enabled and not PeriodicTask.objects.get(id=schedule.periodic_task_id).enabled
    client.post(page(world, f"{pipeline.id}/schedules/{schedule.id}/delete/"))
    assert not PipelineSchedule.objects.exists() and not PeriodicTask.objects.filter(
        name__startswith="pipeline-schedule:").exists()


def test_it_shows_schedule_errors_in_the_form(world):
    pipeline = make(world)
    client = signed_in(world.member)
    response = client.post(page(world, f"{pipeline.id}/schedules/"),
                           {"cron": "every day", "timezone": "UTC", "schedule_parameters": '{"nope": 1}'})
    body = response.content.decode()
    assert response.status_code == 400 and not PipelineSchedule.objects.exists()
    form = re.search(r'data-testid="schedule-form">.*?</form>', body, re.S).group(0)
    assert 'value="every day"' in form and form.count('<p class="error">') >= 1
    assert "nope" in body
    broken = client.post(page(world, f"{pipeline.id}/schedules/"), {"cron": "* * * * *", "schedule_parameters": "{"})
    assert broken.status_code == 400 and "Not valid JSON" in broken.content.decode()


def test_it_adds_and_removes_triggers(world):
    pipeline = make(world)
    client = signed_in(world.member)
    response = client.post(page(world, f"{pipeline.id}/triggers/"),
                           {"event": "dataset_created", "filter": "customers*", "parameter": "note",
                            "trigger_parameters": '{"threshold": 0.7}'})
    assert response.status_code == 302
    trigger = PipelineTrigger.objects.get()
    assert (trigger.event, trigger.filter, trigger.parameter, trigger.parameters) == (
        "dataset_created", {"name_pattern": "customers*"}, "note", {"threshold": 0.7})
    client.post(page(world, f"{pipeline.id}/triggers/"), {"event": "model_version_approved", "filter": "churn"})
    assert PipelineTrigger.objects.get(event="model_version_approved").filter == {"model_group": "churn"}
    body = client.get(page(world, f"{pipeline.id}/")).content.decode()
    assert "name_pattern=customers*" in body and "parameters.note" in body
    # A number parameter cannot receive an id: the error is shown under the parameter select.
    bad = client.post(page(world, f"{pipeline.id}/triggers/"), {"event": "dataset_created", "parameter": "threshold"})
    assert bad.status_code == 400 and "takes a number" in bad.content.decode()
    client.post(page(world, f"{pipeline.id}/triggers/{trigger.id}/delete/"))
    assert PipelineTrigger.objects.count() == 1


# --- executions ---------------------------------------------------------------------------------------


def test_it_draws_the_execution_dag_coloured_by_status_with_links(world, pipeline_tasks):
    dataset = classification_dataset(world.project)
    pipeline = make(world, steps=[
        *definition()["steps"][:3],
        {"name": "too-low", "type": "fail", "depends_on": [], "arguments": {"message": "below the bar"}},
        {"name": "keep", "type": "emit", "depends_on": ["done"], "arguments": {"dataset": str(dataset.id)}},
    ])
    execution = drive(start(world, pipeline), pipeline_tasks)
    response = signed_in(world.viewer).get(page(world, f"{pipeline.id}/executions/{execution.id}/"))
    body = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'data-testid="execution-status" title="Completed: [^"]*">completed</span>', body)
    assert re.search(r'<g class="node status-completed" data-step="first"', body)
    assert re.search(r'<g class="node status-skipped" data-step="too-low"', body)
    # A step's first link is on its node; every link is in the steps table.
    dataset_url = f"/projects/{world.project.id}/data/{dataset.id}/"
    assert re.search(rf'data-step="keep".*?<a class="node-link" href="{dataset_url}">', body, re.S)
    assert f'<a href="{dataset_url}" data-testid="step-link">Dataset</a>' in body
    assert 'data-testid="condition-result">result=true</div>' in body
    data = page_data(body, "execution-data")
    assert data["ws"] == f"/ws/pipeline-executions/{execution.id}/"
    assert data["execution"]["status"] == "completed" and data["steps"][0]["name"] == "first"
    assert data["panel_url"] == page(world, f"{pipeline.id}/executions/{execution.id}/panel/")
    assert "stop-execution" not in body and "retry-execution" not in body
    assert '<td class="mono">threshold</td><td class="mono">0.5</td>' in body


def test_it_shows_a_second_identical_run_as_cached(world, pipeline_tasks):
    pipeline = make(world)
    first = drive(start(world, pipeline), pipeline_tasks)
    second = drive(start(world, pipeline), pipeline_tasks)
    body = signed_in(world.member).get(page(world, f"{pipeline.id}/executions/{second.id}/")).content.decode()
    assert re.search(r'<g class="node status-cached cached" data-step="first".*?>cached</text>', body, re.S)
    first_url = page(world, f"{pipeline.id}/executions/{first.id}/")
    assert re.search(rf'<span class="badge cached" title="[^"]*">cached</span> <span class="muted small" '
                     rf'data-testid="cached-from">from <a href="{first_url}">#1</a>', body)


def test_it_stops_a_running_execution_and_retries_a_failed_one(world, pipeline_tasks):
    pipeline = make(world)
    running = start(world, pipeline)
    url = page(world, f"{pipeline.id}/executions/{running.id}/")
    client = signed_in(world.member)
    body = client.get(url).content.decode()
    assert 'data-testid="stop-execution"' in body and "retry-execution" not in body
    assert 'data-testid="stop-execution"' not in signed_in(world.viewer).get(url).content.decode()
    response = client.post(url + "stop/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="execution-panel"' in response.content.decode()
    running.refresh_from_db()
    assert running.status in ("stopping", "stopped")

    failed = drive(start(world, pipeline, parameters={"threshold": 0.1}), pipeline_tasks)
    failed_url = page(world, f"{pipeline.id}/executions/{failed.id}/")
    body = client.get(failed_url).content.decode()
    assert 'data-testid="failure-reason"' in body and "below the bar" in body
    assert 'data-testid="retry-execution"' in body
    with committed():
        response = client.post(failed_url + "retry/")
    assert response.status_code == 302 and response.url == failed_url
    failed.refresh_from_db()
    assert failed.status in ("pending", "running")
    # Retrying what is not failed is refused with the engine's reason, not a 500.
    completed = drive(start(world, pipeline), pipeline_tasks)
    conflict = client.post(page(world, f"{pipeline.id}/executions/{completed.id}/retry/"), HTTP_HX_REQUEST="true")
    assert conflict.status_code == 409 and 'class="alert error"' in conflict.content.decode()


def test_it_serves_the_execution_panel_for_live_refreshes(world, pipeline_tasks):
    pipeline = make(world)
    execution = drive(start(world, pipeline, parameters={"threshold": 0.1}), pipeline_tasks)
    response = signed_in(world.viewer).get(page(world, f"{pipeline.id}/executions/{execution.id}/panel/"))
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="execution-panel"')
    assert 'data-step-row="too-low"' in body and 'data-testid="step-failure">below the bar' in body


def test_it_lists_the_execution_history_on_the_pipeline_page(world, pipeline_tasks):
    pipeline = make(world)
    drive(start(world, pipeline, parameters={"threshold": 0.1, "note": "try"}), pipeline_tasks)
    with committed():
        engine.pipeline_execution_start(user=world.owner, pipeline=pipeline, trigger="schedule",
                                        trigger_detail={"schedule": "x"})
    body = signed_in(world.viewer).get(page(world, f"{pipeline.id}/")).content.decode()
    rows = re.findall(r'<tr data-execution="[^"]+">.*?</tr>', body, re.S)
    assert len(rows) == 2
    assert ">#2</a>" in rows[0] and "Schedule" in rows[0] and '<span class="badge pending"' in rows[0]
    assert ">#1</a>" in rows[1] and "Manual" in rows[1] and "by mark" in rows[1]
    assert "threshold=0.1" in rows[1] and "note=try" in rows[1] and '<span class="badge failed"' in rows[1]
    assert re.search(r'<td class="num">\d+\.\d s</td>', rows[1])


def test_it_hides_every_pipeline_page_from_outsiders(world, pipeline_tasks):
    pipeline = make(world)
    execution = drive(start(world, pipeline), pipeline_tasks)
    schedule_id = PipelineSchedule.objects.create(pipeline=pipeline, cron="0 3 * * *").id
    trigger_id = PipelineTrigger.objects.create(pipeline=pipeline, event="dataset_created").id
    client = signed_in(world.outsider)
    run = f"{pipeline.id}/executions/{execution.id}/"
    for suffix in ("", "new/", "templates/", f"{pipeline.id}/", f"{pipeline.id}/run/", run, run + "panel/"):
        assert client.get(page(world, suffix)).status_code == 404, suffix
    schedule, trigger = f"{pipeline.id}/schedules/{schedule_id}/", f"{pipeline.id}/triggers/{trigger_id}/"
    for suffix in ("new/", "dag/", "templates/batch-scoring/", f"{pipeline.id}/", f"{pipeline.id}/run/",
                   f"{pipeline.id}/delete/", f"{pipeline.id}/schedules/", schedule + "delete/", schedule + "toggle/",
                   f"{pipeline.id}/triggers/", trigger + "delete/", run + "stop/", run + "retry/"):
        assert client.post(page(world, suffix), {"name": "x", "definition": "{}"}).status_code == 404, suffix
    # Ids of this project's objects under the outsider's own project are not found either.
    other = f"/projects/{world.other_project.id}/pipelines/{pipeline.id}/"
    assert client.get(other).status_code == 404
    assert client.get(f"/projects/{world.other_project.id}/pipelines/").status_code == 200
    assert Pipeline.objects.filter(id=pipeline.id).exists() and PipelineSchedule.objects.exists()


def test_it_does_not_show_an_execution_under_another_pipelines_url(world, pipeline_tasks):
    first, second = make(world), make(world, name="second")
    execution = start(world, first)
    client = signed_in(world.member)
    assert client.get(page(world, f"{second.id}/executions/{execution.id}/")).status_code == 404
    assert client.post(page(world, f"{second.id}/executions/{execution.id}/stop/")).status_code == 404
