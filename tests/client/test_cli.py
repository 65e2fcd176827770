"""The `studio` command without a Studio server: parsing, exit codes, the saved login, tables and --json."""

from __future__ import annotations

import json
import stat
import tomllib

import pytest

from studio.client import Studio, cli
from studio.client.cli import UsageError, build_parser, main, parse_pairs, parse_ranges, parse_value
from studio.client.session import config_path, read_config
from tests.processes import ROOT

pytestmark = pytest.mark.usefixtures("no_login")

PID = "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0001"
PROJECT = {"id": PID, "team": "acme", "name": "Churn", "slug": "churn", "description": ""}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own exits (usage errors, --help)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_it_is_the_console_script_of_the_project():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["studio"] == "studio.client.cli:main"


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("0.25", 0.25), ("true", True), ("null", None), ("[1, 2]", [1, 2]), ("adam", "adam"),
    ("1e-3", 0.001), ("", ""),
])
def test_it_reads_values_as_json_or_text(text, value):
    assert parse_value(text) == value


def test_it_parses_key_value_pairs():
    assert parse_pairs(["epochs=5", "learning_rate=0.1", "optimizer=adam", "note=a=b"], "--hp") == {
        "epochs": 5, "learning_rate": 0.1, "optimizer": "adam", "note": "a=b"}
    with pytest.raises(UsageError, match="--hp takes key=value"):
        parse_pairs(["epochs"], "--hp")


def test_it_parses_tuning_ranges():
    assert parse_ranges(["learning_rate=0.001:0.1:log", "k=1:50", "loss=hinge,log"]) == {
        "learning_rate": {"type": "continuous", "min": 0.001, "max": 0.1, "scale": "log"},
        "k": {"type": "integer", "min": 1, "max": 50},
        "loss": {"type": "categorical", "values": ["hinge", "log"]},
    }
    with pytest.raises(UsageError):
        parse_ranges(["k=a:b"])


def test_it_parses_the_train_command():
    args = build_parser().parse_args(["train", "--project", "Churn", "--algorithm", "linear-learner", "--dataset",
                                      "churn", "--target", "churned", "--hp", "epochs=3", "--hp", "l2=0.01",
                                      "--wait", "--json"])
    assert (args.project, args.algorithm, args.dataset, args.target, args.hp, args.wait, args.json) == (
        "Churn", "linear-learner", "churn", "churned", ["epochs=3", "l2=0.01"], True, True)
    assert args.handler is cli.cmd_train


def test_it_takes_connection_options_before_or_after_the_command():
    before = build_parser().parse_args(["--json", "--url", "http://a", "projects", "list"])
    after = build_parser().parse_args(["projects", "list", "--json", "--url", "http://a"])
    assert (before.json, before.url) == (after.json, after.url) == (True, "http://a")
    assert build_parser().parse_args(["projects", "list"]).json is False


