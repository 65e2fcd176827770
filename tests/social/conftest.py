"""Social test helpers: Celery messages recorded instead of sent; a local server that receives webhooks."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from studio.social.tasks import webhook_deliver_task
from tests.training.factories import enqueued  # noqa: F401


class WebhookReceiver:
    """A local HTTP server keeping each POST's headers and raw body (a signature covers the exact bytes)."""

    def __init__(self, status: int = 204) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/studio"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def deliveries(monkeypatch) -> list[str]:
    """Webhook delivery ids handed to the broker; nothing is sent (tests run the task body themselves)."""
    sent: list[str] = []
    monkeypatch.setattr(webhook_deliver_task, "apply_async", lambda args=None, **kw: sent.append(args[0]))
    return sent


@pytest.fixture
def receiver(settings):
    """A webhook receiver on 127.0.0.1, reachable because private targets are allowed in this test."""
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = True
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def failing_receiver(settings):
    settings.STUDIO_NOTIFY_ALLOW_PRIVATE = True
    server = WebhookReceiver(status=500)
    yield server
    server.close()
