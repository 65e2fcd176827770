"""Notification POSTs of async invocations: delivered to a local server only when private targets are
allowed, refused otherwise; private, loopback, link-local, multicast and reserved addresses are refused."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from studio.endpoints import async_invocations as runner
from studio.endpoints import notifications
from studio.endpoints.models import AsyncInvocation
from studio.endpoints.notifications import notification_post, notification_url_problem
from studio.endpoints.predictions import Predictor
from tests.endpoints.test_async_runner import FakeInstance, async_endpoint, publish_routes, stored_invocation
from tests.endpoints.test_transform_runner import registry_model


class Receiver:
    """A local server recording the notification POSTs it receives and answering ``status``."""

    def __init__(self, status: int = 204, headers: dict | None = None, delay: float = 0.0) -> None:
        self.received: list[tuple[str, dict, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append((self.path, dict(self.headers), json.loads(body)))
                if delay:
                    threading.Event().wait(delay)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/studio?team=acme"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://example.com/x", "must start with http:// or https://"),
    ("http:///nohost", "has no host"),
    ("http://127.0.0.1:9/x", "loopback address 127.0.0.1"),
    ("http://localhost/x", "loopback address"),
    ("http://10.1.2.3/x", "private address 10.1.2.3"),
    ("http://192.168.0.10/x", "private address"),
    ("http://169.254.169.254/latest/meta-data", "link-local address 169.254.169.254"),
    ("http://[::1]/x", "loopback address ::1"),
    ("http://[::ffff:127.0.0.1]/x", "loopback address 127.0.0.1"),
    ("http://224.0.0.1/x", "multicast address"),
    ("http://0.0.0.0/x", "unspecified address"),
    ("http://240.0.0.1/x", "reserved address"),
    ("http://100.64.0.1/x", "address 100.64.0.1"),
    ("http://no-such-host.invalid/x", "cannot be resolved"),
])
def test_it_refuses_targets_inside_the_network(url, problem, settings):
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = False
    assert problem in notification_url_problem(url)


def test_it_allows_a_public_address_and_private_ones_only_when_told(settings, monkeypatch):
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = False
    assert notification_url_problem("https://93.184.215.14/hook") is None
    # A name that resolves to a public and a private address is refused: every address is checked.
    monkeypatch.setattr(notifications.socket, "getaddrinfo", lambda host, port, **kw: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))])
    assert "private address 10.0.0.5" in notification_url_problem("https://hooks.example.com/x")
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = True
    assert notification_url_problem("https://hooks.example.com/x") is None


def test_it_posts_to_a_local_server_only_when_private_targets_are_allowed(receiver, settings):
    payload = {"id": "abc", "status": "completed", "output_url": "/x", "failure_reason": ""}
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = False
    assert notification_post(receiver.url, payload).startswith("refused: the notification URL's host '127.0.0.1' "
                                                               "resolves to a loopback address")
    assert receiver.received == []
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = True
    assert notification_post(receiver.url, payload) == "delivered: HTTP 204"
    path, headers, body = receiver.received[0]
    assert path == "/hooks/studio?team=acme" and body == payload and headers["Content-Type"] == "application/json"


def test_it_follows_no_redirect_and_gives_up_after_the_timeout(settings):
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = True
    redirect = Receiver(status=302, headers={"Location": "http://169.254.169.254/"})
    slow = Receiver(delay=1.0)
    try:
        assert notification_post(redirect.url, {}) == "failed: HTTP 302 (redirects are not followed)"
        assert len(redirect.received) == 1
        assert notification_post(slow.url, {}, timeout=0.2) == "failed: timed out"
    finally:
        redirect.close()
        slow.close()


@pytest.mark.django_db
@pytest.mark.parametrize("allowed", [True, False])
def test_a_finished_invocation_notifies_its_endpoints_url(world, models, receiver, settings, allowed):
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = allowed
    settings.STUDIO_PUBLIC_URL = "https://studio.example.com"
    instance = FakeInstance(Predictor.from_directory(models("regressor").directory))
    try:
        endpoint = async_endpoint(world, registry_model(world, models, "regressor"),
                                  notification_url=receiver.url)
        publish_routes(endpoint, [instance.url])
        done = stored_invocation(endpoint, b"[1,2,3]\n", "application/jsonlines")
        failed = stored_invocation(endpoint, b'[1,"x",3]\n', "application/jsonlines")
        runner.async_invocation_run(invocation_id=done.id)
        runner.async_invocation_run(invocation_id=failed.id)
    finally:
        instance.close()
    done.refresh_from_db()
    failed.refresh_from_db()
    if not allowed:
        assert receiver.received == []
        assert done.notification_status.startswith("refused: ") and done.status == "completed"
        return
    assert done.notification_status == failed.notification_status == "delivered: HTTP 204"
    bodies = {body["id"]: body for _, _, body in receiver.received}
    assert bodies[str(done.id)] == {
        "id": str(done.id), "status": "completed", "failure_reason": "",
        "status_url": f"https://studio.example.com/api/v1/async-invocations/{done.id}",
        "output_url": f"https://studio.example.com/api/v1/async-invocations/{done.id}/output"}
    assert bodies[str(failed.id)]["status"] == "failed"
    assert "column 'f2' must be a number" in bodies[str(failed.id)]["failure_reason"]
    assert AsyncInvocation.objects.get(id=failed.id).status == "failed"
