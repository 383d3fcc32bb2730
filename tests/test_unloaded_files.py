"""Saved Python files nothing imported yet: noted by the watcher, logged by a request."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reload_middleware.watching.unloaded_files import Strays, below


@pytest.mark.parametrize(
    ("path", "roots", "expected"),
    [
        ("/a/b/c.py", {"/a": True}, True),
        ("/a/b/c.py", {"/a": False}, False),
        ("/a/c.py", {"/a": False}, True),
        ("/ab/c.py", {"/a": True}, False),
    ],
    ids=["recursive-root", "not-recursive", "flat-root", "prefix-is-not-a-parent"],
)
def test_below(path: str, roots: dict[str, bool], expected: bool) -> None:
    assert below(path, roots) is expected


def test_a_saved_file_that_does_not_compile_is_logged_once_per_save(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """File and line in the log; the same saved state is not logged again, a new one is;
    a file that compiles, a tracked one and one outside the roots are not."""
    views = tmp_path / "polls" / "views.py"
    views.parent.mkdir()
    views.write_text("VERSION = 1\ndef (\n")
    fine = tmp_path / "polls" / "models.py"
    fine.write_text("X = 1\n")
    strays, roots = Strays(), {str(tmp_path / "polls"): True}
    caplog.set_level(logging.ERROR, "reload_middleware")
    for path in (views, fine):
        assert strays.note(str(path), roots, ())
    assert not strays.note(str(tmp_path / "other.py"), roots, ())
    assert not strays.note(str(tmp_path / "polls" / ".views.py.swp"), roots, ("*.swp",))
    assert [f.summary for f in strays.report()] == [f"{views}:2: SyntaxError: invalid syntax"]
    assert f"{views}:2" in caplog.text
    strays.note(str(views), roots, ())
    assert strays.report() == []  # the same save: said once
    views.write_text("VERSION = 2\ndef (\n")
    strays.note(str(views), roots, ())
    assert strays.report(tracked=[str(views)]) == []  # imported meanwhile: a change now
    strays.note(str(views), roots, ())
    assert len(strays.report()) == 1


def test_a_sweep_notes_files_saved_before_the_watcher_started(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("def (\n")
    import time

    since = time.time_ns()
    (tmp_path / "new.py").write_text("def (\n")
    strays = Strays()
    strays.sweep({str(tmp_path): True}, (), since=since)
    assert [f.file for f in strays.report()] == [str(tmp_path / "new.py")]
