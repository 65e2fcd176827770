"""schemathesis over the whole served OpenAPI schema: every phase its engine has (examples, coverage, fuzzing,
stateful) and every check, against the real ASGI application in process, as a member of a team with a project.

The goal is 0 server errors and 0 schema violations. `make test` runs a bounded number of examples per operation;
`make fuzz` runs deeper (STUDIO_FUZZ_EXAMPLES). Any check switched off or relaxed below says why.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import redis
import schemathesis
from asgiref.sync import async_to_sync
from celery.app.task import Task
from django.conf import settings
from django.db import connections
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.engine import events, from_schema

from algorithms import list_algorithms
from studio.accounts.models import ApiToken
from studio.accounts.services import api_token_create, team_create
from tests.conftest import make_user, regression_csv
from tests.datasets.conftest import upload

EXAMPLES = int(os.environ.get("STUDIO_FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("STUDIO_FUZZ_SEED", "20261125"))

pytestmark = pytest.mark.django_db(transaction=True)  # the engine calls the app from its own threads


@dataclass
class Report:
    """What a run found: failures grouped by operation, check and title, one example each."""

    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    scenarios: Counter = field(default_factory=Counter)
    phases: dict[str, str] = field(default_factory=dict)
    checks: Counter = field(default_factory=Counter)
    answered: dict[str, Counter] = field(default_factory=dict)  # "METHOD /path" -> status codes it gave
    operations: set[str] = field(default_factory=set)  # the schema's operations the run went through
    transitions: str = ""
    requests: int = 0
    seconds: float = 0.0

    def unanswered(self) -> str:
        """Operations that never answered 2xx: the ones a run could not get into (for a deeper look)."""
        operations = {label for label, _, _ in self.failures} | set(self.operations)
        labels = [label for label in sorted(operations)
                  if not any(200 <= code < 300 for code in self.answered.get(label, {}))]
        return f"\nno 2xx from {len(labels)} of {len(operations)} operations: " + ", ".join(labels)

    def summary(self) -> str:
        lines = [f"{len(self.failures)} distinct failures, {len(self.errors)} errors, {self.requests} requests in "
                 f"{self.seconds:.0f} s; phases {self.phases}; stateful links {self.transitions}",
                 f"checks run: {dict(sorted(self.checks.items()))}", f"scenarios: {dict(self.scenarios)}"]
        lines += [f"- {label} [{check}] {title}: {example}" for (label, check, title), example in
                  sorted(self.failures.items())]
        lines += [f"- ERROR {label}: {error}" for label, error in sorted(self.errors.items())]
        return "\n".join(lines)


def _example(recorder, case_id: str, failure) -> str:
    case = recorder.cases[case_id].value
    interaction = recorder.interactions.get(case_id)
    answer = ""
    if interaction is not None and interaction.response is not None:
        body = (interaction.response.content or b"")[:200].decode(errors="replace")
        answer = f" -> {interaction.response.status_code} {body}"
    message = " ".join(failure.message.split())[:900]
    sent_as = case.media_type or "no body"
    return (f"{case.method} {case.formatted_path} path={case.path_parameters!r:.200} query={case.query!r:.120} "
            f"body ({sent_as})={case.body!r:.200}"
            f"{answer} | {message}")


def run(schema) -> Report:
    report = Report()
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            report.scenarios[(event.phase.value, event.status.value)] += 1
            if event.phase.value in ("coverage", "fuzzing"):
                report.operations.add(event.recorder.label)
            report.requests += len(event.recorder.interactions)
            for case_id, interaction in event.recorder.interactions.items():
                node = event.recorder.cases.get(case_id)
                if node is not None and interaction.response is not None:
                    label = f"{node.value.method} {node.value.operation.path}"
                    report.answered.setdefault(label, Counter())[interaction.response.status_code] += 1
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    report.checks[check.name] += 1
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        key = (event.recorder.label, check.name, failure.title)
                        report.failures.setdefault(key, _example(event.recorder, case_id, failure))
        elif isinstance(event, events.NonFatalError):
            text = "".join(traceback.format_exception(event.value))
            report.errors.setdefault(event.label, text[-3000:])
        elif isinstance(event, events.FatalError):
            report.errors.setdefault("fatal", "".join(traceback.format_exception(event.exception))[-1500:])
        elif isinstance(event, events.PhaseStarted) and event.payload is not None:
            payload = event.payload
            report.transitions = (f"{payload.transitions_selected} of {payload.transitions_total} "
                                  f"({payload.inferred_transitions} inferred)")
        elif isinstance(event, events.PhaseFinished):
            report.phases[event.phase.name.value] = event.status.value
    report.seconds = time.monotonic() - started
    return report


def token_auth(user, db: ThreadPoolExecutor) -> type:
    """An auth provider for the fuzzer: an API token of ``user``, made again whenever a fuzzed DELETE /tokens/{id}
    revoked it (which would turn every later answer into a 401 and hide the rest of the API from the run).

    Its queries run on ``db``, one thread whose connection the test closes at the end: the engine's own threads
    would each keep one open, and PostgreSQL refuses to drop a test database with sessions left on it.
    """

    class TokenAuth:
        token_id = None
        secret = ""

        def _ensure(self) -> str:
            if self.token_id is None or not ApiToken.objects.filter(id=self.token_id).exists():
                token, self.secret = api_token_create(user=user, name="fuzzer")
                self.token_id = token.id
            return self.secret

        def get(self, case, ctx) -> str:
            return db.submit(self._ensure).result()

        def set(self, case, data: str, ctx) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return TokenAuth


@pytest.fixture
def sent_tasks(monkeypatch) -> list[str]:
    """Tasks the fuzzed requests hand to Celery, recorded instead of sent: the broker is shared with later tests
    (CI's Redis), whose workers must not find hundreds of jobs of a database that is gone."""
    sent: list[str] = []
    monkeypatch.setattr(Task, "apply_async", lambda self, *args, **kwargs: sent.append(self.name))
    return sent


def fuzz_schema(world, victims, user, db: ThreadPoolExecutor, *, only: str | None = None):
    """The served schema, loaded through the app, fuzzed as ``user``; path parameters and the body fields that name
    other objects are mostly drawn from real objects of the team, so the fuzzer gets past "no such dataset"."""
    from studio.asgi import application

    dataset = upload(world, regression_csv(80), name="fuzz data")  # a real file: preview, profile, training
    # A team of the member's own, where they are the only owner: leaving it is refused (409), so the fuzzed
    # POST /teams/{slug}/leave does not take the member out of the team under test.
    own_team = team_create(user=world.member, name="Fuzzer's own")
    known = {
        "datasets": [str(dataset.id)], "models": [str(victims["model_id"])], "teams": [world.team.slug],
        "algorithms": [a.name for a in list_algorithms()], "columns": ["price", "x1"],
        "jobs": [str(victims["job_id"])], "users": [world.viewer.username],
    }
    bindings = {
        "datasets": ["dataset", "validation_dataset", "input_dataset"], "models": ["model", "variants[*].model"],
        "teams": ["team"], "algorithms": ["algorithm"], "columns": ["target"], "jobs": ["target_id"],
        "users": ["username"],
    }
    operations = [
        {"include-name": "POST /api/v1/teams/{slug}/leave", "parameters": {"slug": own_team.slug}},
        # The member themself: a member may leave, which would end the run's access as above.
        {"include-name": "DELETE /api/v1/teams/{slug}/members/{username}",
         "parameters": {"username": world.viewer.username}},
    ]
    if not user.is_staff:
        # The ops dashboard answers 404 to everyone but site admins, whatever the method, so that it does not
        # exist for team members (studio/ops/access.py); a 405 to TRACE would give it away.
        operations.append({"include-path-regex": "^/api/v1/ops/", "checks": {"unsupported_method": {"enabled": False}}})
    if only:  # a path regex: fuzz that part of the API alone
        operations.append({"exclude-path-regex": only, "enabled": False})
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "workers": 1,
        # Nothing written into the work tree: no cache of schemathesis's, no Hypothesis example database.
        "cache": {"enabled": False},
        # schemathesis would sign up a user of its own and fuzz as them, who sees none of the team's objects.
        "auth": {"auto-signup": False},
        "dictionaries": {name: {"values": values} for name, values in known.items()},
        "parameters": {
            **{name: value if isinstance(value, int) else str(value) for name, value in victims.items()},
            "dataset_id": str(dataset.id),
            # 1 in 5 still random, so made-up references are fuzzed too.
            **{f"body.{field}": {"dictionary": name, "probability": 0.8}
               for name, fields in bindings.items() for field in fields},
        },
        "generation": {"max-examples": EXAMPLES, "database": "none"},
        "checks": {
            # A body can be valid for the schema and still wrong for the app (API.md: 400 "bad input"): a team or
            # dataset it names may not exist, a password may be too common, hyperparameters may be out of the
            # algorithm's range, a webhook test needs a saved URL. JSON Schema cannot say those; 422s, 405s, 415s
            # and 5xx for valid bodies still fail this check.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409",
                                                               "429"]},
        },
        "operations": operations,
    })
    schema = schemathesis.openapi.from_asgi("/api/schema/", application, config=config)
    schema.auth(refresh_interval=None)(token_auth(user, db))  # registered; asked before every request
    return schema


