"""Every project page, rendered for a viewer, offers no action a viewer cannot take.

The URLconf is walked like tests/core/test_tenancy.py does, so a page added later is checked without
anyone remembering to. On each page a viewer must find:
- no form that posts (nor htmx attribute that writes), except the few a viewer may use (sign out, leave);
- no link to a page that refuses them (403): "Train a model" pointing at a form they cannot submit;
- no button or button-styled link named after a write (create, delete, stop, deploy, approve...).
The same walk as an owner must find such actions, which shows the checks see them at all.
Viewers may not write comments: a comment form counts as a write like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import Resolver404, resolve

from studio.accounts.models import Membership, Role
from studio.accounts.services import invitation_create
from studio.training.models import TrainingJob
from studio.tuning.models import TuningJob, TuningTrial
from tests.conftest import PASSWORD
from tests.core.test_tenancy import _fill, _routes, victims  # noqa: F401  (victims is the fixture we reuse)

pytestmark = pytest.mark.django_db

# Forms a viewer may submit: their own session, their own membership and invitations addressed to them.
VIEWER_POSTS = {"logout", "team-leave", "my-invitation-accept", "my-invitation-decline"}
WRITE_ATTRIBUTES = ("hx-post", "hx-put", "hx-patch", "hx-delete")
ACTION_WORDS = re.compile(
    r"\b(create|new|add|upload|train|tune|run|start|retry|stop|deploy|delete|remove|approve|reject|reset|"
    r"register|revoke|save|edit|use|invite|transfer|send|comment|promote|scale|cancel|drain)\b", re.I)
# Actions any signed-in user may take whatever their role in this team: their session, membership, own teams.
ACTION_ALLOWED_TEXT = {"sign out", "leave", "new team", "create a team"}
SKIPPED_PAGES: set[str] = set()


@dataclass
class Found:
    posts: list[str] = field(default_factory=list)  # resolved url names of writing forms / htmx writes
    links: list[str] = field(default_factory=list)  # internal hrefs
    action_labels: list[str] = field(default_factory=list)  # texts of buttons and .btn links


class PageParser(HTMLParser):
    """Collects what a page lets its reader do; enough HTML understanding for our own templates."""

    def __init__(self, page_url: str):
        super().__init__()
        self.page_url = page_url
        self.found = Found()
        self._label: list[str] | None = None
        self._label_tag = ""
        self._in_post_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._in_post_form = (a.get("method") or "get").lower() == "post"
            if self._in_post_form:
                self.found.posts.append(a.get("action") or self.page_url)
        for name in WRITE_ATTRIBUTES:
            if a.get(name):
                self.found.posts.append(a[name])
        if tag == "a" and a.get("href", "").startswith("/"):
            self.found.links.append(a["href"])
        classes = (a.get("class") or "").split()
        is_button = tag == "button" or (tag == "a" and "btn" in classes)
        # Client-side buttons (copy, tabs, close) change nothing on the server; a submit button does.
        client_side = tag == "button" and a.get("type") == "button" and not self._in_post_form
        if is_button and not client_side and self._label is None:
            self._label, self._label_tag = [], tag

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_post_form = False
        if self._label is not None and tag == self._label_tag:
            self.found.action_labels.append(" ".join("".join(self._label).split()))
            self._label = None

    def handle_data(self, data):
        if self._label is not None:
            self._label.append(data)


def parse(html: str, page_url: str) -> Found:
    parser = PageParser(page_url)
    parser.feed(html)
    return parser.found


def url_name(url: str) -> str:
    try:
        return resolve(urlsplit(url).path).url_name or "?"
    except Resolver404:
        return f"unresolved:{url}"


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def project_pages(values: dict) -> list[tuple[str, str]]:
    """(url, name) of every page route of a project (not the API), filled with objects of world.project."""
    pages = []
    for route, name in _routes():
        if route.startswith("api/") or "project_id>" not in route or name in SKIPPED_PAGES:
            continue
        pages.append((_fill(route, values), name))
    return pages


def team_pages(world) -> list[tuple[str, str]]:
    return [("/", "home"), (f"/teams/{world.team.slug}/", "team-detail")]


def problems_on(client: Client, url: str, html: str, link_status: dict[str, int]) -> list[str]:
    found = parse(html, url)
    problems = [f"posts to {url_name(p)} ({p})" for p in found.posts if url_name(p) not in VIEWER_POSTS]
    problems += [f"shows '{label}'" for label in found.action_labels
                 if ACTION_WORDS.search(label) and label.lower() not in ACTION_ALLOWED_TEXT]
    for href in found.links:
        if href.startswith(("/static/", "/admin/")):
            continue
        if href not in link_status:
            link_status[href] = client.get(href).status_code
        if link_status[href] == 403:
            problems.append(f"links to {href} ({url_name(href)}), which refuses a viewer")
    return problems


def walk(client: Client, pages: list[tuple[str, str]], *, owner: Client) -> tuple[dict[str, list[str]], int]:
    """Problems per page, and how many pages rendered (a viewer may be refused a form page outright)."""
    link_status: dict[str, int] = {}
    problems, rendered = {}, 0
    for url, name in pages:
        response = client.get(url)
        if response.status_code in (400, 404):
            # The fixture's objects do not fit every route (no stored file to download, not a word2vec job,
            # a compare page without runs): fine as long as the owner gets the same answer, i.e. not the role.
            assert owner.get(url).status_code == response.status_code, f"GET {url} ({name}): role-dependent"
            continue
        assert response.status_code in (200, 403, 405), f"GET {url} ({name}) answered {response.status_code}"
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        rendered += 1
        found = problems_on(client, url, response.content.decode(), link_status)
        if found:
            problems[f"{name} {url}"] = found
    return problems, rendered


@pytest.fixture
def rich_victims(world, victims):  # noqa: F811
    """The tenancy objects with more on their pages: a tuning job with a best model, an invitation at home."""
    trial = TuningTrial.objects.create(tuning_job_id=victims["tuning_job_id"], number=1, objective_value=0.1,
                                       training_job=TrainingJob.objects.get(id=victims["job_id"]))
    TuningJob.objects.filter(id=victims["tuning_job_id"]).update(best_trial=trial, best_objective=0.1)
    invitation_create(actor=world.outsider, team=world.other_team, role="member", username=world.viewer.username)
    return victims


def test_it_shows_a_viewer_no_action_on_any_project_page(world, rich_victims):
    pages = project_pages(rich_victims) + team_pages(world)
    problems, rendered = walk(signed_in(world.viewer), pages, owner=signed_in(world.owner))
    assert rendered >= 20, f"only {rendered} pages rendered: the walk is not looking at the pages"
    assert problems == {}


def test_it_refuses_the_viewer_the_form_pages_it_hides(world, victims):  # noqa: F811
    client = signed_in(world.viewer)
    for name in ("training-job-create", "tuning-job-create", "endpoint-create", "transform-job-create"):
        url = next(u for u, n in project_pages(victims) if n == name)
        assert client.get(url).status_code == 403, name
        assert client.post(url, {}).status_code == 403, name


def test_it_shows_owners_the_actions_the_checks_look_for(world, rich_victims):
    """The same walk as the owner finds writes: proof the viewer's clean result is not a blind parser."""
    owner = signed_in(world.owner)
    problems, _ = walk(owner, project_pages(rich_victims) + team_pages(world), owner=owner)
    flagged = "\n".join(p for page in problems.values() for p in page)
    for expected in ("posts to project-delete", "posts to dataset-delete", "posts to training-job-stop",
                     "shows 'Train a model'", "shows 'New endpoint'", "posts to invitation-create",
                     "shows 'Register / deploy best model'"):
        assert expected in flagged, expected


def test_it_shows_members_what_they_may_do_but_not_admin_actions(world, victims):  # noqa: F811
    client = signed_in(world.member)
    overview = client.get(f"/projects/{world.project.id}/").content.decode()
    assert "Train a model" in overview and "Delete project" not in overview
    team = client.get(f"/teams/{world.team.slug}/").content.decode()
    assert "Create project" in team and "Invite people" not in team and "Transfer ownership" not in team


def test_it_shows_buttons_once_a_viewer_is_promoted(world, victims):  # noqa: F811
    client = signed_in(world.viewer)
    url = f"/projects/{world.project.id}/training/"
    assert "Train a model" not in client.get(url).content.decode()
    Membership.objects.filter(user=world.viewer, team=world.team).update(role=Role.MEMBER)
    assert "Train a model" in client.get(url).content.decode()
