"""Which responses may get a script tag? One `<script src>` before `</body>`, only where
it is safe.

Pure functions over (status, headers, body); where in the page is markup.py's.
`Injecting` applies them to a WSGI app and hands every other response to the server
untouched, as the very same body object.

>>> headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "26")]
>>> eligible("200 OK", headers, "GET")
True
>>> closing(b"<html><body>hi</body></html>")  # markup.py: where the tag goes
14
>>> with_length(headers, 49)[1]
('Content-Length', '49')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..acting.response_bodies import ClosingBody, sendable
from .markup import closing

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
if TYPE_CHECKING:
    # What to add to one page: the tag, or None where the response's own headers forbid it.
    Tag = Callable[[WSGIEnvironment, Headers], bytes | None]


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
    """Whether the body can be read whole at no cost to streaming: a list or tuple, a
    response object that holds its body and says it does not stream (Django's
    `HttpResponse`, which gets no length without CommonMiddleware), or a declared
    length; `MAX_BODY` at most (a generator without a length may never end)."""
    if isinstance(body, list | tuple):
        return True
    if getattr(body, "streaming", None) is False:
        content = getattr(body, "content", None)
        return isinstance(content, bytes) and len(content) <= MAX_BODY
    length = header(headers, "Content-Length")
    return length is not None and length.strip().isdigit() and int(length) <= MAX_BODY


def with_length(headers: Headers, length: int) -> Headers:
    """`headers` with Content-Length set to `length` (added if the app gave none)."""
    kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
    return [*kept, ("Content-Length", str(length))]


class Injecting:
    """Serve `app`, adding `tag(environ, headers)` to the pages `eligible()` and
    `closing()` allow, unless it is None (the response's policy would block it).

    The app's start_response is held until its body is returned; a response that
    starts later (a generator), writes with `write()`, or is not eligible, goes to the
    server as the app made it::

        app = Injecting(app, tag=lambda environ, headers: b'<script src="/x.js"></script>')
    """

    def __init__(self, app: WSGIApplication, tag: Tag,
                 streamed: Callable[[WSGIEnvironment], None] = lambda environ: None) -> None:
        self._app = app
        self._tag = tag
        self._streamed = streamed  # told of a page left without the tag: not in memory

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self._app(environ, start_response)
        held = _Held(start_response)
        body = self._app(environ, held.start_response)
        return held.finish(body, environ, self._tag, self._streamed)


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

    def finish(self, body: Iterable[bytes], environ: WSGIEnvironment, tag: Tag,
               streamed: Callable[[WSGIEnvironment], None]) -> Iterable[bytes]:
        self._returned = True
        if self._head is None:
            return body  # passed through already, or starts during iteration
        # Our own wrapper (an app with close(), a restart due after the response) is
        # looked through; its close() is kept for the server to call.
        inner = body.wrapped if isinstance(body, ClosingBody) else body
        if sendable(inner, environ) or not in_memory(inner, self._head[1]):
            self._release()
            if not sendable(inner, environ):
                streamed(environ)
            return body
        try:
            page = b"".join(inner)
        except BaseException:
            _close(body)
            raise
        status, headers, exc_info = self._head
        self._head = None
        at = closing(page)
        made = None if at is None else tag(environ, headers)
        if at is None or made is None:
            self._server(status, headers, exc_info)
            if isinstance(inner, list | tuple):
                return body  # the very same object
            return ClosingBody([page], _closer(body))
        new = page[:at] + made + page[at:]
        self._server(status, with_length(headers, len(new)), exc_info)
        return ClosingBody([new], _closer(body))


def _closer(body: Iterable[bytes]) -> Callable[[], None]:
    """What the server's close() of a replaced body must still do: close the app's."""
    return lambda: _close(body)


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
