"""Comments, tags and the bell in a real browser: two people on one job page see each other's comments live."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from studio.social import services
from studio.training.models import TrainingJob
from tests.conftest import PASSWORD
from tests.e2e.conftest import browse  # noqa: F401
from tests.e2e.test_studio_flow import shot
from tests.processes import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(page, base: str, username: str) -> None:
    page.set_default_timeout(20_000)
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(f"[data-testid=username]:has-text('{username}')")


def off_thread(fn):
    """Run a database call outside Playwright's thread, whose running event loop Django refuses to share."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def test_it_shows_comments_live_tags_a_run_and_rings_the_bell(world, browse, tmp_path: Path,  # noqa: F811
                                                               monkeypatch):
    # The server checks the fixtures' passwords with the tests' fast hasher (studio.settings.TESTING).
    monkeypatch.setenv("STUDIO_TESTING", "1")
    job = TrainingJob.objects.create(project=world.project, name="houses-1", algorithm="linear-learner",
                                     created_by=world.member)
    job_path = f"/projects/{world.project.id}/training/{job.id}/"

    def scenario(page, base: str) -> None:
        sign_in(page, base, world.member.username)
        page.goto(base + job_path)
        page.wait_for_selector("[data-testid=no-comments]")
        # Olivia opens the same page in another browser and comments.
        other = page.context.browser.new_context().new_page()
        sign_in(other, base, world.owner.username)
        other.goto(base + job_path)
        other.wait_for_selector("[data-testid=no-comments]")
        other.fill("[data-testid=comment-body]", "Try a lower learning rate <b>please</b>")
        other.click("[data-testid=comment-submit]")
        other.wait_for_selector("[data-testid=comment-text]:has-text('Try a lower learning rate')")
        assert other.input_value("[data-testid=comment-body]") == ""  # the form is ready for the next one
        # Mark's page shows it without a reload, as plain text.
        page.wait_for_selector("[data-testid=comment-text]:has-text('Try a lower learning rate <b>please</b>')")
        assert page.text_content("[data-testid=comment-author]") == "olivia"

        page.fill("[data-testid=tag-input]", "baseline, lr-sweep")
        page.click("[data-testid=tag-add]")
        page.wait_for_selector("[data-testid=tag-chip]:has-text('lr-sweep')")
        page.fill("[data-testid=notes-input]", "First run on the new features.")
        page.click("[data-testid=notes-save]")
        page.wait_for_selector("[data-testid=notes-saved]")
        shot(page, "social-job-page", full_page=True)

        assert page.is_hidden("[data-testid=unread-count]")
        off_thread(lambda: services.notify(user=world.member, project=world.project, kind="training_job.completed",
                                           title="Training job houses-1 completed", url=job_path))
        page.wait_for_selector("[data-testid=unread-count]:has-text('1')")
        page.click("[data-testid=notification-bell]")
        page.wait_for_url(re.compile(r".*/notifications/$"))
        shot(page, "social-notifications", full_page=True)
        page.click("[data-testid=notification-title]")
        page.wait_for_url(re.compile(re.escape(job_path) + "$"))
        page.wait_for_selector("[data-testid=unread-count]", state="hidden")

    log = tmp_path / "web.log"
    try:
        with web_server(log) as base:
            browse(lambda page: scenario(page, base))
    except Exception:
        print("--- web.log ---\n" + log.read_text(errors="replace")[-4000:])
        raise
    job.refresh_from_db()
    assert job.tags == ["baseline", "lr-sweep"] and job.notes == "First run on the new features."
