"""Security headers Django's SecurityMiddleware does not set: Content-Security-Policy, Permissions-Policy and
Cross-Origin-Resource-Policy (and X-Frame-Options on static files, which XFrameOptionsMiddleware never sees).

The policy allows only this origin (plus data:/blob: images and the page's own websockets). Scripts still need
'unsafe-inline' and 'unsafe-eval': templates carry inline scripts and handlers, htmx evaluates hx-on attributes and
plotly.js compiles some functions at run time. What the policy does buy: no script, style, frame, font or
connection from another origin, no plugins, no <base> hijack, no framing by other sites and no form posting
elsewhere, so injected markup can neither load a payload nor send data away. See SECURITY.md.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'; connect-src 'self'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def content_security_policy(request: HttpRequest) -> str:
    """The policy for a response to ``request``: 'self' plus this host's websockets, named explicitly because
    browsers differ on whether 'self' covers ws:/wss:. The host passed ALLOWED_HOSTS validation already."""
    try:
        host = request.get_host()
    except Exception:  # DisallowedHost: the response is an error page; no websocket to allow
        return _POLICY
    return f"{_POLICY} ws://{host} wss://{host}"


class SecurityHeadersMiddleware(MiddlewareMixin):
    """Adds the headers to every response (pages, API, static files); MiddlewareMixin keeps it async-capable, so
    the ASGI stack needs no thread hop for it."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request))
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        # Static files skip XFrameOptionsMiddleware (whitenoise answers first); an SVG is a document too.
        if not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response
