"""The admin dashboard in a real browser: a site admin sees a live worker, a queue chart fed by celery beat over
the websocket, and cancels another team's running training job."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from studio.accounts import services as account_services
from studio.training import services as training_services
from studio.training.models import TrainingJob
from tests.conftest import PASSWORD, make_user, regression_csv
from tests.e2e.test_studio_flow import shot
from tests.processes import ROOT, _stop, process_env, web_server
from tests.training.factories import dataset_from_csv

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SAMPLE_SECONDS = "1"


@contextmanager
def studio_process(log_path: Path, args: list[str]) -> Iterator[subprocess.Popen]:
    with open(log_path, "wb") as log:
        env = {**process_env(), "STUDIO_OPS_SAMPLE_SECONDS": SAMPLE_SECONDS}
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "studio", *args], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            _stop(proc)


def worker_args() -> list[str]:
    # A pool that answers the broker while a job runs (production runs prefork; threads spare a test the memory),
    # so the dashboard shows the worker alive and busy rather than silent.
    return ["worker", "-Q", "training,inference,default", "--pool", "threads", "--concurrency", "2",
            "--loglevel", "INFO", "-n", "dashboard@%h", "--without-gossip", "--without-mingle"]


def test_it_shows_a_live_worker_and_queue_chart_and_cancels_a_running_job(browse, tmp_path):
    root = make_user("root")
    root.is_staff = root.is_superuser = True
    # The server processes hash as production does (tests here use MD5 for speed): a password they can check.
    root.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    root.save()
    owner = make_user("olivia")
    team = account_services.team_create(user=owner, name="Acme ML")
    project = account_services.project_create(user=owner, team=team, name="House prices")
    # Many rows in tiny batches: each epoch takes a while, so the job is running when the admin looks.
    houses = dataset_from_csv(project, content=regression_csv(n=20_000), target="price")
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker", "beat")}
    try:
        with web_server(logs["web"]) as base, studio_process(logs["worker"], worker_args()), \
                studio_process(logs["beat"], ["beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler",
                                              "--loglevel", "INFO"]):
            job = training_services.training_job_create(
                user=owner, project=project, algorithm="linear-learner", dataset=houses, target="price",
                name="slow-fit", hyperparameters={"epochs": 200, "mini_batch_size": 4, "early_stopping_patience": 200})
            browse(lambda page: admin_session(page, base, job))
    except Exception:
        for name, path in logs.items():  # what the processes said is the first thing to read
            print(f"--- {name}.log ---\n" + path.read_text(errors="replace")[-4000:])
        raise
    job.refresh_from_db()
    assert job.status == "stopped" and job.status_message == "Stopped by root"


def admin_session(page, base: str, job: TrainingJob) -> None:
    page.set_default_timeout(30_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the cancel button asks for confirmation
    page.goto(f"{base}/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.click("[data-testid=nav-admin]")
    page.wait_for_url(f"{base}/ops/")

    # A worker answers: alive, with the studio's queues.
    page.wait_for_selector("[data-testid=ops-workers] tr[data-worker^='dashboard@'][data-alive=true]")
    assert "training" in page.inner_text("tr[data-worker^='dashboard@'] [data-testid=worker-queues]")

    # The queue chart grows by samples arriving over the websocket, without a reload.
    page.wait_for_function("() => window.studioOpsLiveSamples >= 1", timeout=60_000)
    drawn = page.evaluate("document.querySelector('#chart-queues').data[0].x.length")
    page.wait_for_function(f"() => document.querySelector('#chart-queues').data[0].x.length >= {drawn + 2}")
    assert page.evaluate("document.querySelector('#chart-queues').data.map(t => t.name).join(',')") == \
        "training,inference,default"
    page.wait_for_selector("[data-testid=live-state]:has-text('live')")

    # The running job of a team the admin is not in shows up (panels refresh with each sample); cancel it.
    row = f"[data-testid=ops-jobs] tr[data-job='{job.id}']"
    page.wait_for_selector(f"{row} .badge.running", timeout=60_000)
    assert "Acme ML" in page.inner_text(row)
    shot(page, "admin-dashboard", full_page=True)
    page.click(f"{row} [data-testid=cancel-job]")
    page.wait_for_selector("[data-testid=ops-jobs] [data-testid=action-done]:has-text('Cancelled training job')")
    # Stopped after its current epoch, the job leaves the running list; the admin action is logged.
    page.wait_for_selector(row, state="detached", timeout=90_000)
    page.wait_for_selector("[data-testid=ops-actions]:has-text('cancelled training job')")
