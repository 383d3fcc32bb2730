"""Time bounds: which files may have changed after the code that uses them was read."""

from __future__ import annotations

import logging
import os
import py_compile
import sys
from pathlib import Path

import pytest

from reload_middleware import logs
from reload_middleware.watching import read_times

SECOND = 10**9
NOW = 1_800_000_000 * SECOND
BOUND = NOW - 10 * SECOND


def later(times: tuple[int, ...], path: str = "/srv/app/data.txt", size: int = 10,
          told: logs.Once | None = None) -> bool:
    return read_times.later_than(path, times, BOUND, size, now=lambda: NOW, told=told)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        pytest.param((BOUND + 1, BOUND + 1), True, id="written-after-the-read"),
        pytest.param((BOUND - SECOND // 2, BOUND - SECOND // 2), False, id="written-before"),
        pytest.param((BOUND - 3600 * SECOND, BOUND + 5), True, id="old-mtime-new-ctime"),
        pytest.param((NOW + SECOND, NOW + SECOND), False, id="all-in-the-future"),
        pytest.param((NOW + SECOND, BOUND + 5), True, id="future-mtime-recent-ctime"),
        pytest.param((BOUND // SECOND * SECOND,) * 2, True, id="whole-seconds-in-the-second"),
        pytest.param(((BOUND - 5 * SECOND) // SECOND * SECOND,) * 2, False, id="whole-seconds-old"),
        pytest.param((), False, id="no-times"),
    ],
)
def test_later_than(times: tuple[int, ...], expected: bool) -> None:
    """A file counts when any time it has that the clock has reached is past the bound."""
    assert later(times) is expected


def test_doubts_are_said_once_per_file(caplog: pytest.LogCaptureFixture) -> None:
    """A time in the future or a coarse file clock is logged once, naming the file, as
    far as the caller's memory (`told`) goes."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    told = logs.Once()
    for _ in range(3):
        later((NOW + SECOND,) * 2, "/srv/app/future.txt", told=told)
        later((BOUND // SECOND * SECOND,) * 2, "/srv/app/coarse.txt", told=told)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("/srv/app/future.txt has a time 1 s ahead" in m for m in messages) == 1
    assert sum("/srv/app/coarse.txt has whole-second file times" in m for m in messages) == 1


def pyc_of(source: Path, text: str, mtime_ns: int) -> None:
    """Compile `source` holding `text` with that mtime into its timestamped .pyc."""
    source.write_text(text)
    os.utime(source, ns=(mtime_ns, mtime_ns))
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)


def test_old_bytecode_that_python_would_trust_counts(tmp_path: Path) -> None:
    """Two saves of one size in one second: the pyc of the first matches the second,
    whenever it was written; the second's own pyc does not count."""
    source = tmp_path / "views.py"
    second = (NOW - 30 * SECOND) // SECOND * SECOND
    pyc_of(source, "V = 1\n", second + 100_000_000)
    cached = Path(sys.modules["importlib.util"].cache_from_source(str(source)))
    os.utime(cached, ns=(second + 200_000_000,) * 2)
    source.write_text("V = 2\n")
    os.utime(source, ns=(second + 600_000_000,) * 2)
    size = source.stat().st_size
    assert read_times.stale_bytecode(str(source), second + 600_000_000, size)
    read_at = second + 900_000_000  # imported in the same second, after both saves
    assert read_times.later_than(str(source), (second + 600_000_000,) * 2, read_at, size,
                             now=lambda: NOW)
    # Written after the second save, from the first save's source read before it.
    os.utime(cached, ns=(second + 700_000_000,) * 2)
    assert read_times.stale_bytecode(str(source), second + 600_000_000, size)
    assert not read_times.stale_bytecode(str(source), second + 600_000_000, size + 1)
    pyc_of(source, "V = 2\n", second + 600_000_000)  # compiled from the second save
    os.utime(cached, ns=(second + 700_000_000,) * 2)
    assert not read_times.stale_bytecode(str(source), second + 600_000_000, size)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1700000000123456", 1_700_000_000_123_456_000, id="microseconds-text"),
        pytest.param(1_700_000_000.25, 1_700_000_000_250_000_000, id="seconds-float"),
        pytest.param(1_700_000_000_123_456, 1_700_000_000_123_456_000, id="microseconds-int"),
        pytest.param("soon", None, id="not-a-number"),
        pytest.param(None, None, id="missing"),
        pytest.param(-1.0, None, id="negative"),
    ],
)
def test_request_start_ns(value: object, expected: int | None) -> None:
    """mod_wsgi 4 and 5 give microseconds as text, mod_wsgi 6 seconds as a float."""
    assert read_times.request_start_ns(value) == expected
