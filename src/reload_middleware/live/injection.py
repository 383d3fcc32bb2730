"""Where may a script tag go? One `<script src>` before `</body>`, only where it is safe.

Pure functions over (status, headers, body); `Injecting` applies them to a WSGI app and
hands every other response to the server untouched, as the very same body object.

>>> headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "26")]
>>> eligible("200 OK", headers, "GET")
True
>>> insert(b"<html><body>hi</body></html>", b"<script src=/x.js></script>")
b'<html><body>hi<script src=/x.js></script></body></html>'
>>> with_length(headers, 49)[1]
('Content-Length', '49')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..acting.response_bodies import ClosingBody, sendable

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Headers = list[tuple[str, str]]
# A body longer than this is never read into memory to add a tag (streamed pages).
MAX_BODY = 2 * 1024 * 1024
# Charsets in which `</body>` is the same bytes as in ASCII, and nothing else is.
ASCII_COMPATIBLE = re.compile(
    r"(utf-?8|us-ascii|ascii|latin-?1|iso-8859-\d+|windows-125\d|cp125\d|koi8-[ru])$"
)
# No body (204, 304), a part of one (206), or a page nobody reads (1xx, 3xx).
NO_TAG = frozenset({204, 206, 304})
CLOSING = re.compile(rb"</body\s*>", re.IGNORECASE)


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` (any case), or None."""
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


def html(content_type: str | None) -> bool:
    """Whether a Content-Type is HTML in a charset where `</body>` is plain ASCII.

    >>> html("text/html"), html("text/html; charset=UTF-16"), html("application/json")
    (True, False, False)
    """
    if content_type is None:
        return False
    kind, *params = [p.strip().lower() for p in content_type.split(";")]
    if kind != "text/html":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and not ASCII_COMPATIBLE.match(value.strip().strip('"')):
            return False
    return True


def eligible(status: str, headers: Headers, method: str) -> bool:
    """Whether the head of a response allows a tag: HTML, whole, not encoded, not HEAD.

    >>> eligible("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip")], "GET")
    False
    """
    try:
        code = int(status.split(None, 1)[0])
    except (ValueError, IndexError):
        return False
    if method != "GET" or code < 200 or 300 <= code < 400 or code in NO_TAG:
        return False
    encoding = header(headers, "Content-Encoding")
    if encoding and encoding.strip().lower() != "identity":
        return False
    disposition = header(headers, "Content-Disposition") or ""
    if disposition.strip().lower().startswith("attachment"):
        return False
    return html(header(headers, "Content-Type"))


def in_memory(body: Iterable[bytes], headers: Headers) -> bool:
    """Whether the body can be read whole at no cost to streaming: a list or tuple, or a
    declared length under `MAX_BODY` (a generator without a length may never end)."""
    if isinstance(body, list | tuple):
        return True
    length = header(headers, "Content-Length")
    return length is not None and length.strip().isdigit() and int(length) <= MAX_BODY


def insert(page: bytes, tag: bytes) -> bytes | None:
    """`page` with `tag` before its last `</body>`, or None when it has none (a fragment).

    >>> insert(b"<p>an htmx fragment</p>", b"<script></script>") is None
    True
    """
    starts = [m.start() for m in CLOSING.finditer(page)]
    if not starts:
        return None
    return page[: starts[-1]] + tag + page[starts[-1]:]


def with_length(headers: Headers, length: int) -> Headers:
    """`headers` with Content-Length set to `length` (added if the app gave none)."""
    kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
    return [*kept, ("Content-Length", str(length))]


class Injecting:
    """Serve `app`, adding `tag(environ)` to the pages `eligible()` and `insert()` allow.

    The app's start_response is held until its body is returned; a response that
    starts later (a generator), writes with `write()`, or is not eligible, goes to the
    server as the app made it::

        app = Injecting(app, tag=lambda environ: b'<script src="/x.js"></script>')
    """

    def __init__(self, app: WSGIApplication, tag: Callable[[WSGIEnvironment], bytes]) -> None:
        self._app = app
        self._tag = tag

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self._app(environ, start_response)
        held = _Held(start_response)
        body = self._app(environ, held.start_response)
        return held.finish(body, environ, self._tag)


class _Held:
    """One response's start_response, held while the app runs if it may get a tag."""

    def __init__(self, start_response: StartResponse) -> None:
        self._server = start_response
        self._head: tuple[str, Headers, Any] | None = None
        self._returned = False

    def start_response(self, status: str, headers: Headers, exc_info: Any = None) -> Any:
        if self._returned or not eligible(status, headers, "GET"):
            self._head = None
            return self._server(status, headers, exc_info)
        self._head = (status, headers, exc_info)
        return self._write

    def _write(self, data: bytes) -> None:
        """Legacy `write()`: the response streams as the app made it."""
        write = self._release()
        write(data)

    def _release(self) -> Callable[[bytes], object]:
        assert self._head is not None
        (status, headers, exc_info), self._head = self._head, None
        return self._server(status, headers, exc_info)

    def finish(
        self, body: Iterable[bytes], environ: WSGIEnvironment,
        tag: Callable[[WSGIEnvironment], bytes],
    ) -> Iterable[bytes]:
        self._returned = True
        if self._head is None:
            return body  # passed through already, or starts during iteration
        # Our own wrapper (an app with close(), a restart due after the response) is
        # looked through; its close() is kept for the server to call.
        inner = body.wrapped if isinstance(body, ClosingBody) else body
        if sendable(inner, environ) or not in_memory(inner, self._head[1]):
            self._release()
            return body
        try:
            page = b"".join(inner)
        except BaseException:
            _close(body)
            raise
        new = insert(page, tag(environ))
        status, headers, exc_info = self._head
        self._head = None
        if new is None:
            self._server(status, headers, exc_info)
            if isinstance(inner, list | tuple):
                return body  # the very same object
            return ClosingBody([page], _closer(body))
        self._server(status, with_length(headers, len(new)), exc_info)
        return ClosingBody([new], _closer(body))


def _closer(body: Iterable[bytes]) -> Callable[[], None]:
    """What the server's close() of a replaced body must still do: close the app's."""
    return lambda: _close(body)


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
