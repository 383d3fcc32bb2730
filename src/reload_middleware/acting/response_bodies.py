"""Response bodies: run something once the server is done with one; apps counted
while they serve, so they are closed when idle.

>>> ran = []
>>> body = then(iter([b"hello"]), {}, lambda: ran.append("after"))
>>> list(body), body.close(), ran
([b'hello'], None, ['after'])

A file the server can send by itself passes through as the very same object, and
`after` runs at once (see `then()`):

>>> import io
>>> page = io.BytesIO(b"hello")
>>> then(page, {}, lambda: ran.append("now")) is page, ran
(True, ['after', 'now'])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class ClosingBody:
    """`body` as the server iterates it; on close(), the body's own close(), then `after`.

    `after` runs even when the body's close() raises: a request counted as started is
    counted as done, and a restart due after the response still happens.
    """

    def __init__(self, body: Iterable[bytes], after: Callable[[], None]) -> None:
        self._body = body
        self._after = after

    @property
    def wrapped(self) -> Iterable[bytes]:
        """The body as the app returned it (live reload looks at it)."""
        return self._body

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._after()


def then(body: Iterable[bytes], environ: Mapping[str, Any], after: Callable[[], None]
         ) -> Iterable[bytes]:
    """`body` with `after` run once the server has closed it.

    A `wsgi.file_wrapper` object, or any file with a descriptor, must reach the server as
    itself, or it cannot use sendfile (uWSGI checks for the very object it handed out).
    Such a body is returned untouched and `after` runs now: the app's part of the
    response is done, and every server here lets a request in flight finish when it
    is told to restart gracefully.
    """
    if sendable(body, environ):
        after()
        return body
    return ClosingBody(body, after)


def sendable(body: Iterable[bytes], environ: Mapping[str, Any]) -> bool:
    """Whether the server may send `body` from its file itself."""
    wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(wrapper, type) and isinstance(body, wrapper):
        return True
    return callable(getattr(body, "fileno", None))


class CountedApp:
    """An app with a `close()`, counted while it serves, so it is closed only when idle.

    Apps without `close()` are never wrapped: the request path stays one call.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._busy = 0
        self._retired = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self._busy += 1
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return then(body, environ, self._done)

    def retire(self) -> None:
        """No new requests will come: close the app now if idle, else after the last one."""
        with self._lock:
            self._retired = True
            idle = self._busy == 0
        if idle:
            self.app.close()  # type: ignore[attr-defined]

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
            last = self._retired and self._busy == 0
        if last:
            self.app.close()  # type: ignore[attr-defined]


def counted(app: WSGIApplication) -> WSGIApplication:
    """`app` itself, or a `CountedApp` around it when it has a close() to call later."""
    return CountedApp(app) if callable(getattr(app, "close", None)) else app


def inner(app: WSGIApplication) -> WSGIApplication:
    """The app `counted()` was given."""
    return app.app if isinstance(app, CountedApp) else app


def retire(app: WSGIApplication) -> None:
    """The app was replaced: close it once no request uses it (if it can be closed)."""
    if isinstance(app, CountedApp):
        app.retire()
