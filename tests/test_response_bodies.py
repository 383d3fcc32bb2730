"""The closing wrapper around response bodies."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from reload_middleware import ReloadMiddleware
from reload_middleware.acting.response_bodies import ClosingBody, then
from reload_middleware.script import Script


class Body:
    """A response body that notes when it is closed."""

    def __init__(self, events: list[str], fail: bool = False) -> None:
        self.events = events
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    def close(self) -> None:
        self.events.append("body closed")
        if self.fail:
            raise OSError("close failed")


def test_the_body_is_closed_then_the_callback_runs_once() -> None:
    """The server sees the body's bytes; close() closes the body, then runs `after` once."""
    events: list[str] = []
    body = ClosingBody(Body(events), lambda: events.append("after"))
    assert list(body) == [b"a", b"b"]
    assert events == []
    body.close()
    assert events == ["body closed", "after"]


def test_a_body_without_close_still_runs_the_callback() -> None:
    """A plain list has no close(): `after` runs all the same."""
    events: list[str] = []
    body = ClosingBody([b"x"], lambda: events.append("after"))
    body.close()
    assert events == ["after"]


def test_the_callback_runs_when_the_body_fails_to_close() -> None:
    """The body's error reaches the server, and `after` has run."""
    events: list[str] = []
    body = ClosingBody(Body(events, fail=True), lambda: events.append("after"))
    with pytest.raises(OSError, match="close failed"):
        body.close()
    assert events == ["body closed", "after"]


class FileWrapper:
    """A server's `wsgi.file_wrapper`: it sends the file itself when it gets this back."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike

    def __iter__(self) -> Iterator[bytes]:
        yield self.filelike.read()

    def close(self) -> None:
        self.filelike.close()


class ClosableApp:
    """An app with close() (so the middleware counts its requests) serving a file."""

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(b"file"))
        return wrapper

    def close(self) -> None:
        self.closed = True


@pytest.mark.usefixtures("fresh_process")
def test_a_file_wrapper_reaches_the_server_as_itself(tmp_path: Path) -> None:
    """Through the middleware, in front of an app it counts, the server gets the very
    object its file_wrapper made (else no sendfile)."""
    app = ClosableApp()
    middleware = ReloadMiddleware._for_script(app, Script("server_script", str(tmp_path / "s.py")),
                                              {})
    environ: dict[str, Any] = {"wsgi.file_wrapper": FileWrapper}
    setup_testing_defaults(environ)
    body = middleware(environ, lambda status, headers, exc_info=None: lambda data: None)
    assert isinstance(body, FileWrapper)
    assert list(body) == [b"file"]


def test_a_file_body_passes_through_and_the_callback_runs_now() -> None:
    """A body with a descriptor is the server's to send: untouched, and `after` runs."""
    events: list[str] = []
    with open(__file__, "rb") as source:
        assert then(source, {}, lambda: events.append("after")) is source
    assert events == ["after"]
    plain = [b"x"]
    wrapped = then(plain, {}, lambda: events.append("later"))
    assert wrapped is not plain and events == ["after"]
