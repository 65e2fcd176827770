"""The `studio` command: the Python client from a shell.

Human tables by default, ``--json`` for scripts. Exit codes: 0 done, 1 the API refused or a waited-on job
failed (the message is printed), 2 bad usage (argparse's own code).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from getpass import getpass
from pathlib import Path
from typing import Any

from studio.client.http import HttpClient, JobFailed, StudioError
from studio.client.resources import Execution, Resource, TrainingJob, is_uuid
from studio.client.session import Project, Studio, config_path, read_config, write_config

OK, API_ERROR, USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that cannot work (a missing project, a malformed k=v): exit 2."""


# --- parsing -------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """``3`` → 3, ``0.1`` → 0.1, ``true`` → True, ``[1, 2]`` → [1, 2]; anything else stays the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(pairs: Sequence[str] | None, option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} takes key=value (got '{pair}').")
        out[key.strip()] = parse_value(value)
    return out


def parse_ranges(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``lr=0.001:0.1:log`` (continuous), ``k=1:50`` (integer), ``loss=hinge,log`` (categorical)."""
    ranges: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, spec = pair.partition("=")
        if not sep or not key.strip() or not spec:
            raise UsageError(f"--range takes name=min:max[:log|linear] or name=a,b,c (got '{pair}').")
        if ":" in spec:
            low, high, *rest = spec.split(":")
            bounds = [parse_value(low), parse_value(high)]
            if not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
                raise UsageError(f"--range {key}: min and max must be numbers (got '{spec}').")
            kind = "integer" if all(isinstance(b, int) for b in bounds) else "continuous"
            ranges[key.strip()] = {"type": kind, "min": bounds[0], "max": bounds[1],
                                   **({"scale": rest[0]} if rest else {})}
        else:
            ranges[key.strip()] = {"type": "categorical", "values": [parse_value(v) for v in spec.split(",")]}
    return ranges


def read_data_arg(value: str) -> str:
    """``--data`` as given, ``@file`` for a file's content, ``-`` for standard input."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"Cannot read {value[1:]}: {exc.strerror}") from None
    return value


def read_json_arg(value: str, option: str) -> Any:
    text = read_data_arg(value)
    if not value.startswith(("@", "-")) and Path(value).is_file():
        text = Path(value).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    # The connection options and --json are accepted before or after the command (studio jobs list --json).
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--url", help="Studio server (default: STUDIO_URL or the saved login)")
    common.add_argument("--token", help="API token (default: STUDIO_TOKEN or the saved login)")
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    with_project = argparse.ArgumentParser(add_help=False, parents=[common], argument_default=argparse.SUPPRESS)
    with_project.add_argument("--project", "-p", help="project id, name or team/name "
                                                      "(default: STUDIO_PROJECT or the saved login)")

    parser = argparse.ArgumentParser(prog="studio", description="Command-line client of a Studio server.")
    parser.add_argument("--url", default=None, help="Studio server (default: STUDIO_URL or the saved login)")
    parser.add_argument("--token", default=None, help="API token (default: STUDIO_TOKEN or the saved login)")
    parser.add_argument("--json", action="store_true", default=False, help="print JSON instead of tables")
    parser.set_defaults(project=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent: Any, name: str, handler: Callable[..., int], help: str, *,
                project: bool = True) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help, description=help, parents=[with_project if project else common])
        sub.set_defaults(handler=handler)
        return sub

    login = command(commands, "login", cmd_login, "check and save the server URL and a token", project=False)
    login.add_argument("--username", help="get a token with a username and password instead of --token")
    login.add_argument("--password", help="(prompted for when left out)")
    login.add_argument("--project", "-p", help="a default project for later commands")
    command(commands, "logout", cmd_logout, "forget the saved token", project=False)
    command(commands, "whoami", cmd_whoami, "show the user and teams of the token", project=False)

    projects = commands.add_parser("projects", help="list or create projects").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    sub = command(projects, "list", cmd_projects_list, "list the projects you can see", project=False)
    sub.add_argument("--team", help="only this team's (slug)")
    sub = command(projects, "create", cmd_projects_create, "create a project", project=False)
    sub.add_argument("name")
    sub.add_argument("--team", required=True, help="team slug")
    sub.add_argument("--description", default="")

    datasets = commands.add_parser("datasets", help="list, upload, show datasets").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    command(datasets, "list", cmd_datasets_list, "list a project's datasets")
    sub = command(datasets, "upload", cmd_datasets_upload, "upload a CSV, JSONL, ZIP or NPZ file")
    sub.add_argument("file")
    sub.add_argument("--name")
    sub.add_argument("--kind", choices=["tabular", "text", "image"])
    sub.add_argument("--target", help="the column to predict")
    sub = command(datasets, "show", cmd_datasets_show, "show a dataset")
    sub.add_argument("dataset", help="id or name")

    train = command(commands, "train", cmd_train, "start a training job")
    train.add_argument("--algorithm", "-a", required=True)
    train.add_argument("--dataset", "-d", required=True, help="id or name")
    train.add_argument("--target", "-t")
    train.add_argument("--name")
    train.add_argument("--hp", action="append", metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    train.add_argument("--validation-dataset")
    train.add_argument("--validation-fraction", type=float)
    train.add_argument("--max-runtime-seconds", type=int)
    train.add_argument("--wait", action="store_true", help="print the logs and wait for the job to end")

    tune = command(commands, "tune", cmd_tune, "start a tuning job")
    tune.add_argument("--algorithm", "-a", required=True)
    tune.add_argument("--dataset", "-d", required=True, help="id or name")
    tune.add_argument("--target", "-t")
    tune.add_argument("--name")
    tune.add_argument("--objective", help="metric, e.g. validation:accuracy (default: the algorithm's)")
    tune.add_argument("--range", action="append", metavar="SPEC",
                      help="name=min:max[:log] or name=a,b,c (repeatable); none means autotune")
    tune.add_argument("--hp", action="append", metavar="KEY=VALUE", help="a fixed hyperparameter (repeatable)")
    tune.add_argument("--strategy", choices=["random", "grid", "bayesian", "hyperband"])
    tune.add_argument("--max-jobs", type=int)
    tune.add_argument("--max-parallel-jobs", type=int)
    tune.add_argument("--validation-fraction", type=float)
    tune.add_argument("--wait", action="store_true")

    jobs = commands.add_parser("jobs", help="training jobs: list, show, logs, metrics, stop").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    sub = command(jobs, "list", cmd_jobs_list, "list a project's training jobs")
    sub.add_argument("--status", choices=["pending", "running", "completed", "failed", "stopped"])
    for name, handler, text in (("show", cmd_jobs_show, "show a training job"),
                                ("logs", cmd_jobs_logs, "print a training job's log"),
                                ("metrics", cmd_jobs_metrics, "print a training job's metrics"),
                                ("stop", cmd_jobs_stop, "stop a training job"),
                                ("wait", cmd_jobs_wait, "wait for a training job to end")):
        sub = command(jobs, name, handler, text)
        sub.add_argument("job", help="training job id (or name with --project)")
        if name == "logs":
            sub.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")

    models = commands.add_parser("models", help="list models").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    command(models, "list", cmd_models_list, "list a project's models")
    sub = command(models, "register", cmd_models_register, "register a model as a version of a group")
    sub.add_argument("model", help="id or name")
    sub.add_argument("--group", required=True)
    sub.add_argument("--approve", action="store_true")

    deploy = command(commands, "deploy", cmd_deploy, "deploy a model to a new endpoint")
    deploy.add_argument("model", help="model id or name")
    deploy.add_argument("--name", "-n", help="endpoint name (default: <model>-endpoint)")
    deploy.add_argument("--type", choices=["realtime", "serverless", "async"], default="realtime")
    deploy.add_argument("--instance-count", type=int, default=1)
    deploy.add_argument("--max-instances", type=int)
    deploy.add_argument("--wait", action="store_true", help="wait until the endpoint is in service")

    endpoints = commands.add_parser("endpoints", help="list, show, delete endpoints").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    command(endpoints, "list", cmd_endpoints_list, "list a project's endpoints")
    sub = command(endpoints, "show", cmd_endpoints_show, "show an endpoint")
    sub.add_argument("endpoint", help="id or name")
    sub = command(endpoints, "delete", cmd_endpoints_delete, "delete an endpoint")
    sub.add_argument("endpoint", help="id or name")
    sub.add_argument("--wait", action="store_true", help="until its instances are gone")
    sub = command(endpoints, "create-key", cmd_endpoints_key, "create an invoke key (printed once)")
    sub.add_argument("endpoint", help="id or name")
    sub.add_argument("--name", default="")

    invoke = command(commands, "invoke", cmd_invoke, "send a request to an endpoint")
    invoke.add_argument("endpoint", help="endpoint id (or name with --project)")
    invoke.add_argument("--data", required=True, help="the body: JSON such as '{\"instances\": [[1, 2]]}', CSV "
                                                      "rows, @file or - for standard input")
    invoke.add_argument("--content-type", help="default: application/json for JSON, else text/csv")
    invoke.add_argument("--key", help="an invoke key (X-Api-Key) instead of the token")
    invoke.add_argument("--variant", help="X-Target-Variant")

    pipelines = commands.add_parser("pipelines", help="list, create, run pipelines").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    command(pipelines, "list", cmd_pipelines_list, "list a project's pipelines")
    sub = command(pipelines, "create", cmd_pipelines_create, "create a pipeline from a definition")
    sub.add_argument("name")
    sub.add_argument("--definition", required=True, help="JSON, a JSON file, @file or -")
    sub.add_argument("--description", default="")
    sub = command(pipelines, "run", cmd_pipelines_run, "start a pipeline execution")
    sub.add_argument("pipeline", help="id or name")
    sub.add_argument("--param", action="append", metavar="KEY=VALUE", help="a parameter (repeatable)")
    sub.add_argument("--wait", action="store_true", help="wait for the execution to end")
    sub = command(pipelines, "execution", cmd_execution_show, "show a pipeline execution")
    sub.add_argument("execution", help="execution id")
    return parser


# --- the connection --------------------------------------------------------------------------------


def connect(args: argparse.Namespace, *, need_token: bool = True) -> Studio:
    saved = read_config()
    url = args.url or os.environ.get("STUDIO_URL") or saved.get("url")
    token = args.token or os.environ.get("STUDIO_TOKEN") or saved.get("token")
    if not url:
        raise UsageError("No server: run `studio login --url URL --token TOKEN`, set STUDIO_URL or pass --url.")
    if need_token and not token:
        raise UsageError("No token: run `studio login`, set STUDIO_TOKEN or pass --token.")
    return Studio(url, token, project=args.project or os.environ.get("STUDIO_PROJECT") or saved.get("project"))


def project_of(studio: Studio, args: argparse.Namespace) -> Project:
    try:
        return studio.default_project
    except StudioError as exc:
        if exc.status is None:
            raise UsageError("No project: pass --project, set STUDIO_PROJECT or `studio login --project P`.") from None
        raise


def find_in_projects(studio: Studio, args: argparse.Namespace, collection: str, key: str) -> Resource:
    """A job or endpoint by id when no project was given: look in every project the user can see."""
    if args.project or os.environ.get("STUDIO_PROJECT") or read_config().get("project"):
        return getattr(project_of(studio, args), collection).get(key)
    if not is_uuid(key):
        raise UsageError(f"'{key}' is not an id: pass --project to find it by name.")
    for project in studio.projects.list():
        try:
            return getattr(project, collection).get(key)
        except StudioError as exc:
            if exc.status != 404:
                raise
    raise StudioError(f"No {collection.replace('_', ' ')[:-1]} '{key}' in any project you can see.", status=404)


# --- output ----------------------------------------------------------------------------------------


def emit(args: argparse.Namespace, value: Any, *, columns: Sequence[tuple[str, Callable[[dict], Any]]] = (),
         fields: Sequence[str] = ()) -> None:
    """Print a list as a table or one object as "field: value" lines; ``--json`` prints the API's JSON."""
    data = [v.data if isinstance(v, Resource | Project) else v for v in value] if isinstance(value, list) else (
        value.data if isinstance(value, Resource | Project) else value)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    elif isinstance(data, list):
        print(table(data, columns))
    elif fields:
        width = max(len(f) for f in fields)
        for field in fields:
            print(f"{field.ljust(width)}  {show(data.get(field))}")
    else:
        print(show(data))


def table(rows: list[dict], columns: Sequence[tuple[str, Callable[[dict], Any]]]) -> str:
    if not rows:
        return "(none)"
    cells = [[show(get(row)) for _, get in columns] for row in rows]
    headers = [title for title, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def show(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
        return ", ".join(f"{k}={show(v)}" for k, v in value.items()) or "-"  # hyperparameters, metrics
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def field(name: str) -> Callable[[dict], Any]:
    return lambda row: row.get(name)


def first_metric(row: dict) -> Any:
    metrics = row.get("final_metrics") or {}
    for name in sorted(metrics):
        if name.startswith("validation:"):
            return f"{name}={metrics[name]:.4g}"
    return next((f"{k}={v:.4g}" for k, v in sorted(metrics.items())), None)


PROJECT_COLUMNS = [("id", field("id")), ("team", field("team")), ("name", field("name"))]
DATASET_COLUMNS = [("id", field("id")), ("name", field("name")), ("kind", field("kind")), ("rows", field("rows")),
                   ("size", field("size_bytes")), ("target", field("target")), ("status", field("status"))]
JOB_COLUMNS = [("id", field("id")), ("name", field("name")), ("algorithm", field("algorithm")),
               ("status", field("status")), ("metric", first_metric), ("seconds", field("duration_seconds"))]
MODEL_COLUMNS = [("id", field("id")), ("name", field("name")), ("algorithm", field("algorithm")),
                 ("size", field("size_bytes")), ("created", field("created_at"))]
ENDPOINT_COLUMNS = [("id", field("id")), ("name", field("name")), ("type", field("type")),
                    ("status", field("status")),
                    ("instances", lambda r: sum(v.get("current_instances") or 0 for v in r.get("variants") or []))]
PIPELINE_COLUMNS = [("id", field("id")), ("name", field("name")), ("version", field("version")),
                    ("last run", lambda r: (r.get("last_execution") or {}).get("status"))]
JOB_FIELDS = ("id", "name", "algorithm", "status", "failure_reason", "hyperparameters", "final_metrics", "model",
              "duration_seconds", "created_by")
ENDPOINT_FIELDS = ("id", "name", "type", "status", "failure_reason", "invocation_url", "variants", "metrics")
EXECUTION_FIELDS = ("id", "pipeline", "number", "status", "failure_reason", "parameters")


# --- commands ------------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    saved = read_config()
    url = args.url or os.environ.get("STUDIO_URL") or saved.get("url")
    if not url:
        raise UsageError("studio login needs --url.")
    token = args.token
    if not token and args.username:
        password = args.password if args.password is not None else getpass(f"Password for {args.username}: ")
        token = HttpClient(url).post("auth/token", {"username": args.username, "password": password,
                                                    "name": "studio CLI"}, auth=False)["token"]
    if not token:
        raise UsageError("studio login needs --token (or --username).")
    studio = Studio(url, token)
    me = studio.me()  # a wrong token or URL fails here, before anything is saved
    values = {"url": studio.url, "token": token}
    if args.project:
        values["project"] = studio.project(args.project).id
    path = write_config(values)
    if args.json:
        print(json.dumps({"url": studio.url, "username": me["username"], "config": str(path)}))
    else:
        print(f"Logged in to {studio.url} as {me['username']} (saved in {path}).")
    return OK


def cmd_logout(args: argparse.Namespace) -> int:
    path = config_path()
    values = read_config()
    values.pop("token", None)
    if path.exists():
        write_config(values, path)
    print(f"Token removed from {path}.")
    return OK


def cmd_whoami(args: argparse.Namespace) -> int:
    me = connect(args).me()
    if args.json:
        print(json.dumps(me, indent=2))
    else:
        print(me["username"])
        print(table(me.get("teams", []), [("team", field("slug")), ("name", field("name")),
                                          ("role", field("role"))]))
    return OK


def cmd_projects_list(args: argparse.Namespace) -> int:
    emit(args, connect(args).projects.list(team=args.team), columns=PROJECT_COLUMNS)
    return OK


def cmd_projects_create(args: argparse.Namespace) -> int:
    project = connect(args).projects.create(args.team, args.name, args.description)
    emit(args, project, fields=("id", "team", "name", "slug"))
    return OK


def cmd_datasets_list(args: argparse.Namespace) -> int:
    emit(args, project_of(connect(args), args).datasets.list(), columns=DATASET_COLUMNS)
    return OK


def cmd_datasets_upload(args: argparse.Namespace) -> int:
    project = project_of(connect(args), args)
    dataset = project.datasets.upload(args.file, args.name, kind=args.kind, target=args.target)
    emit(args, dataset, fields=("id", "name", "kind", "status", "rows", "size_bytes", "target", "sha256"))
    return OK


def cmd_datasets_show(args: argparse.Namespace) -> int:
    dataset = project_of(connect(args), args).datasets.get(args.dataset)
    emit(args, dataset, fields=("id", "name", "kind", "status", "rows", "size_bytes", "target", "columns"))
    return OK


def _wait_job(args: argparse.Namespace, job: TrainingJob) -> int:
    # Logs go to stdout for people; with --json they go to stderr so stdout stays one JSON document.
    job.wait(logs=True, out=sys.stderr if args.json else sys.stdout, raise_on_failure=False)
    emit(args, job, fields=JOB_FIELDS)
    if job.status != "completed":
        reason = job.data.get("failure_reason") or job.data.get("status_message") or ""
        print(f"studio: training job {job.name} {job.status}" + (f": {reason}" if reason else ""), file=sys.stderr)
        return API_ERROR
    return OK


def cmd_train(args: argparse.Namespace) -> int:
    hyperparameters = parse_pairs(args.hp, "--hp")  # usage errors before any request
    project = project_of(connect(args), args)
    job = project.train(args.algorithm, args.dataset, target=args.target, name=args.name,
                        hyperparameters=hyperparameters, validation_dataset=args.validation_dataset,
                        validation_fraction=args.validation_fraction, max_runtime_seconds=args.max_runtime_seconds)
    if args.wait:
        return _wait_job(args, job)
    emit(args, job, fields=("id", "name", "algorithm", "status"))
    return OK


def cmd_tune(args: argparse.Namespace) -> int:
    ranges, static = parse_ranges(args.range), parse_pairs(args.hp, "--hp")
    project = project_of(connect(args), args)
    job = project.tune(args.algorithm, args.dataset, target=args.target, name=args.name, objective=args.objective,
                       ranges=ranges or None, autotune=not ranges, strategy=args.strategy, max_jobs=args.max_jobs,
                       max_parallel_jobs=args.max_parallel_jobs, validation_fraction=args.validation_fraction,
                       static_hyperparameters=static or None)
    if args.wait:
        job.wait(raise_on_failure=False)
    emit(args, job, fields=("id", "name", "algorithm", "status", "strategy", "objective", "counts",
                            "best_training_job"))
    return API_ERROR if job.status == "failed" else OK


def cmd_jobs_list(args: argparse.Namespace) -> int:
    jobs = project_of(connect(args), args).training_jobs.list(**({"status": args.status} if args.status else {}))
    emit(args, jobs, columns=JOB_COLUMNS)
    return OK


def _job(args: argparse.Namespace) -> TrainingJob:
    return find_in_projects(connect(args), args, "training_jobs", args.job)  # type: ignore[return-value]


def cmd_jobs_show(args: argparse.Namespace) -> int:
    emit(args, _job(args), fields=JOB_FIELDS)
    return OK


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    job = _job(args)
    if not args.follow:
        sys.stdout.write(job.logs())
        return OK
    job.wait(logs=True, raise_on_failure=False)
    if job.status != "completed":
        print(f"studio: training job {job.name} {job.status}", file=sys.stderr)
        return API_ERROR
    return OK


def cmd_jobs_metrics(args: argparse.Namespace) -> int:
    series = _job(args).metrics()
    if args.json:
        print(json.dumps(series, indent=2))
        return OK
    rows = [{"metric": name, "points": len(points), "last step": points[-1][0] if points else None,
             "last": points[-1][1] if points else None, "min": min((p[1] for p in points), default=None),
             "max": max((p[1] for p in points), default=None)} for name, points in sorted(series.items())]
    print(table(rows, [(k, field(k)) for k in ("metric", "points", "last step", "last", "min", "max")]))
    return OK


def cmd_jobs_stop(args: argparse.Namespace) -> int:
    emit(args, _job(args).stop(), fields=("id", "name", "status"))
    return OK


def cmd_jobs_wait(args: argparse.Namespace) -> int:
    return _wait_job(args, _job(args))


def cmd_models_list(args: argparse.Namespace) -> int:
    emit(args, project_of(connect(args), args).models.list(), columns=MODEL_COLUMNS)
    return OK


def cmd_models_register(args: argparse.Namespace) -> int:
    model = project_of(connect(args), args).models.get(args.model)
    version = model.register(args.group, approve=args.approve)
    emit(args, version, fields=("group", "version", "model", "model_name", "approval_status"))
    return OK


def cmd_deploy(args: argparse.Namespace) -> int:
    model = project_of(connect(args), args).models.get(args.model)
    endpoint = model.deploy(args.name, type=args.type, instance_count=args.instance_count,
                            max_instances=args.max_instances)
    if args.wait:
        try:
            endpoint.wait()
        except JobFailed:
            emit(args, endpoint, fields=ENDPOINT_FIELDS)
            raise
    emit(args, endpoint, fields=ENDPOINT_FIELDS)
    return OK


def cmd_endpoints_list(args: argparse.Namespace) -> int:
    emit(args, project_of(connect(args), args).endpoints.list(), columns=ENDPOINT_COLUMNS)
    return OK


def _endpoint(args: argparse.Namespace):
    return find_in_projects(connect(args), args, "endpoints", args.endpoint)


def cmd_endpoints_show(args: argparse.Namespace) -> int:
    emit(args, _endpoint(args), fields=ENDPOINT_FIELDS)
    return OK


def cmd_endpoints_delete(args: argparse.Namespace) -> int:
    endpoint = _endpoint(args)
    endpoint.delete(wait=args.wait)
    if args.json:
        print(json.dumps({"id": endpoint.id, "deleted": True}))
    else:
        print(f"Endpoint {endpoint.name} deleted.")
    return OK


def cmd_endpoints_key(args: argparse.Namespace) -> int:
    key = _endpoint(args).create_key(args.name)
    print(json.dumps({"key": key}) if args.json else key)
    return OK


def cmd_invoke(args: argparse.Namespace) -> int:
    body = read_data_arg(args.data)
    if is_uuid(args.endpoint):
        # The id makes the invocation URL: no lookup, and with an invoke key no token either.
        studio = connect(args, need_token=not args.key)
        answer = studio.invoke(args.endpoint, body, args.content_type, key=args.key, target_variant=args.variant)
    else:
        endpoint = _endpoint(args)
        answer = endpoint.predict(body, args.content_type, key=args.key, target_variant=args.variant)
    print(json.dumps(answer, indent=None if args.json else 2))
    return OK


def cmd_pipelines_list(args: argparse.Namespace) -> int:
    emit(args, project_of(connect(args), args).pipelines.list(), columns=PIPELINE_COLUMNS)
    return OK


def cmd_pipelines_create(args: argparse.Namespace) -> int:
    definition = read_json_arg(args.definition, "--definition")
    pipeline = project_of(connect(args), args).pipelines.create(args.name, definition, description=args.description)
    emit(args, pipeline, fields=("id", "name", "version"))
    return OK


def _emit_execution(args: argparse.Namespace, execution: Execution) -> None:
    emit(args, execution, fields=EXECUTION_FIELDS)
    if not args.json:
        print(table(execution.data.get("steps", []), [("step", field("name")), ("type", field("type")),
                                                      ("status", field("status")), ("cached", field("cached")),
                                                      ("outputs", field("outputs"))]))


def cmd_pipelines_run(args: argparse.Namespace) -> int:
    parameters = parse_pairs(args.param, "--param")
    pipeline = project_of(connect(args), args).pipelines.get(args.pipeline)
    execution = pipeline.start(parameters)
    if args.wait:
        execution.wait(raise_on_failure=False)
    _emit_execution(args, execution)
    if execution.status in ("failed", "stopped"):
        reason = execution.data.get("failure_reason") or ""
        print(f"studio: execution {execution.name} {execution.status}" + (f": {reason}" if reason else ""),
              file=sys.stderr)
        return API_ERROR
    return OK


def cmd_execution_show(args: argparse.Namespace) -> int:
    _emit_execution(args, project_of(connect(args), args).pipelines.execution(args.execution))
    return OK


# --- entry point -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    try:
        return int(args.handler(args))
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except StudioError as exc:
        print(f"studio: error: {exc}", file=sys.stderr)
        for name, messages in exc.errors.items():
            if len(exc.errors) > 1:
                print(f"  {name}: {' '.join(messages)}", file=sys.stderr)
        return API_ERROR
    except KeyboardInterrupt:
        print("studio: interrupted", file=sys.stderr)
        return 130
    return OK  # pragma: no cover - parser.error does not return


if __name__ == "__main__":
    sys.exit(main())