@pytest.fixture
def db_thread(tmp_path) -> ThreadPoolExecutor:
    """The thread the auth provider queries from. Around the run: Hypothesis's caches in a temporary folder, not
    the work tree; after it, the gateway's clients and every database connection the run opened closed."""
    from studio.asgi import application

    set_hypothesis_home_dir(tmp_path / "hypothesis")
    db = ThreadPoolExecutor(max_workers=1)
    yield db
    db.submit(connections.close_all).result()
    db.shutdown()
    set_hypothesis_home_dir(None)
    async_to_sync(application.gateway.aclose)()
    connections.close_all()


# Django warns that a file download (FileResponse) is read synchronously under ASGI; uvicorn serves it the same way.
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_it_finds_no_server_error_and_no_schema_violation(world, victims, sent_tasks, db_thread):
    only = os.environ.get("STUDIO_FUZZ_ONLY")
    report = run(fuzz_schema(world, victims, world.member, db_thread, only=only))
    print(report.summary(), f"\ntasks enqueued: {dict(Counter(sent_tasks))}", report.unanswered())
    assert not report.failures and not report.errors, report.summary()
    if only:
        return
    # It went everywhere: every phase ran, with every check, and the bound objects let writes through.
    assert report.phases == {"probing": "success", "schema_analysis": "success", "auth_bootstrap": "skip",
                             "examples": "skip", "coverage": "success", "fuzzing": "success", "stateful": "success"}
    assert {"not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
            "response_headers_conformance", "negative_data_rejection", "positive_data_acceptance", "ignored_auth",
            "use_after_free", "ensure_resource_availability", "unsupported_method"} <= set(report.checks)
    assert report.requests > 1000 and sent_tasks


