"""Security headers on every response (a pure ASGI middleware, so streamed bodies pass through untouched).

`X-Content-Type-Options: nosniff` everywhere: a customer's file content or a JSON error must never be sniffed into
HTML. HTML (report.html, the dashboard, error pages) also gets a strict Content-Security-Policy: report.html is
rendered from customer-controlled strings (escaped, but this is the second fence), so it may load nothing, run no
script and not be framed. Only inline styles are allowed: report.html and the dashboard use a <style> block and
inline SVG. A route that sets its own CSP or Referrer-Policy (the dashboard's script nonce) keeps it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
_EVERYWHERE = {"X-Content-Type-Options": "nosniff"}
_HTML = {"Content-Security-Policy": HTML_CSP, "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                extra = _EVERYWHERE
                if headers.get("content-type", "").lower().startswith("text/html"):
                    extra = {**_EVERYWHERE, **_HTML}
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: Starlette) -> None:
    """Wrap the whole stack, outside Starlette's ServerErrorMiddleware, so that the 500s it renders (and every
    other middleware's early answers) get the headers too; add_middleware would sit inside it."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(build())  # type: ignore[method-assign]
