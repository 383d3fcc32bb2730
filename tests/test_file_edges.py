"""The promise at its edges, with real observers: lost events, times ahead of the clock,
writers that have not closed, chmods that change nothing."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import TextIO

import pytest
from watchdog.events import EventsLostEvent

from helpers import MakeProject, Until, call, save
from reload_middleware import ReloadMiddleware
from reload_middleware.watching import open_writers, settling
from reload_middleware.watching.watcher import Watcher

HOUR = 3600 * 10**9


def said(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def served_once_closed(app: ReloadMiddleware, writer: TextIO, rest: str) -> bytes:
    """The body of one request made while `writer` holds its file open; 0.3 s in, the
    writer writes `rest` where it is and closes (a slow copy finishing)."""

    def finish() -> None:
        writer.write(rest)
        writer.close()

    closer = threading.Timer(0.3, finish)
    closer.start()
    try:
        return call(app).body
    finally:
        closer.join()


def test_a_save_with_a_time_ahead_of_the_clock_is_one_change(
    project: MakeProject, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """`touch -d '+1 hour'` after an edit: served on the next request, never held as a
    storm, the skew said once; the next ordinary save is served on its next request."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    made.save_views("TEXT = 'ahead'\n")
    ahead = time.time_ns() + HOUR
    os.utime(made.views, ns=(ahead, ahead))
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"ahead"
    made.save_views("TEXT = 'later'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"later"
    assert said(caplog, "keep coming") == 0
    assert said(caplog, f"{made.views} has a time 3600 s ahead of this machine's clock") == 1


def test_lost_events_are_healed_on_the_next_request(
    project: MakeProject, fresh_process: Watcher, caplog: pytest.LogCaptureFixture
) -> None:
    """A save whose events never came (an overflow dropped them) is found as soon as the
    backend reports the loss, and the log names the file as missed."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    watcher = fresh_process
    watcher.stop()  # the save's events are lost with the observer
    save(made.views, "TEXT = 'unseen'\n")
    old = time.time_ns() - 2 * 10**9  # older than any event still on its way
    os.utime(made.views, ns=(old, old))
    watcher.start()
    assert not app.pending
    watcher.deliver(EventsLostEvent(str(made.root), is_directory=True))
    with caplog.at_level(logging.INFO, logger="reload_middleware"):
        assert call(app).body == b"unseen"
    assert said(caplog, f"{made.views} (1 file) changed and no file event told of it") == 1


def test_a_change_no_event_told_of_is_served_within_the_nets_period(
    project: MakeProject, fresh_process: Watcher, until: Until
) -> None:
    """With no report of a loss at all, the net's periodic look still finds the save."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    fresh_process.stop()  # no observer hears the save
    save(made.views, "TEXT = 'unseen'\n")
    fresh_process.net.period = 0.05
    fresh_process.start()
    until(lambda: call(app).body == b"unseen", timeout=5.0)


def test_a_file_still_being_written_is_taken_once_closed(
    project: MakeProject, until: Until
) -> None:
    """Half written and held open (a slow copy, an upload): the request that finds it
    waits for the close and is served the whole file, never the half."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    writer = open(made.views, "w")  # noqa: SIM115 (held open across the request)
    writer.write("TEXT = ")  # does not compile yet
    writer.flush()
    until(lambda: str(made.views) in app.pending)
    assert served_once_closed(app, writer, "'whole'\n") == b"whole"


def test_a_writer_that_stays_open_is_taken_as_it_is_after_the_bound(
    project: MakeProject, until: Until, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer that never closes (a log held open) holds an action CLOSE_WAIT at most;
    the file is named once."""
    monkeypatch.setattr(settling, "CLOSE_WAIT", 0.2)
    made = project()
    app = made.application
    assert call(app).body == b"old"
    with open(made.views, "w") as writer:
        writer.write("TEXT = 'open'\n")
        writer.flush()
        until(lambda: str(made.views) in app.pending)
        with caplog.at_level(logging.INFO, logger="reload_middleware"):
            assert call(app).body == b"open"
    assert said(caplog, f"{made.views} was still open for writing 0.2 s after its first") == 1


def test_a_chmod_that_changes_nothing_is_no_change(
    project: MakeProject, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """`chmod a+r` on a file already 0644 (a deploy script's habit) moves its ctime
    alone, with an attribute event alone: nothing reloads."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    os.chmod(made.views, 0o644)
    os.chmod(made.views, 0o644)
    until(lambda: str(made.views) in app.pending)
    with caplog.at_level(logging.INFO, logger="reload_middleware"):
        assert call(app).body == b"old"
    assert said(caplog, "changed:") == 0
    assert not app.pending


def test_a_rewrite_in_place_with_its_old_size_and_times_counts(
    project: MakeProject, until: Until
) -> None:
    """rsync --inplace with the times kept: size and mtime as before, the ctime moved
    and the content written: it counts."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    before = made.views.stat()
    with open(made.views, "r+") as target:  # same length, in place
        target.write("TEXT = 'new'\n")
    os.utime(made.views, ns=(before.st_atime_ns, before.st_mtime_ns))
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"new"


def test_a_file_being_written_when_watching_starts_is_taken_once_closed(
    project: MakeProject,
) -> None:
    """The write began before any watch (a slow copy under way when a process takes its
    first request): no event told of it, and /proc says a process holds it open, so its
    close is waited for all the same."""
    made = project()
    app = made.application
    writer = open(made.views, "w")  # noqa: SIM115 (held open across the request)
    writer.write("TEXT = ")
    writer.flush()
    # The first request: it starts the watching.
    assert served_once_closed(app, writer, "'whole'\n") == b"whole"


TORN_SCRIPT = """\
import {module}
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [{module}.TEXT.encode()]


application = ReloadMiddleware(app, **{{options!r}})
"""


def test_a_module_loaded_while_a_writer_is_at_work_is_served_once_closed(
    project: MakeProject, tmp_path: Path
) -> None:
    """A process started while a slow copy of a module was under way loaded it half
    done; its first request waits for the close and is served the whole file."""
    name = f"torn_{uuid.uuid4().hex[:8]}"
    writer = open(tmp_path.resolve() / f"{name}.py", "w")  # noqa: SIM115 (held open)
    writer.write("TEXT = 'half'\n")
    writer.flush()
    made = project(TORN_SCRIPT.format(module=name))
    writer.seek(0)  # the whole file is written over the half
    assert served_once_closed(made.application, writer, "TEXT = 'whole'\n") == b"whole"


def test_proc_tells_which_files_are_open_for_writing(tmp_path: Path) -> None:
    """Open for writing: held; for reading only, or closed: not."""
    path = tmp_path / "views.py"
    path.write_text("TEXT = 'old'\n")
    assert open_writers.holding([str(path)]) == set()
    with open(path) as reading:
        assert open_writers.holding([str(path)]) == set()
        assert reading.readable()
    with open(path, "a"):
        assert open_writers.holding([str(path), str(tmp_path / "other.py")]) == {str(path)}
    assert open_writers.holding([str(path)]) == set()


def test_a_file_held_open_is_told_by_its_real_path_not_by_its_name(tmp_path: Path) -> None:
    """A module imported through a symlinked directory is held when its real file is;
    another file of the same name is not."""
    (tmp_path / "release").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "release")
    for where in ("release", "other"):
        (tmp_path / where / "views.py").write_text("TEXT = 'old'\n")
    through_link = str(tmp_path / "current" / "views.py")
    other = str(tmp_path / "other" / "views.py")
    with open(tmp_path / "release" / "views.py", "a"):
        assert open_writers.holding([through_link, other]) == {through_link}
