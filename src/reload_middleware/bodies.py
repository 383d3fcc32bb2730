"""Response bodies: run something once the server has closed one.

>>> ran = []
>>> body = ClosingBody(iter([b"hello"]), lambda: ran.append("after"))
>>> list(body), body.close(), ran
([b'hello'], None, ['after'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


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
