"""The closing wrapper around response bodies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reload_middleware.bodies import ClosingBody


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
