"""The state one interpreter shares: made on first use, installed by the first enabled
middleware, never by importing the package."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import MakeProject, call
from reload_middleware import file_reads, interpreter
from reload_middleware.live import browser
from reload_middleware.operations import state_dir
from reload_middleware.tracking import Tracking
from reload_middleware.watching.changes import Changes
from reload_middleware.watching.watcher import Watcher

IMPORT_ONLY = """
import sys, threading
finders, threads = list(sys.meta_path), threading.active_count()
import reload_middleware, reload_middleware.operations.cli, reload_middleware.operations.doctor
from reload_middleware import ReloadMiddleware
off = ReloadMiddleware(lambda environ, start_response: [], enabled=False)
print(sys.meta_path == finders, threading.active_count() == threads)
"""


def test_importing_the_package_installs_nothing(tmp_path: Path) -> None:
    """In a fresh interpreter: importing the package, its commands, and building a
    middleware with `enabled` off leave sys.meta_path and the thread count as they were."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
    done = subprocess.run([sys.executable, "-c", IMPORT_ONLY], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60, check=True)
    assert done.stdout.split() == ["True", "True"]


def test_the_first_enabled_middleware_installs_the_finder(
    project: MakeProject, fresh_process: Watcher
) -> None:
    """Built enabled, a middleware puts the interpreter's import finder first."""
    assert interpreter.current().imports not in sys.meta_path
    app = project().application
    assert sys.meta_path[0] is interpreter.current().imports
    assert call(app).body == b"old"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_fork_starts_a_new_generation_in_the_child(fresh_process: Watcher) -> None:
    """The one fork dispatcher asks the current state: the child counts one fork more
    and its watcher has no threads; the parent's count stays."""
    place = interpreter.current()
    place.install()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, f"{place.forks} {place.watcher.started}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        seen = pipe.read()
    os.waitpid(pid, 0)
    assert seen == "1 False"
    assert place.forks == 0


def test_track_paths_are_kept_once_each_in_order() -> None:
    """The track() paths of an interpreter are a set that keeps the order given."""
    place = interpreter.Interpreter()
    assert place.track(["/srv/a", "/srv/b"]) is True
    assert place.track(["/srv/a"]) is False
    assert list(place.tracked) == ["/srv/a", "/srv/b"]


# --- reset(): nothing from before is remembered -------------------------------------------


def said(caplog: pytest.LogCaptureFixture, words: str) -> int:
    """How many log lines so far have `words` in them."""
    return sum(words in r.getMessage() for r in caplog.records)


def test_reset_says_a_doubt_about_file_times_again(
    fresh_process: Watcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file time ahead of the clock is said once per interpreter, whichever latch meets
    it (read_times.py), and again after reset(), as in a new process."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    ahead = tmp_path / "data.txt"
    ahead.write_text("")
    later = time.time_ns() + 3600 * 10**9
    os.utime(ahead, ns=(later, later))

    def meet() -> None:  # a middleware of no script: a latch of its own
        latch = Tracking(None, interpreter.current()).changes
        latch.baseline([str(ahead)], loaded_since=time.time_ns())

    meet()
    meet()
    assert said(caplog, "ahead of this machine's clock") == 1
    interpreter.reset()
    meet()
    assert said(caplog, "ahead of this machine's clock") == 2


def test_reset_reports_an_unreadable_file_again(
    fresh_process: Watcher, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A source that cannot be read is reported once per interpreter, whichever
    middleware compiles it (preflight.py), and again after reset()."""
    secret = tmp_path / "secret.py"
    secret.write_text("x = 1\n")
    open_file = file_reads.open_file

    def unreadable(path: str, **kw: Any) -> int:  # root reads through any mode: refused here
        if path.endswith("secret.py"):
            raise PermissionError(13, "Permission denied", path)
        return open_file(path, **kw)

    monkeypatch.setattr(file_reads, "open_file", unreadable)

    def compile_stray() -> None:  # saved, imported by nothing: the next request compiles it
        strays = Tracking(None, interpreter.current()).files.strays
        strays.note(str(secret), {str(tmp_path): False}, ())
        strays.report()

    compile_stray()
    compile_stray()
    assert said(caplog, "cannot read") == 1
    interpreter.reset()
    compile_stray()
    assert said(caplog, "cannot read") == 2


def test_reset_chooses_the_state_directory_again(
    fresh_process: Watcher, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The middlewares of an interpreter share its state directory, a skipped candidate
    said once (state_dir.py); after reset() it is chosen, and said, again."""
    planted, usable = tmp_path / "planted", tmp_path / "usable"
    planted.write_text("")  # no directory: skipped
    monkeypatch.setattr(state_dir, "candidates", lambda *_: [str(planted), str(usable)])
    chosen = interpreter.current().state_directory()
    assert Tracking(None, interpreter.current()).state is chosen
    assert chosen.path == str(usable) and said(caplog, "skipped") == 1
    interpreter.reset()
    again = interpreter.current().state_directory()
    assert again is not chosen
    assert again.path == str(usable) and said(caplog, "skipped") == 2


def test_reset_asks_mod_wsgi_for_its_shutdown_again(
    fresh_process: Watcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mod_wsgi is asked once per interpreter to tell of a shutdown, by the first beacon
    (browser.py); after reset() the next beacon asks again, and each state's answer
    releases its own beacons."""
    told: list[Callable[..., None]] = []
    monkeypatch.setitem(sys.modules, "mod_wsgi",
                        types.SimpleNamespace(subscribe_shutdown=told.append))
    before = interpreter.current().beacons.add(browser.Beacon(Changes()))
    interpreter.current().beacons.add(browser.Beacon(Changes()))
    assert len(told) == 1
    interpreter.reset()
    after = interpreter.current().beacons.add(browser.Beacon(Changes()))
    assert len(told) == 2
    told[1]("process_stopping", shutdown_reason="shutdown_signal")
    assert after._released.is_set() and not before._released.is_set()