@pytest.mark.parametrize("argv", [
    [], ["train"], ["train", "--algorithm", "knn"], ["jobs"], ["jobs", "logs"], ["frobnicate"],
    ["deploy", "m", "--type", "batch"], ["projects", "create", "x"],
])
def test_it_exits_2_on_bad_usage(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "usage:" in err


def test_it_exits_2_without_a_server_or_a_project(capsys, stub, monkeypatch):
    code, _, err = run(capsys, "projects", "list")
    assert code == 2 and "No server" in err
    monkeypatch.setenv("STUDIO_URL", stub.url)
    code, _, err = run(capsys, "projects", "list")
    assert code == 2 and "No token" in err
    monkeypatch.setenv("STUDIO_TOKEN", "stu_x")
    code, _, err = run(capsys, "datasets", "list")
    assert code == 2 and "No project" in err
    code, _, err = run(capsys, "train", "-p", PID, "-a", "knn", "-d", "x", "--hp", "k")
    assert code == 2 and "--hp takes key=value" in err
    assert stub.requests == []  # nothing was sent


def test_it_logs_in_and_saves_the_token_for_its_owner_only(capsys, stub):
    stub.on("GET", "/api/v1/me", {"id": "u", "username": "ann", "teams": []})
    stub.on("GET", "/api/v1/projects", {"count": 1, "next": None, "results": [PROJECT]})
    code, out, _ = run(capsys, "login", "--url", stub.url + "/", "--token", "stu_secret", "--project", "Churn")
    assert code == 0 and "Logged in to" in out and "as ann" in out
    path = config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_config() == {"url": stub.url, "token": "stu_secret", "project": PID}
    # Later commands use the saved login and project.
    stub.on("GET", f"/api/v1/projects/{PID}", PROJECT)
    stub.on("GET", f"/api/v1/projects/{PID}/datasets", {"count": 0, "next": None, "results": []})
    code, out, _ = run(capsys, "datasets", "list")
    assert code == 0 and out.strip() == "(none)"
    assert stub.requests[-1].headers["Authorization"] == "Bearer stu_secret"
    # The library reads the same saved login.
    assert Studio().datasets.list() == []
    code, out, _ = run(capsys, "logout")
    assert code == 0 and "token" not in read_config()


def test_it_logs_in_with_a_username_and_password(capsys, stub):
    stub.on("POST", "/api/v1/auth/token", {"token": "stu_made"})
    stub.on("GET", "/api/v1/me", {"id": "u", "username": "ann", "teams": []})
    code, _, _ = run(capsys, "login", "--url", stub.url, "--username", "ann", "--password", "pw")
    assert code == 0
    assert stub.requests[0].json()["username"] == "ann" and "Authorization" not in stub.requests[0].headers
    assert read_config()["token"] == "stu_made"


def test_it_saves_nothing_when_the_token_is_refused(capsys, stub):
    stub.on("GET", "/api/v1/me", {"detail": "Invalid token."}, status=401)
    code, _, err = run(capsys, "login", "--url", stub.url, "--token", "stu_bad")
    assert code == 1 and err.strip() == "studio: error: Invalid token. (HTTP 401)"
    assert not config_path().exists()


def test_it_exits_1_with_the_servers_message(capsys, stub, monkeypatch):
    monkeypatch.setenv("STUDIO_URL", stub.url)
    monkeypatch.setenv("STUDIO_TOKEN", "stu_x")
    stub.on("GET", f"/api/v1/projects/{PID}", PROJECT)
    stub.on("POST", f"/api/v1/projects/{PID}/training-jobs", {
        "detail": "algorithm: Unknown algorithm 'nope'.", "errors": {"algorithm": ["Unknown algorithm 'nope'."]}},
        status=400)
    code, out, err = run(capsys, "train", "-p", PID, "-a", "nope", "-d", "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0002")
    assert code == 1 and out == ""
    assert err.strip() == "studio: error: algorithm: Unknown algorithm 'nope'. (HTTP 400)"
    assert stub.requests[-1].json() == {"algorithm": "nope", "dataset": "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0002",
                                        "hyperparameters": {}}


def test_it_prints_a_table_or_json(capsys, stub, monkeypatch):
    monkeypatch.setenv("STUDIO_URL", stub.url)
    monkeypatch.setenv("STUDIO_TOKEN", "stu_x")
    other = {**PROJECT, "id": "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0003", "team": "rival", "name": "Long project name"}
    stub.on("GET", "/api/v1/projects", {"count": 2, "next": None, "results": [PROJECT, other]})
    code, out, _ = run(capsys, "projects", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "TEAM", "NAME"]
    assert lines[1].split() == [PID, "acme", "Churn"]
    assert lines[2].split()[1:] == ["rival", "Long", "project", "name"]
    assert lines[1].index("Churn") == lines[2].index("Long")  # aligned columns
    code, out, _ = run(capsys, "projects", "list", "--json")
    assert code == 0 and json.loads(out) == [PROJECT, other]


def test_it_invokes_an_endpoint_by_id_with_only_an_invoke_key(capsys, stub, monkeypatch):
    endpoint = "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0009"
    stub.on("POST", f"/api/v1/endpoints/{endpoint}/invocations", {"predictions": [{"score": 1.5}], "variant": "a"})
    code, out, _ = run(capsys, "invoke", endpoint, "--url", stub.url, "--key", "sk-ep-1",
                       "--data", '{"instances": [[1, 2]]}', "--json")
    assert code == 0 and json.loads(out) == {"predictions": [{"score": 1.5}], "variant": "a"}
    seen = stub.requests[0]
    assert seen.headers["X-Api-Key"] == "sk-ep-1" and "Authorization" not in seen.headers
    assert seen.headers["Content-Type"] == "application/json" and seen.json() == {"instances": [[1, 2]]}
    code, _, _ = run(capsys, "invoke", endpoint, "--url", stub.url, "--key", "sk-ep-1", "--data", "1,2\n3,4\n")
    assert code == 0 and stub.requests[1].headers["Content-Type"] == "text/csv"
    assert stub.requests[1].body == b"1,2\n3,4\n"


def test_it_finds_a_job_by_id_in_any_visible_project_when_none_is_given(capsys, stub, monkeypatch):
    monkeypatch.setenv("STUDIO_URL", stub.url)
    monkeypatch.setenv("STUDIO_TOKEN", "stu_x")
    job_id = "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0010"
    other = {**PROJECT, "id": "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0011", "name": "Other"}
    stub.on("GET", "/api/v1/projects", {"count": 2, "next": None, "results": [other, PROJECT]})
    stub.on("GET", f"/api/v1/projects/{PID}/training-jobs/{job_id}", {"id": job_id, "name": "j", "status": "completed"})
    stub.on("GET", f"/api/v1/projects/{PID}/training-jobs/{job_id}/logs", raw=b"epoch 1\nepoch 2\n",
            headers={"Content-Type": "text/plain"})
    code, out, err = run(capsys, "jobs", "logs", job_id, "--follow")
    assert (code, out) == (0, "epoch 1\nepoch 2\n"), err
    code, _, err = run(capsys, "jobs", "logs", "3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0099")
    assert code == 1 and "No training job '3f0c8f8e-9a57-4c38-9b5e-0a4e1a0f0099' in any project" in err
    code, _, err = run(capsys, "jobs", "logs", "by-name")
    assert code == 2 and "pass --project" in err
