"""One endpoint instance: a process serving one model over HTTP (``python -m studio.endpoints.instance``).

The agent starts it before it is needed (a warm spare): the process imports numpy and the algorithms,
listens on an ephemeral port of ``--host`` and writes one JSON line to stdout::

    {"event": "listening", "port": 41234, "pid": 123}

The agent then writes the assignment as one JSON line to stdin::

    {"model_dir": "/data/endpoint-cache/<model id>", "variant": "blue", "feature_names": ["x1", ...]}

and the instance loads the model and answers ``{"event": "ready"}`` (or ``{"event": "error", "message": ...}``).
From then on ``GET /ping`` is 200 and ``POST /invocations`` answers ``{"predictions": [...], "variant": name}``:
400 with the message for a body the model cannot take, never 500 for bad input.

SIGTERM drains: the listening socket closes, requests in flight finish, then the process exits. The end of
stdin (the agent is gone) does the same, so instances never outlive their agent.

No Django here: the process starts in about a third of a second and holds only the model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import orjson
import uvicorn

from studio.core.env import env_int
from studio.endpoints.predictions import PayloadError, Predictor, dumps

logger = logging.getLogger("studio.endpoints.instance")

JSON_TYPE = (b"content-type", b"application/json")
# Real-time payloads are at most 6 MB (the gateway refuses more); the instance enforces the same limit
# for anyone on the host who calls it directly.
DEFAULT_MAX_BODY = 6 * 1024 * 1024


def _error(message: str) -> bytes:
    return dumps({"detail": message})


class InstanceApp:
    """The raw ASGI application of an instance: /ping and /invocations, no framework in between.

    Parameters
    ----------
    max_body_bytes : int
        Larger request bodies are answered 413.
    """

    def __init__(self, *, max_body_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.max_body_bytes = max_body_bytes
        self.predictor: Predictor | None = None
        self.variant = ""
        self.served = 0

    def assign(self, predictor: Predictor, variant: str) -> None:
        """Start serving ``predictor`` as ``variant`` (done once, when the agent gives the spare a model)."""
        self.variant = variant
        self.predictor = predictor

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/invocations":
            if scope["method"] != "POST":
                await _respond(send, 405, _error("POST the records to /invocations"))
                return
            await self._invoke(scope, receive, send)
        elif path == "/ping":
            if self.predictor is None:
                await _respond(send, 503, _error("no model assigned yet"))
            else:
                await _respond(send, 200, dumps({"status": "ok", "variant": self.variant, "served": self.served}))
        else:
            await _respond(send, 404, _error("not found: POST /invocations or GET /ping"))

    async def _invoke(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
                break
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _respond(send, 413, _error(f"the body is over {self.max_body_bytes} bytes"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        predictor = self.predictor
        if predictor is None:
            await _respond(send, 503, _error("no model assigned yet"))
            return
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            # Inline, not in a thread: requests are small and one process serves one model; the gateway
            # caps what is in flight here, so the event loop never queues much behind a prediction.
            out = predictor.invoke(body, content_type, variant=self.variant)
        except PayloadError as exc:
            await _respond(send, 400, _error(str(exc)))
            return
        except Exception as exc:
            logger.exception("prediction failed")
            await _respond(send, 500, _error(f"the model failed on this request: {type(exc).__name__}: {exc}"))
            return
        self.served += 1
        await _respond(send, 200, out)


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [JSON_TYPE, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _emit(stream: TextIO, lock: threading.Lock, document: dict[str, Any]) -> None:
    with lock:
        stream.write(orjson.dumps(document).decode() + "\n")
        stream.flush()


def _load(assignment: dict[str, Any]) -> Predictor:
    directory = assignment.get("model_dir")
    if not isinstance(directory, str) or not directory:
        raise ValueError("the assignment has no model_dir")
    names = assignment.get("feature_names") or None
    return Predictor.from_directory(Path(directory), feature_names=names)


def _read_assignments(app: InstanceApp, server: uvicorn.Server, stdin: TextIO, out: TextIO,
                      lock: threading.Lock) -> None:
    """Take the model from the agent on stdin; stop when stdin closes (the agent is gone)."""
    for line in stdin:
        if not line.strip():
            continue
        started = time.perf_counter()
        try:
            assignment = orjson.loads(line)
            if app.predictor is not None:
                raise ValueError("this instance already serves a model")
            predictor = _load(assignment)
            app.assign(predictor, str(assignment.get("variant") or ""))
        except Exception as exc:
            logger.exception("could not load the model")
            _emit(out, lock, {"event": "error", "message": f"{type(exc).__name__}: {exc}"[:480]})
            continue
        _emit(out, lock, {"event": "ready", "load_ms": round((time.perf_counter() - started) * 1000, 2)})
    server.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    """Run one instance until SIGTERM or the end of stdin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-body-bytes", type=int,
                        default=env_int("STUDIO_ENDPOINT_MAX_PAYLOAD_BYTES", DEFAULT_MAX_BODY))
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"%(asctime)s %(levelname)s instance[{os.getpid()}]: %(message)s")
    # stdout carries the protocol with the agent; anything else printed goes to stderr.
    protocol_out = sys.stdout
    sys.stdout = sys.stderr
    lock = threading.Lock()

    app = InstanceApp(max_body_bytes=args.max_body_bytes)
    sock = _bind(args.host, args.port)
    config = uvicorn.Config(app, http="auto", lifespan="off", access_log=False,
                            log_config=None, log_level="warning", timeout_keep_alive=75,
                            server_header=False, date_header=False)
    server = uvicorn.Server(config)
    reader = threading.Thread(target=_read_assignments, args=(app, server, sys.stdin, protocol_out, lock),
                              name="assignments", daemon=True)

    async def serve() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        if server.started:
            _emit(protocol_out, lock, {"event": "listening", "port": sock.getsockname()[1], "pid": os.getpid()})
            reader.start()
        await serving

    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:  # uvicorn without [standard]: the stdlib loop works, a little slower
            asyncio.run(serve())
        else:
            uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
