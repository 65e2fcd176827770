"""A stub HTTP server for the client's unit tests: canned answers per route, every request recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Stub:
    url: str = ""
    routes: dict[tuple[str, str], list[tuple[int, dict[str, str], bytes, int]]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, body: Any = None, *, status: int = 200, headers: dict[str, str] | None = None,
           raw: bytes | None = None, times: int = 0) -> None:
        """Answer ``method path`` with ``body`` (as JSON) or ``raw``; ``times`` answers then falls to the next."""
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        kind = {"Content-Type": "application/json"} if raw is None and body is not None else {}
        answers = self.routes.setdefault((method, path), [])
        answers.append((status, {**kind, **(headers or {})}, payload, times))

    def answer(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        answers = self.routes.get((method, path))
        if not answers:
            return 404, {"Content-Type": "application/json"}, b'{"detail": "Not found."}'
        status, headers, payload, times = answers[0]
        if times:
            if times == 1:
                answers.pop(0)
            else:
                answers[0] = (status, headers, payload, times - 1)
        return status, headers, payload


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            state.requests.append(Seen(self.command, parts.path, parts.query, dict(self.headers.items()), body))
            status, headers, payload = state.answer(self.command, parts.path)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_login(tmp_path, monkeypatch) -> None:
    """No saved login and no STUDIO_* variables: each test says what it uses."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("STUDIO_URL", "STUDIO_TOKEN", "STUDIO_PROJECT"):
        monkeypatch.delenv(name, raising=False)
