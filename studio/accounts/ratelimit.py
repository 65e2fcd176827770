"""Rate limits on authentication: failed sign-ins per (username, client address), sign-ups per client address.

Counters live in Django's cache (Redis), so every web process of a cluster shares them. A window is fixed: it
starts with the first failure (or sign-up) and lasts its length. Past the limit the login page, ``POST
/auth/token``, the admin login and the sign-up page and API answer 429 with ``Retry-After`` (the admin shows its
usual error), and the password is not even checked, or guessing would simply go on. A successful sign-in clears its
(username, address) counter. If the cache cannot be reached the limits fail open, logged: a Redis outage must not
lock everybody out.

Sign-in limits live in an authentication backend, so every caller of ``authenticate()`` with a request is covered
(pages, API, admin); calls without a request (scripts, ``Client.login`` in tests) have no address and are not
counted. The client address is REMOTE_ADDR, or the last X-Forwarded-For hop when BEHIND_TLS_PROXY says a proxy of
ours sets it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied

logger = logging.getLogger(__name__)

_LIMITED_ATTR = "_studio_rate_limited"
# Tests share Redis between runs (CI uses the machine's server): each test process counts in its own namespace,
# so one run's failures never lock out the next. Production processes share one namespace.
_NAMESPACE = "studio:rl:" + (secrets.token_hex(4) + ":" if settings.TESTING else "")


class RateLimited(Exception):
    """Too many attempts: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def client_address(request: Any) -> str:
    """The address of the client that sent ``request`` (a Django or DRF request)."""
    meta = getattr(request, "META", {}) or {}
    if settings.SECURE_PROXY_SSL_HEADER:  # behind our TLS proxy: it appends the client's address last
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1][:64]
    return str(meta.get("REMOTE_ADDR") or "unknown")[:64]


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]
    return f"{_NAMESPACE}{kind}:{digest}"


def _count(key: str) -> int:
    value = cache.get(key)
    return int(value or 0)


def _hit(key: str, window: int) -> int:
    cache.add(key, 0, timeout=window)  # starts the window; a no-op while it runs
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        return 1


def _login_key(username: str, address: str) -> str:
    return _key("login", str(username).strip().lower(), address)


def login_retry_after(username: str, address: str) -> int:
    """Seconds to wait before ``username`` may try again from ``address``; 0 when it may now."""
    try:
        blocked = _count(_login_key(username, address)) >= settings.STUDIO_LOGIN_MAX_FAILURES
    except Exception:  # the cache is down: fail open
        logger.warning("login rate limit unavailable (cache unreachable)", exc_info=True)
        return 0
    return settings.STUDIO_LOGIN_FAILURE_WINDOW if blocked else 0


def login_failed(username: str, address: str) -> None:
    try:
        failures = _hit(_login_key(username, address), settings.STUDIO_LOGIN_FAILURE_WINDOW)
    except Exception:
        logger.warning("login rate limit unavailable (cache unreachable)", exc_info=True)
        return
    if failures == settings.STUDIO_LOGIN_MAX_FAILURES:
        logger.warning("sign-in for %r from %s locked for %s s after %s failures", username, address,
                       settings.STUDIO_LOGIN_FAILURE_WINDOW, failures)


def login_succeeded(username: str, address: str) -> None:
    try:
        cache.delete(_login_key(username, address))
    except Exception:
        logger.warning("login rate limit unavailable (cache unreachable)", exc_info=True)


def signup_attempt(request: Any) -> None:
    """Count a sign-up attempt from the request's address; raise :class:`RateLimited` past the hourly limit."""
    address = client_address(request)
    try:
        attempts = _hit(_key("signup", address), 3600)
    except Exception:
        logger.warning("sign-up rate limit unavailable (cache unreachable)", exc_info=True)
        return
    if attempts > settings.STUDIO_SIGNUP_MAX_PER_HOUR:
        raise RateLimited(f"Too many sign-ups from your address; try again in an hour "
                          f"(at most {settings.STUDIO_SIGNUP_MAX_PER_HOUR} per hour).", 3600)


def rate_limited(request: Any) -> RateLimited | None:
    """The limit an ``authenticate()`` call on ``request`` ran into, if any (set by the backend below)."""
    for candidate in (request, getattr(request, "_request", None)):
        found = getattr(candidate, _LIMITED_ATTR, None) if candidate is not None else None
        if found is not None:
            return found
    return None


class RateLimitedModelBackend(ModelBackend):
    """Django's username/password backend with the failed sign-in limit in front of it.

    Authoritative: a wrong password or a lock-out raises PermissionDenied, which makes ``authenticate()`` stop
    there (ModelBackend, listed after this one for sessions made before, never checks the password again).
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if request is None or username is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        address = client_address(request)
        wait = login_retry_after(username, address)
        if wait:
            limited = RateLimited(f"Too many failed sign-ins for '{str(username)[:150]}' from your address; try "
                                  f"again in {max(1, wait // 60)} minutes.", wait)
            _mark(request, limited)
            raise PermissionDenied(str(limited))
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failed(username, address)
            raise PermissionDenied("wrong username or password")
        login_succeeded(username, address)
        return user

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def _mark(request: Any, limited: RateLimited) -> None:
    for candidate in (request, getattr(request, "_request", None)):
        if candidate is not None:
            setattr(candidate, _LIMITED_ATTR, limited)
