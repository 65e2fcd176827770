"""Collaboration in a real browser: invite by username and by link, a viewer is read-only, promotion shows buttons."""

from __future__ import annotations

import re

import pytest

from tests.conftest import classification_csv
from tests.e2e.test_studio_flow import new_project, shot, upload
from tests.processes import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
# What a member sees on the project pages and a viewer must not.
MEMBER_ACTIONS = {"": ["Upload data", "Train a model"], "training/": ["Train a model"],
                  "tuning/": ["New tuning job"], "endpoints/": ["New endpoint"]}


def test_it_invites_a_viewer_who_reads_but_cannot_act_until_promoted(browse, tmp_path):
    try:
        with web_server(tmp_path / "web.log") as base:
            browse(lambda page: collaboration(page, base, tmp_path))
    except Exception:
        print("--- web.log ---\n" + (tmp_path / "web.log").read_text(errors="replace")[-4000:])
        raise


def sign_up(page, base: str, username: str) -> None:
    page.goto(f"{base}/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def new_page(page):
    """A page in a fresh browser context: another person with their own cookies."""
    context = page.context.browser.new_context(viewport={"width": 1366, "height": 900})
    other = context.new_page()
    other.set_default_timeout(20_000)
    return other


def button_texts(page) -> str:
    return " | ".join(page.locator("main .btn").all_inner_texts())


def direct_post(page, url: str, fields: dict, *, json_body: bool) -> int:
    """POST a valid request from the viewer's own session, as a hand-made one would: the server must refuse it."""
    return page.evaluate(
        """async ([url, fields, asJson]) => {
            const csrf = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
            const body = asJson ? JSON.stringify(fields) : new URLSearchParams({csrfmiddlewaretoken: csrf, ...fields});
            const headers = {'X-CSRFToken': csrf};
            if (asJson) headers['Content-Type'] = 'application/json';
            const response = await fetch(url, {method: 'POST', headers, body, credentials: 'same-origin'});
            return response.status;
        }""",
        [url, fields, json_body],
    )


def collaboration(owner, base: str, tmp_path) -> None:
    project_url = new_project(owner, base, username="olivia", team="Acme ML", project="Churn")
    project_id = project_url.rstrip("/").rsplit("/", 1)[1]
    team_url = base + owner.locator("nav.sidenav .team a").get_attribute("href")
    csv_path = tmp_path / "churn.csv"
    csv_path.write_bytes(classification_csv(n=60))
    dataset_id = upload(owner, csv_path, target="churned")
    train = {"algorithm": "linear-learner", "dataset": dataset_id, "target": "churned"}

    vera = new_page(owner)
    sign_up(vera, base, "vera")
    assert "not in a team yet" in vera.content()

    # The owner invites vera by username as a viewer, and makes a single-use link for someone without an account.
    owner.goto(team_url)
    owner.fill("#id_invite_username", "vera")
    owner.select_option("#id_invite_role", "viewer")
    owner.click("[data-testid=invite-user]")
    owner.wait_for_selector("text=Invited vera as viewer")
    owner.select_option("#id_link_role", "viewer")
    owner.fill("#id_link_uses", "1")
    owner.click("[data-testid=create-invite-link]")
    link = owner.input_value("[data-testid=new-invite-link]")
    assert re.fullmatch(rf"{re.escape(base)}/invite/inv_[\w-]+/", link), link
    shot(owner, "team-invitations", full_page=True)

    # vera finds the invitation on her home page and accepts it.
    vera.goto(f"{base}/")
    vera.wait_for_selector("[data-testid=pending-invitations] >> text=Acme ML")
    vera.click("[data-testid=accept-invitation]")
    vera.wait_for_url(re.compile(r".*/teams/[\w-]+/$"))
    assert vera.inner_text("[data-testid=my-role]") == "viewer"
    assert "Invite people" not in vera.content()

    # lena opens the link signed out, signs up on the way and joins.
    lena = new_page(owner)
    lena.goto(link)
    lena.click("[data-testid=invite-signup]")
    lena.wait_for_url(re.compile(r".*/signup/\?next=.*"))
    lena.fill("#id_username", "lena")
    lena.fill("#id_password", PASSWORD)
    lena.click("button[type=submit]")
    lena.wait_for_url(link)
    lena.click("[data-testid=join-team]")
    lena.wait_for_url(re.compile(r".*/teams/[\w-]+/$"))
    assert lena.inner_text("[data-testid=my-role]") == "viewer"
    # The link was for one person: a second use is refused with the reason.
    extra = new_page(owner)
    sign_up(extra, base, "max")
    extra.goto(link)
    assert "used as many times as allowed" in extra.inner_text("[data-testid=invite-unusable]")

    # As a viewer, vera reads every project page but is offered no action, and a hand-made POST is refused.
    for path, actions in MEMBER_ACTIONS.items():
        vera.goto(project_url + path)
        texts = button_texts(vera)
        for action in actions:
            assert action not in texts, f"viewer sees '{action}' on {path}"
    vera.goto(project_url + "data/")
    assert vera.locator("#id_file").count() == 0  # no upload form
    vera.goto(f"{project_url}data/{dataset_id}/")
    assert "Train on this dataset" not in button_texts(vera) and "Delete" not in button_texts(vera)
    shot(vera, "viewer-dataset")
    assert direct_post(vera, f"/api/v1/projects/{project_id}/training-jobs", train, json_body=True) == 403
    assert direct_post(vera, f"/projects/{project_id}/training/new/", train, json_body=False) == 403
    vera.goto(project_url + "training/new/")
    assert "needs the member role" in vera.content() or vera.locator("#training-job-form").count() == 0

    # The owner promotes vera to member; the actions appear for her.
    owner.goto(team_url)
    owner.select_option("[data-testid=role-vera]", "member")
    owner.click("[data-testid=save-role-vera]")
    owner.wait_for_selector("text=vera is now member of Acme ML")
    for path, actions in MEMBER_ACTIONS.items():
        vera.goto(project_url + path)
        texts = button_texts(vera)
        for action in actions:
            assert action in texts, f"member does not see '{action}' on {path}: {texts}"
    vera.goto(project_url + "training/")
    vera.click("a.btn:has-text('Train a model')")
    vera.wait_for_selector("#training-job-form")
    vera.goto(team_url)
    assert vera.inner_text("[data-testid=my-role]") == "member"
