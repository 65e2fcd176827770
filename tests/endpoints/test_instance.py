"""The instance process: listening before it has a model, assignment on stdin, /ping, /invocations, drain."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from studio.endpoints.instance import InstanceApp
from studio.endpoints.predictions import Predictor
from tests.endpoints.conftest import json_body


@contextmanager
def instance_process() -> Iterator[tuple[subprocess.Popen, int]]:
    proc = subprocess.Popen([sys.executable, "-m", "studio.endpoints.instance"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        hello = json.loads(proc.stdout.readline())
        assert hello["event"] == "listening"
        assert hello["pid"] == proc.pid
        yield proc, hello["port"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def assign(proc: subprocess.Popen, **assignment) -> dict:
    proc.stdin.write(json.dumps(assignment) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def call(port: int, path: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_it_serves_a_model_once_assigned(models):
    fitted = models("logistic")
    with instance_process() as (proc, port):
        assert call(port, "/ping")[0] == 503
        assert call(port, "/invocations", json_body(fitted.records))[0] == 503
        ready = assign(proc, model_dir=str(fitted.directory), variant="blue")
        assert ready["event"] == "ready"
        status, out = call(port, "/ping")
        assert (status, out["variant"]) == (200, "blue")
        status, out = call(port, "/invocations", json_body(fitted.records))
        assert status == 200
        assert out["variant"] == "blue"
        assert [p["label"] for p in out["predictions"]] == fitted.estimator.predict(fitted.X).tolist()
        status, out = call(port, "/invocations", b"1,2\n", "text/csv")
        assert status == 400
        assert "record 1 has 2 values, the model expects 3: x1, x2, city" in out["detail"]
        assert call(port, "/invocations", b"x" * (6 * 1024 * 1024 + 1))[0] == 413
        assert call(port, "/elsewhere")[0] == 404
        # A second assignment is refused: an instance serves one model for its whole life.
        assert assign(proc, model_dir=str(fitted.directory), variant="green")["event"] == "error"
        assert call(port, "/ping")[1]["variant"] == "blue"
        # The end of stdin means the agent is gone: the instance stops by itself.
        proc.stdin.close()
        assert proc.wait(timeout=10) is not None


def test_it_reports_a_model_it_cannot_load(tmp_path):
    with instance_process() as (proc, port):
        answer = assign(proc, model_dir=str(tmp_path), variant="blue")
        assert answer["event"] == "error"
        assert "manifest.json not found" in answer["message"]
        assert call(port, "/ping")[0] == 503


def test_it_finishes_a_request_in_flight_when_told_to_drain(models):
    fitted = models("logistic")
    body = json_body(fitted.records)
    with instance_process() as (proc, port):
        assert assign(proc, model_dir=str(fitted.directory), variant="blue")["event"] == "ready"
        client = socket.create_connection(("127.0.0.1", port))
        head = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        client.sendall(head + body[:10])  # in flight: headers and part of the body are in
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        refused = False
        while time.monotonic() < deadline and not refused:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                time.sleep(0.05)
            except OSError:
                refused = True
        assert refused, "a draining instance must stop accepting connections"
        assert proc.poll() is None, "it must wait for the request in flight"
        client.sendall(body[10:])
        response = b""
        while chunk := client.recv(65536):  # a draining server closes the connection after answering
            response += chunk
        client.close()
        assert response.startswith(b"HTTP/1.1 200")
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["variant"] == "blue"
        proc.wait(timeout=10)


async def test_it_answers_asgi_calls_without_a_server(models):
    """The raw ASGI app on its own: methods, paths and a prediction error that is the client's."""
    app = InstanceApp(max_body_bytes=1000)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    def receiver(*bodies: bytes):
        messages = [{"type": "http.request", "body": b, "more_body": i < len(bodies) - 1}
                    for i, b in enumerate(bodies)]

        async def receive() -> dict:
            return messages.pop(0)
        return receive

    async def run(method: str, path: str, *bodies: bytes) -> tuple[int, dict]:
        sent.clear()
        scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-type", b"application/json")]}
        await app(scope, receiver(*bodies or (b"",)), send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    assert (await run("GET", "/invocations"))[0] == 405
    app.assign(Predictor.from_directory(models("regressor").directory), "green")
    status, out = await run("POST", "/invocations", b'{"instances": [[1, ', b"2, 3]]}")
    assert status == 200
    assert out["variant"] == "green"
    assert list(out["predictions"][0]) == ["score"]
    assert (await run("POST", "/invocations", b"[" * 600, b"]" * 600))[0] == 413
    status, out = await run("POST", "/invocations", b'{"instances": [[1, 2]]}')
    assert status == 400
    assert "expects 3" in out["detail"]


@pytest.mark.parametrize("name", ["image-classification", "summarization"])
def test_it_serves_media_models_in_a_process(models, name):
    fitted = models(name)
    with instance_process() as (proc, port):
        assert assign(proc, model_dir=str(fitted.directory), variant="v")["event"] == "ready"
        status, out = call(port, "/invocations", json_body(fitted.records))
        assert status == 200
        assert len(out["predictions"]) == len(fitted.records)
