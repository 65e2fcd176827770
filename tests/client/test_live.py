"""The client and the `studio` command against a live server (uvicorn, a Celery worker, the endpoint agent):
upload → train → wait with logs → deploy → predict → delete, tuning, batch transform, a pipeline run, errors."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from studio.accounts import services as account_services
from studio.client import Studio, StudioError
from studio.client.http import JobFailed
from studio.endpoints.services import endpoints_reconcile
from tests.conftest import classification_csv
from tests.processes import ROOT, celery_worker, endpoint_agent, web_server

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_login")]

LOGS = ("web.log", "worker.log", "agent.log")


def token_for(user) -> str:
    _, secret = account_services.api_token_create(user=user, name=f"client-{uuid.uuid4().hex[:6]}")
    return secret


def pipeline_definition() -> dict:
    return {
        "parameters": {"data": "churn", "threshold": 0.7},
        "steps": [
            {"name": "train", "type": "training", "arguments": {
                "algorithm": "linear-learner", "dataset": {"ref": "parameters.data"}, "target": "churned",
                "validation_fraction": 0.25, "hyperparameters": {"epochs": 3}}},
            {"name": "good", "type": "condition", "arguments": {
                "left": {"ref": "steps.train.metrics.validation:accuracy"}, "op": ">=",
                "right": {"ref": "parameters.threshold"}, "if_false": ["too_weak"]}},
            {"name": "too_weak", "type": "fail", "arguments": {"message": "accuracy below the threshold"}},
        ],
    }


def dump_logs(tmp_path: Path) -> None:
    for log in LOGS:  # what the servers said is the first thing to read
        path = tmp_path / log
        if path.exists():
            print(f"--- {log} ---\n" + path.read_text(errors="replace")[-4000:])


def test_it_uploads_trains_deploys_predicts_and_deletes_with_the_client(world, tmp_path):
    csv_path = tmp_path / "churn.csv"
    csv_path.write_bytes(classification_csv())
    token = token_for(world.member)
    try:
        with ExitStack() as stack:
            base = stack.enter_context(web_server(tmp_path / "web.log"))
            stack.enter_context(celery_worker(tmp_path / "worker.log"))
            stack.enter_context(endpoint_agent(tmp_path / "agent.log"))
            client_session(base, token, csv_path, str(world.project.id))
    except Exception:
        dump_logs(tmp_path)
        raise


def client_session(base: str, token: str, csv_path: Path, project_id: str) -> None:
    studio = Studio(base, token)
    assert studio.me()["username"] == "mark"
    assert [p.name for p in studio.projects.list()] == ["Churn"]
    project = studio.project("Churn")
    assert project.id == project_id and studio.project("acme-ml/Churn") == project

    # Upload (streamed multipart), then train by the dataset's name and follow the logs.
    data = project.datasets.upload(csv_path, name="churn", target="churned")
    assert (data.status, data.rows, data.target) == ("ready", 300, "churned")
    assert project.datasets.get("churn") == data
    job = project.train("linear-learner", "churn", target="churned", hyperparameters={"epochs": 3},
                        validation_fraction=0.25)
    assert job.status == "pending"
    printed = io.StringIO()
    assert job.wait(logs=True, out=printed) is job
    assert job.status == "completed", job.data
    # Every line of the log was printed once, in order, as it came.
    assert printed.getvalue() == job.logs() and printed.getvalue().count("\n") >= 3
    series = job.metrics()
    assert [step for step, _, _ in series["train:loss"]] == [1, 2, 3]
    assert job.final_metrics["validation:accuracy"] >= 0.8

    # The model: registered and approved, then deployed and invoked three ways.
    model = job.model
    assert model.algorithm == "linear-learner" and model.training_job == job.id
    version = model.register("churn-models", approve=True)
    assert (version.number, version.approval_status) == (1, "approved")
    with pytest.raises(StudioError) as twice:  # the group is found by name; the model is in it already
        model.register("churn-models")
    assert twice.value.status == 409 and "already version 1" in twice.value.message
    endpoint = model.deploy(name="churn-live", instance_count=1)
    assert endpoint.status == "creating"
    assert endpoint.wait(timeout=120).status == "in_service"
    answer = endpoint.predict([[2.0, 2.0], [-2.0, -2.0]])
    assert [p["label"] for p in answer["predictions"]] == ["yes", "no"] and answer["variant"] == "primary"
    assert endpoint.predict({"instances": [{"f1": 2.0, "f2": 2.0}]})["predictions"][0]["label"] == "yes"
    assert endpoint.predict("-2.0,-2.0\n", "text/csv")["predictions"][0]["label"] == "no"
    # An invoke key alone is enough to call it.
    key = endpoint.create_key("ci")
    keyed = Studio(base, None).invoke(endpoint.id, [[2.0, 2.0]], key=key)
    assert keyed["predictions"][0]["label"] == "yes"

    # Batch transform over the dataset, then the tuning of the same model.
    transform = project.transform(model, data, join_source="none", wait=True)
    assert transform.status == "completed" and transform.records_done == 300
    assert transform.output_dataset.rows == 300
    tuning = project.tune("linear-learner", data, target="churned", objective="validation:accuracy",
                          ranges={"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.5, "scale": "log"}},
                          static_hyperparameters={"epochs": 2}, strategy="random", max_jobs=2, max_parallel_jobs=1,
                          validation_fraction=0.25)
    assert tuning.wait().status == "completed", tuning.data
    assert tuning.counts["completed"] == 2 and len(tuning.trials()) == 2
    best = tuning.best_training_job
    assert best.status == "completed" and best.id in {t["id"] for t in tuning.trials()}

    # A pipeline: created, run with a parameter, waited for; then a run that fails its condition.
    pipeline = project.pipelines.create("churn-check", pipeline_definition())
    execution = pipeline.start({"threshold": 0.6}, wait=True)
    assert execution.status == "completed"
    assert {name: s["status"] for name, s in execution.steps.items()} == {
        "train": "completed", "good": "completed", "too_weak": "skipped"}
    with pytest.raises(JobFailed) as failed:
        pipeline.start({"threshold": 1.5}).wait()
    assert "accuracy below the threshold" in str(failed.value)
    assert failed.value.resource.status == "failed"
    assert [e.status for e in pipeline.executions()] == ["failed", "completed"]

    # Delete: waiting returns once the instance stopped; the row goes at the next reconcile pass (beat's task).
    endpoint.delete(wait=True, timeout=120)
    assert {i["status"] for i in endpoint.instances()} <= {"stopped", "failed"}
    endpoints_reconcile()
    with pytest.raises(StudioError) as gone:
        endpoint.refresh()
    assert gone.value.status == 404
    assert project.endpoints.list() == []


def test_it_reports_errors_with_the_servers_status_and_message(world, tmp_path):
    with web_server(tmp_path / "web.log") as base:
        with pytest.raises(StudioError) as bad_token:
            Studio(base, "stu_not-a-real-token").projects.list()
        assert bad_token.value.status == 401 and "token" in bad_token.value.message.lower()

        studio = Studio(base, token_for(world.member))
        project = studio.project(str(world.project.id))
        with pytest.raises(StudioError) as unknown:
            project.train("linear-learner", "no-such-data", target="y")
        assert unknown.value.status == 404
        assert unknown.value.message == "No dataset 'no-such-data' in project 'Churn'."
        with pytest.raises(StudioError) as unknown_id:
            project.datasets.get(str(uuid.uuid4()))
        assert unknown_id.value.status == 404 and unknown_id.value.message
        # An id is passed through: the server names the field it refuses.
        with pytest.raises(StudioError) as refused:
            project.train("linear-learner", str(uuid.uuid4()), target="y")
        assert refused.value.status == 400 and "dataset" in refused.value.errors
        with pytest.raises(StudioError) as bad_algorithm:
            project.training_jobs.create({"algorithm": "nope", "dataset": str(uuid.uuid4())})
        assert bad_algorithm.value.status == 400 and "algorithm" in bad_algorithm.value.errors

        # Another team's project is absent (404), by id or by name; a viewer may read, not write (403).
        with pytest.raises(StudioError) as hidden:
            studio.project(str(world.other_project.id))
        assert hidden.value.status == 404
        with pytest.raises(StudioError) as hidden_name:
            studio.project("Secret")
        assert hidden_name.value.status == 404
        viewer = Studio(base, token_for(world.viewer)).project("Churn")
        assert viewer.datasets.list() == []
        csv_path = tmp_path / "churn.csv"
        csv_path.write_bytes(classification_csv(n=20))
        with pytest.raises(StudioError) as forbidden:
            viewer.datasets.upload(csv_path)
        assert forbidden.value.status == 403


def cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio.client", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_it_runs_the_flow_from_the_command_line(world, tmp_path):
    csv_path = tmp_path / "churn.csv"
    csv_path.write_bytes(classification_csv())
    definition = tmp_path / "pipeline.json"
    definition.write_text(json.dumps(pipeline_definition()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    token = token_for(world.member)
    try:
        with ExitStack() as stack:
            base = stack.enter_context(web_server(tmp_path / "web.log"))
            stack.enter_context(celery_worker(tmp_path / "worker.log"))
            stack.enter_context(endpoint_agent(tmp_path / "agent.log"))
            cli_session(base, token, env, csv_path, definition, tmp_path)
    except Exception:
        dump_logs(tmp_path)
        raise


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def cli_session(base: str, token: str, env: dict[str, str], csv_path: Path, definition: Path, tmp_path: Path) -> None:
    # Errors first: a refused token exits 1 with the server's message, and nothing is saved.
    refused = cli("login", "--url", base, "--token", "stu_wrong", env=env)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr and refused.stdout == ""
    assert "Logged in" in ok(cli("login", "--url", base, "--token", token, "--project", "Churn", env=env))
    config = tmp_path / "config" / "studio" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "Churn" in ok(cli("projects", "list", env=env))

    uploaded = json.loads(ok(cli("datasets", "upload", str(csv_path), "--target", "churned", "--json", env=env)))
    assert (uploaded["name"], uploaded["rows"]) == ("churn", 300)
    unknown = cli("train", "--algorithm", "linear-learner", "--dataset", "nope", "--target", "churned", env=env)
    assert unknown.returncode == 1 and "No dataset 'nope' in project 'Churn'. (HTTP 404)" in unknown.stderr

    # Train and wait: the logs stream on stderr (with --json), the finished job is the JSON on stdout.
    trained = cli("train", "--algorithm", "linear-learner", "--dataset", "churn", "--target", "churned",
                  "--hp", "epochs=3", "--validation-fraction", "0.25", "--wait", "--json", env=env)
    job = json.loads(ok(trained))
    assert job["status"] == "completed" and job["hyperparameters"]["epochs"] == 3
    logs = ok(cli("jobs", "logs", job["id"], env=env))
    assert logs and logs in trained.stderr
    assert ok(cli("jobs", "logs", job["id"], "--follow", env=env)) == logs
    assert "train:loss" in ok(cli("jobs", "metrics", job["id"], env=env))
    listed = ok(cli("jobs", "list", env=env))
    assert job["id"] in listed and "completed" in listed

    # Deploy the job's model, invoke it by endpoint name, delete it.
    deployed = json.loads(ok(cli("deploy", job["model"], "--name", "churn-cli", "--wait", "--json", env=env)))
    assert deployed["status"] == "in_service"
    answer = json.loads(ok(cli("invoke", "churn-cli", "--data", '{"instances": [[2.0, 2.0]]}', env=env)))
    assert answer["predictions"][0]["label"] == "yes"
    assert "churn-cli" in ok(cli("endpoints", "list", env=env))
    assert "deleted" in ok(cli("endpoints", "delete", "churn-cli", "--wait", env=env))

    # A pipeline from a file, run with a parameter and waited for; a failing run exits 1.
    ok(cli("pipelines", "create", "churn-check", "--definition", f"@{definition}", env=env))
    run = ok(cli("pipelines", "run", "churn-check", "--param", "threshold=0.6", "--wait", env=env))
    assert "completed" in run and "skipped" in run
    failed = cli("pipelines", "run", "churn-check", "--param", "threshold=1.5", "--wait", "--json", env=env)
    assert failed.returncode == 1 and "accuracy below the threshold" in failed.stderr
    assert json.loads(failed.stdout)["status"] == "failed"

    # Another user's token on the command line overrides the saved one: a bad one is a 401, exit 1.
    bad = cli("projects", "list", "--token", "stu_nope", env=env)
    assert bad.returncode == 1 and "HTTP 401" in bad.stderr
