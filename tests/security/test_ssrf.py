"""Server-side request forgery: async notification URLs and user webhooks must never reach the studio's own network.

Refused when saved (endpoint creation, webhook settings) and again when sent (a name may resolve elsewhere by then):
loopback, private ranges, link-local (cloud metadata), CGNAT, IPv6 loopback/ULA/link-local/site-local, IPv4 hidden in
IPv6 (mapped, 6to4, NAT64), decimal/octal/hex/short IPv4 spellings, names resolving to any of those (the resolver is
monkeypatched: no test here looks up a real name), and redirects, which are never followed. Every check also watches
``socket.create_connection``: a refused target must not even be connected to.
"""

from __future__ import annotations

import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from studio.endpoints import notifications
from studio.endpoints.async_invocations import _notify
from studio.endpoints.models import AsyncInvocation, Endpoint, EndpointVariant
from studio.endpoints.notifications import notification_post, notification_url_problem
from studio.social.models import Webhook
from tests.conftest import api_client
from tests.registry.conftest import bare_model

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

# Literal hosts: resolved (numerically, no DNS) by the real getaddrinfo, as the studio would.
LITERAL_URLS = [
    "http://127.0.0.1/", "http://127.8.9.10:8000/x", "http://localhost/", "http://0.0.0.0/", "http://0/",
    "http://10.0.0.1/", "http://172.16.0.1/", "http://172.31.255.254/", "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://100.100.100.200/", "http://192.0.0.8/",
    "http://198.18.0.1/", "http://224.0.0.1/", "http://255.255.255.255/", "http://240.0.0.1/",
    # the same hosts in other spellings
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://0177.0000.0000.0001/", "http://127.1/",
    "http://0x7f.0x0.0x0.0x1/", "http://167772161/", "http://0xa9fea9fe/", "http://HTTP@127.0.0.1/",
    "http://user:pass@10.0.0.1/", "http://example.com@127.0.0.1/", "HTTP://127.0.0.1/", " http://127.0.0.1/ ",
    "http://\u2460\u2461\u2466.0.0.1/",
    # IPv6 and IPv4 inside IPv6
    "http://[::1]/", "http://[::]/", "http://[fc00::1]/", "http://[fd12:3456:789a::1]/", "http://[fe80::1]/",
    "http://[fec0::1]/", "http://[ff02::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/",
    "http://[fd00:ec2::254]/",
    # not http(s), or no host
    "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://10.0.0.1/", "dict://127.0.0.1:6379/info",
    "http:///nohost", "http:/127.0.0.1/", "//127.0.0.1/", "", "   ",
]

# Names resolving (through the monkeypatched resolver) to internal addresses.
INTERNAL_ADDRESSES = ["127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.5.5", "169.254.169.254", "100.100.100.200",
                      "0.0.0.0", "::1", "fd00::1", "fe80::1%2", "::ffff:10.0.0.1", "2002:a9fe:a9fe::",
                      "64:ff9b::a9fe:a9fe", "fd00:ec2::254"]


class Connections:
    """Records every outgoing connection attempt; refused targets must never appear here."""

    def __init__(self, monkeypatch, *, allow: bool = False) -> None:
        self.attempts: list[tuple[str, int]] = []
        real = socket.create_connection

        def record(address, *args, **kwargs):
            self.attempts.append(address)
            if not allow:
                raise OSError("connections are not allowed in this test")
            return real(address, *args, **kwargs)

        monkeypatch.setattr(notifications.socket, "create_connection", record)


class Resolver:
    """A fake getaddrinfo for test names (``*.example.com``); anything else (Redis, numeric hosts) resolves for real."""

    def __init__(self, monkeypatch) -> None:
        self.names: dict[str, list[str]] = {}
        self.calls: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if isinstance(host, str) and host.endswith(".example.com"):
                self.calls.append(host)
                addresses = self.names.get(host)
                if addresses is None:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
                return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                         (a, port) if ":" not in a else (a, port, 0, 0)) for a in addresses]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(notifications.socket, "getaddrinfo", getaddrinfo)

    def point(self, host: str, *addresses: str) -> None:
        self.names[host] = list(addresses)


@pytest.fixture
def resolver(monkeypatch) -> Resolver:
    return Resolver(monkeypatch)


@pytest.fixture
def no_private(settings):
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = False


@pytest.mark.parametrize("url", LITERAL_URLS)
def test_it_refuses_internal_targets_in_any_spelling(url, no_private, monkeypatch):
    connections = Connections(monkeypatch)
    problem = notification_url_problem(url)
    assert problem, f"{url!r} was accepted"
    assert notification_post(url, {"x": 1}).startswith("refused: ")
    assert connections.attempts == []


@pytest.mark.parametrize("address", INTERNAL_ADDRESSES)
def test_it_refuses_names_that_resolve_inside_the_network(address, no_private, resolver, monkeypatch):
    connections = Connections(monkeypatch)
    resolver.point("hooks.example.com", address)
    problem = notification_url_problem("https://hooks.example.com/studio")
    assert problem and "address" in problem, problem
    # One internal address among public ones is enough to refuse: every address is checked.
    resolver.point("mixed.example.com", PUBLIC_V4, PUBLIC_V6, address)
    assert notification_url_problem("https://mixed.example.com/studio")
    assert notification_post("https://mixed.example.com/studio", {}).startswith("refused: ")
    assert connections.attempts == []


