"""The server's guard, on every request before any route: the Host header must name the machine
the server was bound to (a page elsewhere cannot reach it through DNS rebinding), and where a token
is set (any ``--host`` other than loopback) the request must carry it: ``?token=`` once (as
Jupyter prints it; it is then kept in a same-site, HTTP-only cookie), the cookie, or an
``Authorization: token ...`` header. Every answer gets headers that keep the page's scripts to the
server's own files; no CORS header is ever sent, so other origins cannot read the answers."""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

COOKIE = "samembed_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


def new_token() -> str:
    """A random token of 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK


class Guard:
    """ASGI middleware: refuses (403, one line) requests whose Host is not one of ``hosts`` (an
    empty tuple takes any: a server bound to every interface, behind its token) or that lack
    ``token`` when one is set."""

    def __init__(self, app, token: str | None, hosts: tuple[str, ...]):
        self.app, self.token, self.hosts = app, token, tuple(h.lower() for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._problem(scope, headers)
        set_cookie = None
        if problem is None and self.token and self._query_token(scope) is not None:
            set_cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = list(HEADERS) + ([(b"set-cookie", set_cookie)] if set_cookie else [])
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        if problem is not None:
            body = (problem + "\n").encode()
            await send_with_headers({"type": "http.response.start", "status": 403,
                                     "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                                 (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)

    def _problem(self, scope, headers: dict) -> str | None:
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.hosts and name.lower() not in self.hosts:
            return f"host {host[:80]!r} is not the one samembed serve is bound to; open the address it printed"
        if self.token is None:
            return None
        given = [self._query_token(scope), self._cookie_token(headers)]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("token "):
            given.append(auth[6:].strip())
        if any(g is not None and hmac.compare_digest(g.encode(), self.token.encode()) for g in given):
            return None
        return "this samembed server needs its token: open the address with ?token=... that it printed"

    @staticmethod
    def _query_token(scope) -> str | None:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        return values[0] if values else None

    @staticmethod
    def _cookie_token(headers: dict) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            return None
        return cookie[COOKIE].value if COOKIE in cookie else None
