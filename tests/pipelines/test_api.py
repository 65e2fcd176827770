"""REST API of pipelines, executions, schedules and triggers: shapes, roles, tenancy and 400s naming the field."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from studio.pipelines.models import PipelineExecution
from tests.pipelines.conftest import advance, committed, drive, run_steps

pytestmark = pytest.mark.django_db

DEFINITION = {
    "parameters": {"value": 3, "source": ""},
    "steps": [
        {"name": "first", "type": "emit", "arguments": {"value": {"ref": "parameters.value"}}},
        {"name": "gate", "type": "check",
         "arguments": {"left": {"ref": "steps.first.value"}, "right": 2, "if_true": ["last"], "if_false": []}},
        {"name": "last", "type": "side", "arguments": {"value": "done"}},
    ],
}


def base(world, project=None) -> str:
    return f"/api/v1/projects/{(project or world.project).id}"


def create(world, api, *, name: str = "flow", definition=None, user=None) -> dict:
    response = api(user or world.member).post(f"{base(world)}/pipelines", {
        "name": name, "description": "emits then checks", "definition": definition or DEFINITION}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def run(world, api, pipeline: dict, parameters=None, user=None):
    with committed():
        return api(user or world.member).post(f"{base(world)}/pipelines/{pipeline['id']}/executions",
                                              {} if parameters is None else {"parameters": parameters},
                                              format="json")


@pytest.fixture
def pipeline(world, api, fake_kinds) -> dict:
    return create(world, api)


# --- pipelines ----------------------------------------------------------------------------------


def test_it_creates_lists_reads_updates_and_deletes_a_pipeline(world, api, pipeline):
    assert pipeline["name"] == "flow" and pipeline["version"] == 1 and pipeline["last_execution"] is None
    assert [s["name"] for s in pipeline["definition"]["steps"]] == ["first", "gate", "last"]
    assert pipeline["definition"]["parameters"] == {"value": 3, "source": ""}
    assert pipeline["created_by"] == "mark"
    viewer = api(world.viewer)
    listed = viewer.get(f"{base(world)}/pipelines").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == pipeline["id"]
    url = f"{base(world)}/pipelines/{pipeline['id']}"
    assert viewer.get(url).json()["description"] == "emits then checks"
    changed = {**DEFINITION, "parameters": {"value": 5, "source": ""}}
    response = api(world.member).patch(url, {"definition": changed, "name": "flow-2"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2 and response.json()["name"] == "flow-2"
    assert response.json()["definition"]["parameters"]["value"] == 5
    assert api(world.member).patch(url, {"description": "new words"}, format="json").json()["version"] == 2
    assert api(world.owner).delete(url).status_code == 204
    assert viewer.get(url).status_code == 404


def test_it_shows_each_pipelines_last_execution_in_the_list(world, api, pipeline):
    other = create(world, api, name="other")
    assert run(world, api, pipeline).status_code == 201
    second = run(world, api, pipeline).json()
    listed = {p["name"]: p for p in api(world.viewer).get(f"{base(world)}/pipelines").json()["results"]}
    assert listed["flow"]["last_execution"] == {"id": second["id"], "number": 2, "status": "pending"}
    assert listed["other"]["last_execution"] is None
    assert api(world.viewer).get(f"{base(world)}/pipelines/{other['id']}").json()["last_execution"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({"definition": {**DEFINITION, "steps": [{"name": "first", "type": "emit",
                                              "arguments": {"dataset": {"ref": "parameters.nope"}}}]}},
     "definition.steps.first.arguments.dataset"),
    ({"definition": {**DEFINITION, "steps": [{"name": "x", "type": "teleport", "arguments": {}}]}},
     "definition.steps.x.type"),
    ({"definition": {**DEFINITION, "parameters": {"bad name": 1}}}, "definition.parameters.bad name"),
    ({"definition": "not an object"}, "definition"),
    ({"name": ""}, "name"),
])
def test_it_refuses_a_bad_pipeline_naming_the_field(world, api, fake_kinds, body, field):
    response = api(world.member).post(f"{base(world)}/pipelines", {
        "name": "flow", "definition": DEFINITION, **body}, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert response.json()["detail"]


def test_it_refuses_a_second_pipeline_of_the_same_name_and_deleting_a_running_one(world, api, pipeline):
    again = api(world.member).post(f"{base(world)}/pipelines", {"name": "flow", "definition": DEFINITION},
                                   format="json")
    assert again.status_code == 400 and "name" in again.json()["errors"]
    run(world, api, pipeline)
    response = api(world.member).delete(f"{base(world)}/pipelines/{pipeline['id']}")
    assert response.status_code == 409 and "stop it" in response.json()["detail"]


# --- executions ---------------------------------------------------------------------------------


def test_it_starts_an_execution_and_shows_its_steps(world, api, pipeline, pipeline_tasks):
    response = run(world, api, pipeline, {"value": 4})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1 and body["status"] == "pending" and body["trigger"] == "manual"
    assert body["parameters"] == {"value": 4, "source": ""} and body["pipeline"] == pipeline["id"]
    assert [(s["name"], s["type"], s["status"]) for s in body["steps"]] == [
        ("first", "emit", "pending"), ("gate", "check", "pending"), ("last", "side", "pending")]
    assert body["steps"][1]["depends_on"] == ["first"] and body["steps"][2]["depends_on"] == ["gate"]
    assert pipeline_tasks.advances == [(body["id"], None)]  # a worker is asked once the row is committed
    drive(PipelineExecution.objects.get(id=body["id"]), pipeline_tasks)
    viewer = api(world.viewer)
    nested = viewer.get(f"{base(world)}/pipelines/{pipeline['id']}/executions/{body['id']}").json()
    flat = viewer.get(f"{base(world)}/pipeline-executions/{body['id']}").json()
    assert nested == flat
    assert nested["status"] == "completed" and nested["ended_at"] and nested["started_at"]
    first, gate, last = nested["steps"]
    assert first["outputs"]["value"] == 4 and first["status"] == "completed" and first["attempts"] == 1
    assert gate["outputs"] == {"result": True} and last["status"] == "completed"
    assert first["duration_seconds"] is not None and first["cached"] is False and first["links"] == []


def test_it_lists_executions_newest_first_and_filters_them(world, api, pipeline, pipeline_tasks):
    other = create(world, api, name="other")
    ids = [run(world, api, pipeline).json()["id"] for _ in range(3)]
    elsewhere = run(world, api, other).json()["id"]
    drive(PipelineExecution.objects.get(id=ids[0]), pipeline_tasks)
    viewer = api(world.viewer)
    listed = viewer.get(f"{base(world)}/pipelines/{pipeline['id']}/executions").json()
    assert [e["id"] for e in listed["results"]] == ids[::-1] and listed["count"] == 3
    assert [e["number"] for e in listed["results"]] == [3, 2, 1]
    done = viewer.get(f"{base(world)}/pipelines/{pipeline['id']}/executions?status=completed").json()
    assert [e["id"] for e in done["results"]] == [ids[0]]
    everything = viewer.get(f"{base(world)}/pipeline-executions").json()
    assert everything["count"] == 4 and everything["results"][0]["id"] == elsewhere
    only = viewer.get(f"{base(world)}/pipeline-executions?pipeline={other['id']}").json()
    assert [e["id"] for e in only["results"]] == [elsewhere]
    page = viewer.get(f"{base(world)}/pipelines/{pipeline['id']}/executions?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]


def test_it_refuses_bad_run_parameters_naming_them(world, api, pipeline):
    unknown = run(world, api, pipeline, {"valeu": 1})
    assert unknown.status_code == 400 and "parameters.valeu" in unknown.json()["errors"]
    wrong = run(world, api, pipeline, {"value": "three"})
    assert wrong.status_code == 400 and "parameters.value" in wrong.json()["errors"]
    not_object = run(world, api, pipeline, ["value", 1])
    assert not_object.status_code == 400 and "parameters" in not_object.json()["errors"]
    assert not PipelineExecution.objects.exists()


def test_it_does_not_show_an_execution_under_another_pipeline(world, api, pipeline):
    other = create(world, api, name="other")
    execution = run(world, api, pipeline).json()
    client = api(world.member)
    assert client.get(f"{base(world)}/pipelines/{other['id']}/executions/{execution['id']}").status_code == 404
    assert client.post(f"{base(world)}/pipelines/{other['id']}/executions/{execution['id']}/stop").status_code == 404


def test_it_stops_and_retries_an_execution(world, api, fake_kinds, pipeline_tasks):
    flow = create(world, api, name="waits", definition={"parameters": {}, "steps": [
        {"name": "ok", "type": "emit", "arguments": {"value": 1}},
        {"name": "job", "type": "wait", "depends_on": ["ok"], "arguments": {}}]})
    execution = run(world, api, flow).json()
    row = PipelineExecution.objects.get(id=execution["id"])
    for _ in range(2):  # "ok" runs, then "job" starts its job and waits on it
        advance(row)
        run_steps(pipeline_tasks)
    client = api(world.member)
    url = f"{base(world)}/pipelines/{flow['id']}/executions/{execution['id']}"
    early = client.post(f"{url}/retry")
    assert early.status_code == 409 and "only a failed or stopped" in early.json()["detail"]
    with committed():
        stopped = client.post(f"{url}/stop")
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopped"
    assert [s["status"] for s in stopped.json()["steps"]] == ["completed", "stopped"]
    assert fake_kinds.count("stop", "job") == 1
    assert client.post(f"{url}/stop").json()["status"] == "stopped"  # again: nothing changes
    with committed():
        again = client.post(f"{base(world)}/pipeline-executions/{execution['id']}/retry")
    assert again.status_code == 202 and again.json()["status"] == "running"
    assert [s["status"] for s in again.json()["steps"]] == ["completed", "pending"]


# --- schedules and triggers ---------------------------------------------------------------------


def test_it_manages_schedules(world, api, pipeline):
    url = f"{base(world)}/pipelines/{pipeline['id']}/schedules"
    client = api(world.member)
    response = client.post(url, {"cron": "0 6 * * 1-5", "timezone": "Europe/Paris", "name": "mornings",
                                 "parameters": {"value": 7}}, format="json")
    assert response.status_code == 201, response.json()
    schedule = response.json()
    assert schedule["cron"] == "0 6 * * 1-5" and schedule["enabled"] and schedule["parameters"] == {"value": 7}
    assert schedule["next_run_at"] and schedule["last_run_at"] is None and schedule["created_by"] == "mark"
    task = PeriodicTask.objects.get(name=f"pipeline-schedule:{schedule['id']}")
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "6", "1-5")
    assert api(world.viewer).get(url).json()["results"][0]["id"] == schedule["id"]
    patched = client.patch(f"{url}/{schedule['id']}", {"enabled": False, "cron": "@daily"}, format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["next_run_at"] is None and patched.json()["cron"] == "0 0 * * *"
    task.refresh_from_db()
    assert not task.enabled and task.crontab.hour == "0"
    assert client.delete(f"{url}/{schedule['id']}").status_code == 204
    assert not PeriodicTask.objects.filter(name__startswith="pipeline-schedule:").exists()
    assert client.get(f"{url}/{schedule['id']}").status_code == 404


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"cron": "0 25 * * *"}, "cron", "hour field '25'"),
    ({"cron": "every day"}, "cron", "5 fields"),
    ({"cron": "0 3 * * *", "timezone": "Moon/Base"}, "timezone", "time zone"),
    ({"cron": "0 3 * * *", "parameters": {"valeu": 1}}, "parameters.valeu", "Unknown parameter"),
    ({"cron": "0 3 * * *", "parameters": {"value": "x"}}, "parameters.value", "number"),
    ({}, "cron", "required"),
])
def test_it_refuses_a_bad_schedule_naming_the_field(world, api, pipeline, body, field, words):
    response = api(world.member).post(f"{base(world)}/pipelines/{pipeline['id']}/schedules", body, format="json")
    assert response.status_code == 400, response.json()
    assert words in " ".join(response.json()["errors"][field])
    assert not PeriodicTask.objects.filter(name__startswith="pipeline-schedule:").exists()


def test_it_manages_triggers(world, api, pipeline):
    url = f"{base(world)}/pipelines/{pipeline['id']}/triggers"
    client = api(world.member)
    response = client.post(url, {"event": "dataset_created", "filter": {"name_pattern": "sales-*"},
                                 "parameter": "source", "parameters": {"value": 9}}, format="json")
    assert response.status_code == 201, response.json()
    trigger = response.json()
    assert trigger["event"] == "dataset_created" and trigger["filter"] == {"name_pattern": "sales-*"}
    assert trigger["parameter"] == "source" and trigger["parameters"] == {"value": 9} and trigger["enabled"]
    assert api(world.viewer).get(url).json()["results"][0]["id"] == trigger["id"]
    assert api(world.viewer).get(f"{url}/{trigger['id']}").json()["last_fired_at"] is None
    bad = client.post(url, {"event": "model_version_approved", "filter": {"name_pattern": "x"}}, format="json")
    assert bad.status_code == 400 and "filter.name_pattern" in bad.json()["errors"]
    unknown = client.post(url, {"event": "dataset_deleted"}, format="json")
    assert unknown.status_code == 400 and "event" in unknown.json()["errors"]
    wrong = client.post(url, {"event": "dataset_created", "parameter": "value"}, format="json")
    assert wrong.status_code == 400 and "parameter" in wrong.json()["errors"]
    assert client.delete(f"{url}/{trigger['id']}").status_code == 204
    assert client.get(url).json()["count"] == 0


# --- what the builder offers --------------------------------------------------------------------


def test_it_lists_the_templates_and_step_types(world, api):
    client = api(world.viewer)
    templates = client.get(f"{base(world)}/pipeline-templates")
    assert templates.status_code == 200
    slugs = {t["slug"] for t in templates.json()}
    assert "train-evaluate-register-deploy" in slugs
    assert all({"slug", "name", "description", "definition"} <= set(t) for t in templates.json())
    types = client.get(f"{base(world)}/pipeline-step-types")
    assert types.status_code == 200
    palette = {t["type"]: t for t in types.json()}
    assert {"processing", "training", "tuning", "condition", "register", "deploy", "transform", "fail"} <= set(palette)
    assert any(a["name"] == "message" and a["required"] for a in palette["fail"]["arguments"])
    assert api(world.outsider).get(f"{base(world)}/pipeline-templates").status_code == 404


# --- roles and tenancy --------------------------------------------------------------------------


@pytest.fixture
def objects(world, api, pipeline) -> dict[str, str]:
    client = api(world.member)
    execution = run(world, api, pipeline).json()
    schedule = client.post(f"{base(world)}/pipelines/{pipeline['id']}/schedules", {"cron": "0 3 * * *"},
                           format="json").json()
    trigger = client.post(f"{base(world)}/pipelines/{pipeline['id']}/triggers", {"event": "dataset_created"},
                          format="json").json()
    p = f"{base(world)}/pipelines/{pipeline['id']}"
    return {"pipeline": p, "execution": f"{p}/executions/{execution['id']}",
            "flat": f"{base(world)}/pipeline-executions/{execution['id']}",
            "schedule": f"{p}/schedules/{schedule['id']}", "trigger": f"{p}/triggers/{trigger['id']}"}


READS = ["/pipelines", "{pipeline}", "{pipeline}/executions", "{execution}", "{flat}", "/pipeline-executions",
         "{pipeline}/schedules", "{schedule}", "{pipeline}/triggers", "{trigger}", "/pipeline-templates",
         "/pipeline-step-types"]
WRITES = [
    ("post", "/pipelines", {"name": "x", "definition": DEFINITION}),
    ("patch", "{pipeline}", {"name": "renamed"}),
    ("delete", "{pipeline}", None),
    ("post", "{pipeline}/executions", {}),
    ("post", "{execution}/stop", None),
    ("post", "{execution}/retry", None),
    ("post", "{flat}/stop", None),
    ("post", "{flat}/retry", None),
    ("post", "{pipeline}/schedules", {"cron": "0 3 * * *"}),
    ("patch", "{schedule}", {"enabled": False}),
    ("delete", "{schedule}", None),
    ("post", "{pipeline}/triggers", {"event": "dataset_created"}),
    ("delete", "{trigger}", None),
]


def _url(world, objects, path: str) -> str:
    return path.format(**objects) if path.startswith("{") else base(world) + path


def test_viewers_read_everything_and_may_write_nothing(world, api, objects):
    viewer = api(world.viewer)
    for path in READS:
        assert viewer.get(_url(world, objects, path)).status_code == 200, path
    executions = PipelineExecution.objects.count()
    for method, path, body in WRITES:
        response = getattr(viewer, method)(_url(world, objects, path), body, format="json")
        assert response.status_code == 403, (method, path, response.status_code)
    assert PipelineExecution.objects.count() == executions and PeriodicTask.objects.count() == 1


def test_outsiders_get_404_everywhere(world, api, objects):
    outsider = api(world.outsider)
    for path in READS:
        assert outsider.get(_url(world, objects, path)).status_code == 404, path
    for method, path, body in WRITES:
        response = getattr(outsider, method)(_url(world, objects, path), body, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
    # Their own project does not hold these objects either.
    theirs = base(world, world.other_project)
    for path in ["{pipeline}", "{flat}", "{schedule}", "{trigger}"]:
        url = _url(world, objects, path).replace(base(world), theirs)
        assert outsider.get(url).status_code == 404, url


# --- the schema ---------------------------------------------------------------------------------


def test_the_openapi_schema_describes_pipelines_without_warnings(world, api):
    out = io.StringIO()
    # --fail-on-warn: an undocumented field or an ambiguous serializer fails here, not in a client generator.
    call_command("spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", stdout=out)
    schema = json.loads(out.getvalue())
    paths = schema["paths"]
    for path in ["/api/v1/projects/{project_id}/pipelines", "/api/v1/projects/{project_id}/pipelines/{pipeline_id}",
                 "/api/v1/projects/{project_id}/pipelines/{pipeline_id}/executions",
                 "/api/v1/projects/{project_id}/pipelines/{pipeline_id}/executions/{execution_id}/stop",
                 "/api/v1/projects/{project_id}/pipeline-executions/{execution_id}/retry",
                 "/api/v1/projects/{project_id}/pipelines/{pipeline_id}/schedules/{schedule_id}",
                 "/api/v1/projects/{project_id}/pipelines/{pipeline_id}/triggers",
                 "/api/v1/projects/{project_id}/pipeline-templates",
                 "/api/v1/projects/{project_id}/pipeline-step-types"]:
        assert path in paths, path
    assert "post" in paths["/api/v1/projects/{project_id}/pipelines/{pipeline_id}/executions"]
