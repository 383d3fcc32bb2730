"""The opt-in control endpoint: status for GET, a reload of every process for POST.

Development and staging tool; with a strong secret it is also safe in production.

    application = ReloadMiddleware(app, control="/__reload__", secret=os.environ["TOKEN"])

    $ curl -H "Authorization: Bearer $TOKEN" http://host/__reload__          # status
    $ curl -X POST -H "Authorization: Bearer $TOKEN" http://host/__reload__  # reload all

Rules: the path must match PATH_INFO exactly (below a SCRIPT_NAME mount the server set,
never one a request header set: gunicorn takes a `SCRIPT_NAME` header) and, where
the server passes the raw request path (REQUEST_URI: mod_wsgi, uWSGI, waitress; RAW_URI:
gunicorn), that raw path too, literally: its percent-encoded and doubled-slash forms, and
a request rewritten to it inside the server, get a bare 404 (see SECURITY.md). The token
comes only from the Authorization header (never the query string or a cookie) and is
compared in constant time; anything unauthenticated gets a bare 403, and an
authenticated request with another method a 405.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from ..acting.responses import reply
from ..digest import sha256_hex
from ..integrations import servers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def stamp_name(script: str) -> str:
    """The name, in the private state directory, of the file a POST touches for `script`.

    >>> stamp_name("/srv/app/app.wsgi")
    'stamp-4aa8d59d1d6b198b'
    """
    return f"stamp-{sha256_hex(script.encode())[:16]}"


def bearer(environ: WSGIEnvironment) -> bytes:
    """The token of an `Authorization: Bearer TOKEN` header, or b''."""
    header: str = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return token.strip().encode("latin-1", "replace")


def raw_path(environ: WSGIEnvironment) -> str | None:
    """The request path as the client sent it (query string removed), or None.

    >>> raw_path({"REQUEST_URI": "/app/%5F%5Freload__?x=1"})
    '/app/%5F%5Freload__'
    >>> raw_path({"PATH_INFO": "/__reload__"}) is None   # wsgiref: no raw path
    True
    """
    for key in ("REQUEST_URI", "RAW_URI"):  # mod_wsgi, uWSGI, waitress; gunicorn
        raw = environ.get(key)
        if isinstance(raw, str) and raw:
            if not raw.startswith("/"):  # absolute form: GET http://host/path HTTP/1.1
                raw = urlsplit(raw).path or "/"
            return raw.partition("?")[0].partition("#")[0]
    return None


_PCHAR = "/:@!$&'()*+,;=~"  # RFC 3986 path characters left as they are
Route = Literal["endpoint", "app", "not found"]


def route(
    environ: WSGIEnvironment, path: str, configured: Mapping[str, str] = os.environ
) -> Route:
    """Whether a request is for the control endpoint at `path`, the app, or neither.

    PATH_INFO must be `path` exactly, below a mount the server set itself: a mount a
    `SCRIPT_NAME` request header chose (gunicorn, `servers.server_mount`; `configured`
    is the server's environment) would put the endpoint under a path a front proxy's
    rule on `path` does not cover. Where the server gives the raw path, it must be the
    mount (SCRIPT_NAME as is, or percent-encoded where it must be) followed by `path`,
    literally; otherwise the request reached PATH_INFO `path` by decoding, slash merging
    or an internal rewrite, which a rule on the literal path would not see either. Both
    are answered 404 rather than let through.

    >>> route({"PATH_INFO": "/__reload__", "REQUEST_URI": "//__reload__"}, "/__reload__")
    'not found'
    >>> route({"SCRIPT_NAME": "/x", "HTTP_SCRIPT_NAME": "/x", "PATH_INFO": "/__reload__",
    ...        "RAW_URI": "/x/__reload__"}, "/__reload__", configured={})
    'not found'
    """
    if environ.get("PATH_INFO") != path:
        return "app"
    script = servers.server_mount(environ, configured)
    if script is None:  # a mount a request header chose: not where the endpoint is
        return "not found"
    raw = raw_path(environ)
    if raw is None:
        return "endpoint"
    # Only the canonical spellings of the mount: '/%61pp' would pass a rule on '/app'.
    mounts = {script, quote(script, safe=_PCHAR, encoding="latin-1", errors="replace")}
    if raw.endswith(path) and raw[: len(raw) - len(path)] in mounts:
        return "endpoint"
    return "not found"


class Control:
    """The endpoint in front of the application; every other path passes through."""

    def __init__(
        self,
        app: WSGIApplication,
        path: str,
        secret: str,
        status: Callable[[], dict[str, Any]],
        force: Callable[[], None],
    ) -> None:
        self.app = app
        self._path = path
        self._secret = secret.encode()
        self._status = status
        self._force = force

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        where = route(environ, self._path)
        if where == "app":
            return self.app(environ, start_response)
        head = environ.get("REQUEST_METHOD") == "HEAD"
        if where == "not found":
            return _plain(start_response, 404, head=head)
        import hmac  # here, not at import: it loads OpenSSL (digest.py)

        if not hmac.compare_digest(bearer(environ), self._secret):
            return _plain(start_response, 403, head=head)
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            return _json(start_response, 200, self._status())
        if method == "POST":
            self._force()
            return _json(start_response, 202, {"accepted": True, "pid": os.getpid()})
        return _plain(start_response, 405, [("Allow", "GET, POST")], head=head)


def _plain(start_response: StartResponse, status: int, extra: Iterable[tuple[str, str]] = (),
           *, head: bool) -> list[bytes]:
    """A bare answer: the status's own phrase, nothing more."""
    text = f"{HTTPStatus(status).phrase}\n".encode()
    return reply(start_response, status, "text/plain; charset=utf-8", text, extra, head=head)


def _json(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    return reply(start_response, status, "application/json", json.dumps(body).encode())
