"""Upload size limits enforced while the request body streams in, not after it has been stored.

Django parses multipart bodies lazily (often already in CsrfViewMiddleware), so the handler cannot
answer the request itself: it stops the upload, deletes its temporary file and marks the request.
Views then call :func:`raise_if_upload_rejected` and answer 413.

Under ASGI, Django has already spooled the whole body to a temporary file before any view runs, so
there the limit keeps oversize files out of storage and off the profiler rather than off the wire;
a reverse proxy's body-size limit is what stops the bytes themselves.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from studio.core.errors import PayloadTooLarge

_REJECTED_ATTR = "_studio_upload_rejected"
# Multipart framing and the small text fields around a file; a body larger than limit + this cannot
# hold a file within the limit, so it is refused before a single byte of it is read.
ENVELOPE_ALLOWANCE = 256 * 1024


def max_upload_bytes() -> int:
    return int(float(settings.STUDIO_MAX_UPLOAD_MB) * 1024 * 1024)


def too_large_message() -> str:
    return f"File is larger than the {float(settings.STUDIO_MAX_UPLOAD_MB):g} MB limit"


def _django_request(request):
    return getattr(request, "_request", request)  # a DRF Request wraps the HttpRequest


def upload_rejection(request) -> str | None:
    """The reason the body of ``request`` was refused, once it has been parsed; None if it was not."""
    return getattr(_django_request(request), _REJECTED_ATTR, None)


def raise_if_upload_rejected(request) -> None:
    """Parse the body if nobody has yet, then raise PayloadTooLarge (413) if the handler refused it."""
    raw = _django_request(request)
    if raw.method == "POST":
        raw.FILES  # noqa: B018 - parsing is what runs the upload handlers
    reason = upload_rejection(raw)
    if reason:
        raise PayloadTooLarge(reason)


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Streams each file to a temporary file and aborts as soon as one exceeds STUDIO_MAX_UPLOAD_MB."""

    def _reject(self) -> None:
        if self.request is not None:
            setattr(self.request, _REJECTED_ATTR, too_large_message())

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.limit = max_upload_bytes()
        if content_length and content_length > self.limit + ENVELOPE_ALLOWANCE:
            self._reject()
            # Returning (POST, FILES) ends parsing here: the body is never read, let alone stored.
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data, start):
        limit = getattr(self, "limit", None)
        if limit is None:  # handle_raw_input is skipped when a caller drives the handler directly
            limit = self.limit = max_upload_bytes()
        if start + len(raw_data) > limit:
            self._reject()
            # Django closes (and so deletes) our temporary file on StopUpload, then reads and drops the
            # rest of the body, which the Content-Length check above bounds to the allowance.
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
