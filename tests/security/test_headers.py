"""Security headers on every kind of response, cookie flags, no CORS, websocket origin checks, and a browser run
showing the Content-Security-Policy breaks none of the pages (no violation reported while they load and work)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connections
from django.test import Client

from studio.asgi import application
from tests.conftest import PASSWORD, api_client
from tests.datasets.conftest import upload
from tests.e2e.conftest import browse  # noqa: F401 - the browser fixture of the e2e tests, used by name

EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CSP_DIRECTIVES = ["default-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'",
                  "frame-ancestors 'none'"]


def assert_secure_headers(response, where: str) -> None:
    for name, value in EXPECTED_HEADERS.items():
        if name == "Cross-Origin-Opener-Policy" and where == "/api/docs/":
            # drf-spectacular sets unsafe-none on Swagger UI on purpose (its OAuth2 pop-up); the page only reads
            # this origin's schema.
            continue
        assert response.get(name) == value, f"{where}: {name} is {response.get(name)!r}"
    csp = response.get("Content-Security-Policy", "")
    for directive in CSP_DIRECTIVES:
        assert directive in csp, f"{where}: CSP lacks {directive!r}: {csp}"
    # Only this origin: no other host appears in the policy (the websocket entries name this host).
    hosts = set(re.findall(r"(?:https?|wss?)://([^\s;]+)", csp))
    assert hosts <= {"testserver"}, f"{where}: CSP allows other hosts {hosts}"
    assert "camera=()" in response.get("Permissions-Policy", ""), where
    assert "Access-Control-Allow-Origin" not in response, where


PUBLIC_URLS = ["/login/", "/signup/", "/", "/api/v1/me", "/static/studio/studio.css", "/api/schema/", "/api/docs/",
               "/admin/login/", "/health/", "/no-such-page/"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_every_kind_of_response_carries_the_security_headers(url):
    response = Client().get(url)
    assert response.status_code < 500, (url, response.status_code)
    assert_secure_headers(response, url)


def page_urls(world, dataset) -> list[str]:
    p = world.project.id
    return ["/", f"/projects/{p}/", f"/projects/{p}/data/", f"/projects/{p}/data/{dataset.id}/",
            f"/projects/{p}/training/", f"/projects/{p}/training/new/", f"/projects/{p}/models/",
            f"/projects/{p}/endpoints/", f"/projects/{p}/pipelines/", f"/teams/{world.team.slug}/", "/settings/tokens/",
            "/api/docs/"]


class _References(HTMLParser):
    """Every URL a page makes the browser load or submit to (scripts, styles, images, frames, forms)."""

    ATTRIBUTES = {"script": "src", "link": "href", "img": "src", "iframe": "src", "frame": "src", "embed": "src",
                  "object": "data", "form": "action", "source": "src", "audio": "src", "video": "src"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        wanted = self.ATTRIBUTES.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.mark.django_db
def test_pages_load_nothing_from_another_origin(world):
    dataset = upload(world, b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n", "small.csv")
    client = Client()
    client.force_login(world.member)
    for url in page_urls(world, dataset):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert_secure_headers(response, url)
        parser = _References()
        parser.feed(response.content.decode())
        foreign = [u for u in parser.urls if urlsplit(u).netloc not in ("", "testserver")
                   and not u.startswith(("data:", "blob:"))]
        assert not foreign, f"{url} loads from another origin: {foreign}"


@pytest.mark.django_db
def test_cookies_are_httponly_samesite_and_secure_when_asked(world, settings):
    client = Client()
    client.get("/login/")
    csrf = client.cookies[django_settings.CSRF_COOKIE_NAME]
    assert csrf["samesite"] == "Lax"
    response = client.post("/login/", {"username": world.member.username, "password": PASSWORD})
    assert response.status_code == 302
    session = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert session["httponly"] and session["samesite"] == "Lax" and not session["secure"]
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True  # what SECURE_COOKIES=true sets
    secure = Client()
    response = secure.post("/login/", {"username": world.member.username, "password": PASSWORD}, secure=True)
    assert response.cookies[django_settings.SESSION_COOKIE_NAME]["secure"]


@pytest.mark.django_db
def test_hsts_and_the_https_redirect_when_configured(settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # a new client builds its middleware from the settings as they are now
    assert client.get("/login/").status_code == 301
    response = client.get("/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
def test_there_is_no_cors_for_other_origins(world):
    client = api_client(world.member)
    response = client.get("/api/v1/me", HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response
    preflight = Client().options("/api/v1/projects", HTTP_ORIGIN="https://evil.example",
                                 HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                 HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type")
    assert not any(h.startswith("Access-Control-Allow") for h in preflight.headers), dict(preflight.headers)


# --- websockets ----------------------------------------------------------------------------------------------------


@pytest.fixture
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("origin", "accepted"), [
    (b"http://testserver", True),
    (b"https://evil.example", False),
    (b"http://testserver.evil.example", False),
    (b"null", False),
    (None, False),
])
async def test_websockets_from_another_origin_are_refused(world, close_thread_connections, origin, accepted):
    """A page on another site could open a websocket with the user's cookie (SameSite=Lax does not cover it in every
    browser): the origin check refuses it before the consumer runs."""
    headers = [(b"host", b"testserver"), (b"cookie", await sync_to_async(_session_cookie)(world.member))]
    if origin is not None:
        headers.append((b"origin", origin))
    comm = WebsocketCommunicator(application, f"/ws/projects/{world.project.id}/", headers=headers)
    connected, _ = await comm.connect()
    assert connected is accepted
    await comm.disconnect()


# --- in a browser: the policy breaks nothing -----------------------------------------------------------------------

CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
  `${e.violatedDirective} blocked ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`));
"""


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_content_security_policy_breaks_no_page_in_a_browser(world, browse, tmp_path):  # noqa: F811
    from tests.processes import web_server_with

    dataset = upload(world, b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n", "small.csv")
    urls = [u for u in page_urls(world, dataset) if u != "/"]
    seen: dict[str, list[str]] = {}

    def scenario(page, base: str) -> None:
        page.set_default_timeout(20_000)
        page.add_init_script(CSP_RECORDER)
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{base}/login/")
        page.fill("#id_username", world.member.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for url in urls:
            page.goto(base + url)
            page.wait_for_load_state("networkidle")
            seen[url] = page.evaluate("window.__cspViolations") + console[:]
            console.clear()

    # STUDIO_TESTING: the server checks passwords with the test hasher the users here were made with.
    with web_server_with(tmp_path / "web.log", {"STUDIO_TESTING": "1"}) as base:
        browse(lambda page: scenario(page, base))
    violations = {url: v for url, v in seen.items() if v}
    assert len(seen) == len(urls) and not violations, violations
