"""A tiny round-robin HTTP + websocket reverse proxy (aiohttp) standing in for a production load balancer.

Each HTTP request (not each connection: a keep-alive client still alternates) and each websocket goes to the
next backend in turn, so a test that talks to one address really spreads over every web process, as behind
nginx or a cloud load balancer. It runs in its own thread and event loop so the test may block (start
processes, sleep) without stalling proxied traffic.

For the test's assertions it records which backend served what (``served``), names the backend in an
``X-Proxy-Backend`` response header, and lets a request pin a backend with an ``X-Proxy-Backend: <index>``
request header ("watch from the *other* web process"). Bodies are read whole before forwarding: fine for a
test proxy carrying small uploads, not a production one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

import aiohttp
from aiohttp import web

PIN_HEADER = "X-Proxy-Backend"
# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never forwarded; Host is kept (the
# backend must see the address the client used, as ALLOWED_HOSTS and the websocket origin check do).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length"}
WS_HANDSHAKE = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}


@dataclass(frozen=True)
class Served:
    backend: int
    kind: str  # "http" or "ws"
    method: str
    path: str
    status: int


class RoundRobinProxy:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.served: list[Served] = []
        self.url = ""
        self._next = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> RoundRobinProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="round-robin-proxy", daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> int:
        # No decompression: bytes pass through with their Content-Encoding, as a real proxy does.
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # the free port the OS picked

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # closes open websockets too
        if self._session is not None:
            await self._session.close()

    def served_by(self, backend: int, *, kind: str = "", path_contains: str = "") -> list[Served]:
        return [s for s in list(self.served)
                if s.backend == backend and (not kind or s.kind == kind) and path_contains in s.path]

    # --- proxying ----------------------------------------------------------------------------------
    def _pick(self, request: web.Request) -> int:
        pinned = request.headers.get(PIN_HEADER)
        if pinned is not None:
            return int(pinned) % len(self.backends)
        index = self._next
        self._next = (self._next + 1) % len(self.backends)
        return index

    @staticmethod
    def _forwarded_headers(request: web.Request, *, websocket: bool) -> dict[str, str]:
        skip = HOP_BY_HOP | {PIN_HEADER.lower()} | (WS_HANDSHAKE if websocket else set())
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        headers["X-Forwarded-For"] = request.remote or ""
        return headers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        index = self._pick(request)
        target = self.backends[index] + request.path_qs
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, index, target)
        assert self._session is not None
        body = await request.read()
        async with self._session.request(request.method, target, data=body or None, allow_redirects=False,
                                         headers=self._forwarded_headers(request, websocket=False)) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():  # items() keeps repeated headers (Set-Cookie)
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            response.headers[PIN_HEADER] = str(index)
            if upstream.headers.get("Content-Length"):
                response.content_length = int(upstream.headers["Content-Length"])
            # Recorded before the client can have the answer, so a test reading ``served`` after a response
            # sees that request.
            self.served.append(Served(index, "http", request.method, request.path, upstream.status))
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        return response

    async def _websocket(self, request: web.Request, index: int, target: str) -> web.StreamResponse:
        assert self._session is not None
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            upstream = await self._session.ws_connect(
                "ws" + target.removeprefix("http"), headers=self._forwarded_headers(request, websocket=True),
                protocols=protocols, autoclose=False, autoping=True)
        except aiohttp.WSServerHandshakeError as refused:
            # The backend refused the handshake (origin or routing): the client gets the same answer.
            self.served.append(Served(index, "ws", "GET", request.path, refused.status))
            return web.Response(status=refused.status, headers={PIN_HEADER: str(index)})
        downstream = web.WebSocketResponse(protocols=protocols, autoclose=False, autoping=True)
        downstream.headers[PIN_HEADER] = str(index)
        self.served.append(Served(index, "ws", "GET", request.path, 101))
        await downstream.prepare(request)

        async def pump(source, sink) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
            # The side that closed first decides the code the other side sees (4404, 4401...).
            with contextlib.suppress(ConnectionError, RuntimeError):
                await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK)

        async with upstream:
            both = [asyncio.ensure_future(pump(upstream, downstream)),
                    asyncio.ensure_future(pump(downstream, upstream))]
            _, pending = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return downstream