# Found by this run and reported, not fixed here (studio/ops belongs to the ops dashboard's work): its boolean query
# parameters read anything but "true" as false, so ?stuck=null answers 200 instead of 400 (as ?unread= now does).
# Remove each entry once studio/ops validates that parameter.
OPS_KNOWN_ISSUES = {
    ("GET /api/v1/ops/jobs", "negative_data_rejection"),
    ("GET /api/v1/ops/workers", "negative_data_rejection"),
}


def test_it_finds_nothing_in_the_ops_api_as_a_site_admin(world, victims, sent_tasks, db_thread, monkeypatch):
    """The admin dashboard's API is only reachable by site admins, so the member's run sees its 404s alone."""
    from studio.ops import metrics, services, workers

    # No worker runs here: each Celery ping would wait its full second for answers that cannot come.
    monkeypatch.setattr(workers, "INSPECT_TIMEOUT_SECONDS", 0.05)
    admin = make_user("ada")
    admin.is_staff = True
    admin.save()
    try:
        report = run(fuzz_schema(world, victims, admin, db_thread, only="^/api/v1/ops/"))
    finally:  # Redis may be shared (CI): leave no drained worker, sample or lock behind
        redis.Redis.from_url(settings.REDIS_URL).delete(
            workers.SNAPSHOT_KEY, workers.SEEN_KEY, workers.DRAINED_KEY, metrics.SAMPLES_KEY, metrics.LOCK_KEY,
            services.PRUNE_KEY)
    print(report.summary(), report.unanswered())
    known = {failure for failure in report.failures if failure[:2] in OPS_KNOWN_ISSUES}
    print("known ops issues (studio/ops is another helper's):", sorted(known))
    assert set(report.failures) == known and not report.errors, report.summary()
    assert len(report.operations) >= 15 and report.requests > 100
