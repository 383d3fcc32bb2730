"""The opt-in control endpoint: status for GET, a reload of every process for POST.

Development and staging tool; with a strong secret it is also safe in production.

    application = ReloadMiddleware(app, control="/__reload__", secret=os.environ["TOKEN"])

    $ curl -H "Authorization: Bearer $TOKEN" http://host/__reload__          # status
    $ curl -X POST -H "Authorization: Bearer $TOKEN" http://host/__reload__  # reload all

Rules: the path must match PATH_INFO exactly (below any SCRIPT_NAME mount); the token
comes only from the Authorization header (never the query string or a cookie) and is
compared in constant time; anything unauthenticated gets a bare 403, and an
authenticated request with another method a 405.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from webob import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def stamp_name(script: str) -> str:
    """The name, in the private state directory, of the file a POST touches for `script`.

    >>> stamp_name("/srv/app/app.wsgi")
    'stamp-4aa8d59d1d6b198b'
    """
    return f"stamp-{hashlib.sha256(script.encode()).hexdigest()[:16]}"


def bearer(environ: WSGIEnvironment) -> bytes:
    """The token of an `Authorization: Bearer TOKEN` header, or b''."""
    header: str = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return token.strip().encode("latin-1", "replace")


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
        if environ.get("PATH_INFO") != self._path:
            return self.app(environ, start_response)
        return self._answer(environ)(environ, start_response)

    def _answer(self, environ: WSGIEnvironment) -> Response:
        if not hmac.compare_digest(bearer(environ), self._secret):
            return _plain(403, "Forbidden")
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            return _json(200, self._status())
        if method == "POST":
            self._force()
            return _json(202, {"accepted": True, "pid": os.getpid()})
        response = _plain(405, "Method Not Allowed")
        response.allow = ("GET", "POST")
        return response


def _plain(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, content_type="text/plain", charset="utf-8",
                    cache_control="no-store")


def _json(status: int, body: dict[str, Any]) -> Response:
    response = Response(status=status, json_body=body, cache_control="no-store")
    return response