def test_it_accepts_public_addresses(no_private, resolver):
    resolver.point("hooks.example.com", PUBLIC_V4, PUBLIC_V6)
    assert notification_url_problem("https://hooks.example.com/studio") is None
    assert notification_url_problem(f"http://{PUBLIC_V4}:8080/x") is None
    assert notification_url_problem(f"https://[{PUBLIC_V6}]/x") is None


def test_it_checks_again_when_sending_and_connects_only_to_the_address_it_checked(no_private, resolver, monkeypatch):
    connections = Connections(monkeypatch)
    # DNS rebinding: public when saved, loopback when the notification goes out.
    resolver.point("rebind.example.com", PUBLIC_V4)
    assert notification_url_problem("http://rebind.example.com/hook") is None
    resolver.point("rebind.example.com", "127.0.0.1")
    assert "loopback address 127.0.0.1" in notification_post("http://rebind.example.com/hook", {})
    assert connections.attempts == []
    # A resolver that answers differently on each lookup cannot swap an address in between check and connect:
    # the studio resolves once and connects to exactly what it checked.
    answers = iter([[PUBLIC_V4], ["127.0.0.1"], ["127.0.0.1"]])
    real = resolver.names

    class Flipping(dict):
        def get(self, host, default=None):
            return next(answers) if host == "flip.example.com" else real.get(host, default)

    resolver.names = Flipping()
    result = notification_post("http://flip.example.com/hook", {})
    assert result.startswith("failed: "), result  # the test's connection guard refused the (public) connection
    assert connections.attempts == [(PUBLIC_V4, 80)]
    assert resolver.calls.count("flip.example.com") == 1


class Redirector:
    """A loopback server answering every POST with a redirect to an internal address."""

    def __init__(self, status: int, location: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits += 1
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379/",
                                      "http://[::1]/", "http://internal.example.com/"])
def test_it_never_follows_a_redirect(settings, monkeypatch, status, location):
    # Private targets allowed only so that the loopback redirector itself can be reached at all.
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = True
    connections = Connections(monkeypatch, allow=True)
    redirector = Redirector(status, location)
    try:
        result = notification_post(redirector.url, {"x": 1})
    finally:
        redirector.close()
    assert result == f"failed: HTTP {status} (redirects are not followed)"
    assert redirector.hits == 1
    assert [host for host, _ in connections.attempts] == ["127.0.0.1"]


# --- through the API: refused when saved -----------------------------------------------------------------------

SAVED_URLS = ["http://127.0.0.1:9/hook", "http://2130706433/hook", "http://0x7f000001/", "http://[::ffff:127.0.0.1]/",
              "http://169.254.169.254/latest", "http://[fd00::1]/", "http://[2002:a9fe:a9fe::]/",
              "https://internal.example.com/hook", "file:///etc/passwd", "gopher://127.0.0.1:6379/_"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", SAVED_URLS)
def test_the_api_refuses_an_internal_webhook_url(world, no_private, resolver, url):
    resolver.point("internal.example.com", "10.0.0.7")
    response = api_client(world.member).patch("/api/v1/notifications/webhook", {"url": url, "enabled": True},
                                              format="json")
    assert response.status_code == 400 and "url" in response.json()["errors"], response.content
    assert not Webhook.objects.filter(user=world.member).exclude(url="").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", SAVED_URLS)
def test_the_api_refuses_an_internal_async_notification_url(world, no_private, resolver, url):
    resolver.point("internal.example.com", "10.0.0.7")
    model = bare_model(world.project, name=f"m-{uuid.uuid4().hex[:6]}")
    response = api_client(world.member).post(f"/api/v1/projects/{world.project.id}/endpoints", {
        "name": "async-ep", "type": "async",
        "variants": [{"name": "main", "model": str(model.id), "weight": 1.0, "min_instances": 0, "max_instances": 1}],
        "async": {"max_payload_mb": 10, "notification_url": url}}, format="json")
    assert response.status_code == 400, response.content
    assert "async.notification_url" in response.json()["errors"], response.json()
    assert not Endpoint.objects.filter(project=world.project, name="async-ep").exists()


# --- through the services: refused again when sent ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_webhook_saved_while_public_is_refused_when_its_name_turns_internal(world, no_private, resolver,
                                                                              monkeypatch):
    connections = Connections(monkeypatch)
    resolver.point("hooks.example.com", PUBLIC_V4)
    client = api_client(world.member)
    saved = client.patch("/api/v1/notifications/webhook", {"url": "https://hooks.example.com/studio",
                                                             "enabled": True}, format="json")
    assert saved.status_code == 200, saved.content
    resolver.point("hooks.example.com", "169.254.169.254")
    tested = client.post("/api/v1/notifications/webhook/test")
    assert tested.status_code == 200
    assert tested.json()["status"] == "refused" and "link-local" in tested.json()["last_result"], tested.json()
    assert connections.attempts == []


@pytest.mark.django_db
def test_an_async_notification_is_refused_when_its_name_turns_internal(world, no_private, resolver, monkeypatch):
    connections = Connections(monkeypatch)
    resolver.point("hooks.example.com", "10.9.8.7")
    endpoint = Endpoint.objects.create(project=world.project, name="ep", type="async", status="in_service",
                                       async_config={"notification_url": "https://hooks.example.com/done"})
    EndpointVariant.objects.create(endpoint=endpoint, name="main", model=bare_model(world.project))
    invocation = AsyncInvocation.objects.create(endpoint=endpoint, status="completed")
    _notify(invocation)
    invocation.refresh_from_db()
    assert invocation.notification_status.startswith("refused: ") and "10.9.8.7" in invocation.notification_status
    assert connections.attempts == []
