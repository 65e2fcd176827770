"""The HTTP layer of the Studio client: requests, errors, pagination and streamed multipart uploads.

Standard library only (urllib): the client must install and run anywhere Python does, without Django and
without an HTTP package the project does not otherwise depend on.
"""

from __future__ import annotations

import json
import mimetypes
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

USER_AGENT = "studio-client/0.1"
API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 60.0
UPLOAD_TIMEOUT = 600.0
# Reads are retried on "over capacity" answers (429/503) a few times, waiting what Retry-After says.
READ_RETRIES = 3
MAX_RETRY_WAIT = 10.0


class StudioError(Exception):
    """An API call that did not succeed: ``status`` is the HTTP code (None when no answer came back),
    ``message`` the server's ``detail``, ``errors`` its per-field messages (400)."""

    def __init__(self, message: str, *, status: int | None = None, errors: dict[str, list[str]] | None = None,
                 body: Any = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or {}
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


class JobFailed(StudioError):
    """A waited-on job, endpoint or execution ended in failure (or was stopped); ``resource`` is its last state."""

    def __init__(self, message: str, *, resource: Any = None) -> None:
        super().__init__(message)
        self.resource = resource


def error_from_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> StudioError:
    """Turn an HTTP error answer into a StudioError carrying the server's own message.

    The API answers ``{"detail": "...", "errors": {...}}``; anything else (a proxy's HTML page, a plain
    text body) is kept as a short excerpt so the user still sees what came back.
    """
    headers = headers or {}
    retry_after = _retry_after(headers)
    text = body.decode("utf-8", errors="replace").strip()
    parsed: Any = None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    message = ""
    errors: dict[str, list[str]] = {}
    if isinstance(parsed, dict):
        message = str(parsed.get("detail") or parsed.get("message") or parsed.get("error") or "")
        raw_errors = parsed.get("errors")
        if isinstance(raw_errors, dict):
            errors = {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in raw_errors.items()}
        if not message and errors:
            message = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
    if not message:
        reason = _REASONS.get(status, "Request failed")
        if text.startswith("<"):  # a proxy's or a debug page: its markup would bury the point
            message = f"{reason} (the server answered with an HTML page)"
        else:
            message = " ".join(text.split())[:300] or reason
    return StudioError(message, status=status, errors=errors, body=parsed if parsed is not None else text,
                       retry_after=retry_after)


_REASONS = {400: "Bad request", 401: "Not authenticated", 403: "Not allowed", 404: "Not found", 409: "Conflict",
            413: "Too large", 429: "Too many requests", 500: "Server error", 502: "Bad gateway",
            503: "Service unavailable"}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = None
    for key, val in headers.items():
        if key.lower() == "retry-after":
            value = val
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class MultipartBody:
    """A multipart/form-data body read piece by piece, so a 1 GB file never sits in memory.

    http.client sends any object with ``read``; the length is known up front (the file's size plus the
    framing), so the request carries a Content-Length and the server can refuse an oversize file at once.
    """

    def __init__(self, fields: Mapping[str, str], file_field: str, path: Path, filename: str | None = None,
                 content_type: str | None = None) -> None:
        self.boundary = f"studio-{uuid.uuid4().hex}"
        filename = filename or path.name
        content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(k)}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        )
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(file_field)}"; '
                 f'filename="{_quote(filename)}"\r\nContent-Type: {content_type}\r\n\r\n').encode()
        self._parts: list[bytes | Path] = [head, path, f"\r\n--{self.boundary}--\r\n".encode()]
        self.length = len(head) + path.stat().st_size + len(self._parts[2])  # type: ignore[arg-type]
        self._index = 0
        self._offset = 0
        self._file: IO[bytes] | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while self._index < len(self._parts) and (size < 0 or len(out) < size):
            want = -1 if size < 0 else size - len(out)
            part = self._parts[self._index]
            if isinstance(part, bytes):
                chunk = part[self._offset:] if want < 0 else part[self._offset:self._offset + want]
                self._offset += len(chunk)
                done = self._offset >= len(part)
            else:
                if self._file is None:
                    self._file = open(part, "rb")  # noqa: SIM115 - closed when the part is read to its end
                chunk = self._file.read(want if want >= 0 else -1)
                done = not chunk or want < 0
                if done:
                    self._file.close()
                    self._file = None
            out += chunk
            if done:
                self._index += 1
                self._offset = 0
        return bytes(out)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _quote(value: str) -> str:
    # Quotes and line breaks would end the header early; browsers escape them the same way.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class Response:
    """What came back: the status, headers and the body (read fully, or left open when streamed)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes | None = None,
                 stream: Any = None) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body if body is not None else b""
        self.stream = stream

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpClient:
    """Talks to one Studio server with one token. Paths are relative to ``/api/v1`` unless absolute URLs."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = normalize_url(url)
        self.token = token
        self.timeout = timeout
        # No cookie jar, no redirect to another host with our token: the default opener is enough.
        self._opener = urllib.request.build_opener()

    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{API_PREFIX}/{path.lstrip('/')}"

    # --- the one place a request is made -------------------------------------------------------

    def send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
             data: bytes | MultipartBody | None = None, content_type: str | None = None,
             headers: Mapping[str, str] | None = None, auth: bool = True, stream: bool = False,
             timeout: float | None = None) -> Response:
        url = self.url_for(path)
        if params:
            query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if auth and self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        body: Any = data
        if json_body is not None:
            body = json.dumps(json_body, default=_json_default).encode()
            all_headers["Content-Type"] = "application/json"
        if isinstance(data, MultipartBody):
            all_headers["Content-Type"] = data.content_type
            all_headers["Content-Length"] = str(len(data))
        if content_type:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        attempts = READ_RETRIES + 1 if method == "GET" else 1
        for attempt in range(attempts):
            try:
                return self._once(method, url, body, all_headers, stream=stream, timeout=timeout)
            except StudioError as exc:
                if exc.status in (429, 503) and attempt + 1 < attempts:
                    time.sleep(min(1.0 if exc.retry_after is None else exc.retry_after, MAX_RETRY_WAIT))
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, url: str, body: Any, headers: dict[str, str], *, stream: bool,
              timeout: float | None) -> Response:
        if not url.startswith(("http://", "https://")):
            raise StudioError(f"Only http and https URLs are used (got {url[:80]!r}).")
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - checked
        try:
            answer = self._opener.open(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            raw = exc.read() if exc.fp is not None else b""
            raise error_from_response(exc.code, raw, dict(exc.headers or {})) from None
        except urllib.error.URLError as exc:
            raise StudioError(f"Cannot reach {self.base_url}: {exc.reason}") from None
        except (TimeoutError, ConnectionError) as exc:
            raise StudioError(f"Cannot reach {self.base_url}: {exc}") from None
        if stream:
            return Response(answer.status, dict(answer.headers), stream=answer)
        with answer:
            return Response(answer.status, dict(answer.headers), body=answer.read())

    # --- conveniences ----------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send and decode: JSON bodies become Python values, text stays text, 204 is None."""
        response = self.send(method, path, **kwargs)
        if response.status == 204 or not response.body:
            return None
        if "json" in response.content_type:
            return response.json()
        return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json_body=body if body is not None else {}, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.request("PATCH", path, json_body=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list, following ``next`` links; plain (unpaginated) lists are yielded as they are."""
        page: Any = self.get(path, params=params)
        while True:
            if isinstance(page, list):
                yield from page
                return
            if not isinstance(page, dict) or "results" not in page:
                raise StudioError(f"Expected a list from {path}, got {type(page).__name__}.")
            yield from page["results"]
            if not page.get("next"):
                return
            page = self.get(page["next"])

    def upload(self, path: str, file_path: str | os.PathLike[str], fields: Mapping[str, Any], *,
               file_field: str = "file") -> Any:
        body = MultipartBody({k: str(v) for k, v in fields.items() if v is not None}, file_field, Path(file_path))
        try:
            return self.request("POST", path, data=body, timeout=max(self.timeout, UPLOAD_TIMEOUT))
        finally:
            body.close()

    def download(self, path: str, destination: str | os.PathLike[str]) -> Path:
        response = self.send("GET", path, stream=True, timeout=max(self.timeout, UPLOAD_TIMEOUT))
        target = Path(destination)
        with response.stream as src, open(target, "wb") as out:
            while chunk := src.read(1024 * 1024):
                out.write(chunk)
        return target


def normalize_url(url: str) -> str:
    """``http://host:8000/``, ``host:8000`` and ``http://host:8000/api/v1`` all mean the same server."""
    url = (url or "").strip()
    if not url:
        raise StudioError("No Studio URL: pass url=... or set STUDIO_URL (or run `studio login`).")
    if "://" not in url:
        url = f"http://{url}"
    if not url.startswith(("http://", "https://")):
        raise StudioError(f"A Studio URL starts with http:// or https:// (got {url!r}).")
    url = url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    return url


def _json_default(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Path):
        return str(value)
    if hasattr(value, "id"):  # a resource object where an id is meant
        return str(value.id)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
