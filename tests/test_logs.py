"""The error log: every argument escaped, so no file name can forge a line."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from helpers import MakeProject, Until, call
from reload_middleware import logs

FORGED = "x\nreload_middleware: [pid 1] FORGED\x1b[2J"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("/srv/app/views.py", "/srv/app/views.py"),
        ("/srv/caf\u00e9.py", "/srv/caf\u00e9.py"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("tab\there", "tab\\there"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
        (os.fsdecode(b"/srv/caf\xff.py"), "/srv/caf\\udcff.py"),
    ],
    ids=["plain", "non-ascii", "newline", "crlf", "terminal-escape", "tab", "nul", "del",
         "c1-controls", "unicode-line-breaks", "surrogate"],
)
def test_escape(text: str, shown: str) -> None:
    """Control characters, line breaks and surrogates become visible escapes."""
    assert logs.escape(text) == shown


def _captured(emit: object) -> str:
    """What the package's own stderr handler would write for `emit()`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("reload_middleware: %(message)s"))
    logs.logger.addHandler(handler)
    try:
        emit()  # type: ignore[operator]
    finally:
        logs.logger.removeHandler(handler)
    return stream.getvalue()


def test_a_forged_file_name_stays_on_its_line() -> None:
    """A file name holding a newline and a fake prefix is one escaped line in the log."""
    written = _captured(lambda: logs.info("%s changed: reload", logs.describe([FORGED])))
    assert written.count("\n") == 1 and "\x1b" not in written
    assert "x\\nreload_middleware: [pid 1] FORGED\\x1b[2J" in written


def test_numbers_keep_their_format() -> None:
    """%d and %g arguments are passed through as numbers."""
    written = _captured(lambda: logs.info("%d files, every %g s", 3, 0.5))
    assert written.endswith("3 files, every 0.5 s\n")


def test_a_traceback_keeps_its_lines_indented() -> None:
    """A multi-line argument keeps its lines, each escaped and indented under the first:
    a newline in a file name there starts an indented line, never a log line."""
    trace = logs.Lines(f"Traceback:\n  File \"{FORGED}\", line 1\nSyntaxError: x")
    lines = _captured(lambda: logs.error("failed: %s", trace)).splitlines()
    assert lines[0].startswith("reload_middleware: [pid ") and lines[0].endswith("Traceback:")
    assert all(line.startswith("    ") for line in lines[1:]) and len(lines) == 4
    assert "\x1b" not in "".join(lines)


def test_a_watched_file_with_a_forged_name_logs_one_line(
    project: MakeProject, tmp_path: Path, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """The change line for a file named with a newline and escapes is a single line."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    (tmp_path / "data").mkdir()
    made = project(watch=["data"])
    call(made.application)
    forged = tmp_path.resolve() / "data" / FORGED
    forged.write_text("planted")
    until(lambda: str(forged) in made.application.pending)
    call(made.application)
    [line] = [r.getMessage() for r in caplog.records if "changed:" in r.getMessage()]
    assert "\n" not in line and "\x1b" not in line and "FORGED\\x1b[2J" in line
