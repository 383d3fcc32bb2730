"""Saved Python files nothing imported yet: noted by the watcher, logged by a request."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from watchdog.events import FileCreatedEvent

from helpers import MakeProject, call
from reload_middleware.watching.unloaded_files import Strays, below
from reload_middleware.watching.watcher import Watcher

NOT_LOADED = "nothing has imported it yet"


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


def test_strays_are_compiled_in_package_roots_only(
    project: MakeProject, fresh_process: Watcher, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    """The package's directory and the script's (a top-level module's) are package
    roots; a plain watch directory is not, though its files are watched as changes."""
    shared = tmp_path.resolve() / "shared"
    shared.mkdir()
    made = project(watch=["shared"])
    app = made.application
    packages = app._tracking.files.registration.packages
    assert packages[str(made.views.parent)] is True and packages[str(made.root)] is False
    assert str(shared) not in packages
    assert call(app).status.startswith("200")
    caplog.set_level(logging.ERROR, "reload_middleware")
    fresh = made.views.parent / "later.py"
    fresh.write_text("def (\n")
    fresh_process.deliver(FileCreatedEvent(str(fresh)))
    call(app)
    assert f"{fresh}:1: SyntaxError" in caplog.text and NOT_LOADED in caplog.text


def test_no_stray_is_compiled_beside_the_trigger(
    project: MakeProject, fresh_process: Watcher, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    """With `trigger` only the trigger counts: its directory (a shared temp directory,
    say) is watched for it alone, and a `.py` file created there is never read."""
    shared = tmp_path.resolve() / "shared"
    shared.mkdir()
    made = project(trigger=str(shared / "reload.trigger"))
    app = made.application
    assert app._tracking.files.registration.packages == {}
    assert call(app).status.startswith("200")
    caplog.set_level(logging.ERROR, "reload_middleware")
    evil = shared / "evil.py"
    os.mkfifo(evil)  # read, it would block the request for good
    fresh_process.deliver(FileCreatedEvent(str(evil)))
    bad = shared / "bad.py"
    bad.write_text("def (\n")
    fresh_process.deliver(FileCreatedEvent(str(bad)))
    assert call(app).status.startswith("200")
    assert NOT_LOADED not in caplog.text and "not read" not in caplog.text
