"""The state one interpreter shares: made on first use, installed by the first enabled
middleware, never by importing the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import MakeProject, call
from reload_middleware import interpreter
from reload_middleware.watcher import Watcher

IMPORT_ONLY = """
import sys, threading
finders, threads = list(sys.meta_path), threading.active_count()
import reload_middleware, reload_middleware.cli, reload_middleware.doctor
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
