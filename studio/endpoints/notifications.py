"""The notification POST of async invocations, safe against server-side request forgery.

A notification URL comes from a user and is called from inside the studio's network, so it must not
reach the studio's own services: every address its host resolves to is checked, and the request
goes to the address that was checked (a second DNS answer cannot swap in an internal one). Private,
loopback, link-local, multicast, reserved and unspecified addresses are refused unless
STUDIO_NOTIFY_ALLOW_PRIVATE is set. Redirects are never followed: a 3xx answer counts as a failure.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

TIMEOUT_SECONDS = 5.0
MAX_URL_LENGTH = 2000
USER_AGENT = "studio-notifications/1"


# Not globally reachable, whatever this Python's ipaddress tables say: IETF protocol assignments (192.0.0.0/24)
# and NAT64 prefixes, whose IPv4 part is checked on its own too (see _embedded_ipv4).
_REFUSED_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "64:ff9b::/96", "64:ff9b:1::/48"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 hosts an IPv6 address reaches through a translation (mapped, 6to4, Teredo, NAT64)."""
    if ip.version != 6:
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _one_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for flag, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_unspecified", "unspecified"), ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(ip, flag):
            return f"{what} address {ip}"
    if getattr(ip, "is_site_local", False) or any(ip in net for net in _REFUSED_NETWORKS if net.version == ip.version):
        return f"non-public address {ip}"
    if not ip.is_global:
        return f"non-public address {ip}"
    return None


def _address_problem(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    # The embedded IPv4 host first: "::ffff:127.0.0.1" is named as the loopback address it is.
    for candidate in (*_embedded_ipv4(ip), ip):
        problem = _one_problem(candidate)
        if problem:
            return problem
    return None


def _resolve(url: str) -> tuple[str | None, list[str]]:
    """(problem or None, the addresses to call) for a notification URL."""
    if not isinstance(url, str) or not url.strip():
        return "give a notification URL such as https://example.com/hooks/studio", []
    if len(url) > MAX_URL_LENGTH:
        return f"the notification URL is longer than {MAX_URL_LENGTH} characters", []
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"'{url}' is not a valid URL ({exc})", []
    if parts.scheme not in ("http", "https"):
        return f"the notification URL must start with http:// or https:// (got '{url}')", []
    host = parts.hostname
    if not host:
        return f"the notification URL '{url}' has no host", []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return f"the host '{host}' of the notification URL cannot be resolved", []
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        return f"the host '{host}' of the notification URL has no address", []
    if not settings.STUDIO_NOTIFY_ALLOW_PRIVATE:
        for address in addresses:
            problem = _address_problem(address)
            if problem:
                return (f"the notification URL's host '{host}' resolves to a {problem}, which is not allowed "
                        "(STUDIO_NOTIFY_ALLOW_PRIVATE is off)"), []
    return None, addresses


def notification_url_problem(url: str) -> str | None:
    """What is wrong with a notification URL (scheme, host, a refused address), or None when it may be called.

    Parameters
    ----------
    url : str
        The URL an endpoint's async configuration names.

    Returns
    -------
    str or None
        A sentence for the user, or None.
    """
    return _resolve(url)[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address while the Host header keeps the URL's name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate verified against the URL's host name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def notification_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes ``notification_post`` sends for ``payload`` (what a webhook signature must cover)."""
    return json.dumps(payload).encode()


def notification_post(url: str, payload: dict[str, Any], *, timeout: float = TIMEOUT_SECONDS,
                      headers: dict[str, str] | None = None) -> str:
    """POST ``payload`` as JSON to ``url`` once; return what happened, for ``notification_status``.

    ``headers`` are added to the request (a webhook's signature over ``notification_body(payload)``).

    Never raises: a refused target, a timeout or an error status is the returned text
    (``"delivered: HTTP 204"``, ``"failed: HTTP 500"``, ``"refused: ..."``, ``"failed: timed out"``).
    """
    problem, addresses = _resolve(url)
    if problem:
        return f"refused: {problem}"[:200]
    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    body = notification_body(payload)
    error = ""
    for address in addresses:
        connection = connection_class(parts.hostname, port, address=address, timeout=timeout)
        try:
            connection.request("POST", path, body=body, headers={
                **(headers or {}),
                "Content-Type": "application/json", "User-Agent": USER_AGENT, "Content-Length": str(len(body))})
            response = connection.getresponse()
            response.read(64 * 1024)
        except TimeoutError:
            error = "timed out"
            continue
        except (OSError, http.client.HTTPException) as exc:
            error = str(exc) or type(exc).__name__
            continue
        finally:
            connection.close()
        if 200 <= response.status < 300:
            return f"delivered: HTTP {response.status}"
        if 300 <= response.status < 400:
            return f"failed: HTTP {response.status} (redirects are not followed)"
        return f"failed: HTTP {response.status}"
    return f"failed: {error}"[:200]
