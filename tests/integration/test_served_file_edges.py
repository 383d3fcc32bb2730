"""File edge cases as a user meets them, through real servers and real files.

Events lost in an inotify overflow, a module deleted and then recreated, a save with a
time ahead of the clock, a file still being written, and a chmod that changes nothing:
each test does what the user did and checks what the user would see, the bodies served,
the status codes and the log lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apache import Apache, free_port, wait_for
from procs import GUNICORN_KINDS, fetch, get
from support import Site, answer, holds, pids_answering, require, restarts, seen, warm
from traffic import Answer, Server, Traffic, running, timeline

from reload_middleware.watching import safety_net

pytestmark = pytest.mark.integration

# The user's app: mymod.py holds VERSION, read on every request. Default options.
APP = """\
import json, os
import mymod
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "version": mymod.VERSION}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app)
"""
# A view that imports its helper only when called.
LAZY_VIEW = """\
import json, os

def application(environ, start_response):
    import lazyhelper
    body = json.dumps({"pid": os.getpid(), "version": lazyhelper.VALUE}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""
LAZY_APP = """\
from lazyview import application as view
from reload_middleware import ReloadMiddleware

application = ReloadMiddleware(view)
"""
# In front of the app's middleware, never through it: /__pending__ answers the paths
# this process has recorded and not acted on yet, so a test knows an event has arrived
# before it sends the request that must act on it. Served by waitress when run.
FRONT = """\
import json, sys
from app import application as app

def application(environ, start_response):
    if environ.get("PATH_INFO") != "/__pending__":
        return app(environ, start_response)
    body = json.dumps(sorted(app.pending)).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

if __name__ == "__main__":
    import waitress
    waitress.serve(application, host="127.0.0.1", port=int(sys.argv[1]), threads=4)
"""


def gunicorn(workers: int) -> Callable[[int], list[str]]:
    """gunicorn with sync workers (no --preload): a change restarts the worker. A long
    worker timeout: a worker stopped on purpose must not be replaced by the arbiter."""
    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                "--no-control-socket", "--graceful-timeout", "5", "--timeout", "120",
                *GUNICORN_KINDS["sync"], "front:application"]
    return argv


def waitress(port: int) -> list[str]:
    """waitress, 4 threads, one process: a change is reloaded in-process."""
    return [sys.executable, "front.py", str(port)]


def serve(port: int) -> list[str]:
    """The package's own command, on the app that does not wrap itself."""
    return [sys.executable, "-m", "reload_middleware", "serve", "lazyview.py",
            "--port", str(port)]


SERVERS: dict[str, Callable[[int], list[str]]] = {
    "gunicorn": gunicorn(1), "gunicorn-2": gunicorn(2), "waitress": waitress, "serve": serve,
}
PROCESSES = {"gunicorn": 1, "gunicorn-2": 2, "waitress": 1, "serve": 1}


def make_app(root: Path, *, lazy: bool = False) -> Path:
    """The app in `root`: mymod.py with VERSION '1', or lazyhelper.py with VALUE 1."""
    if lazy:
        (root / "lazyhelper.py").write_text("VALUE = 1\n")
        (root / "lazyview.py").write_text(LAZY_VIEW)
        (root / "app.py").write_text(LAZY_APP)
    else:
        (root / "mymod.py").write_text("VERSION = '1'\n")
        (root / "app.py").write_text(APP)
    (root / "front.py").write_text(FRONT)
    return root


@contextlib.contextmanager
def serving(name: str, cwd: Path, ready: str = "/") -> Iterator[Server]:
    """SERVERS[name] serving the app in `cwd`, answering `ready`, until the block ends.
    The middleware starts watching on its first request: `ready="/__pending__"` leaves
    that to the test."""
    port = free_port()
    with running(SERVERS[name](port), cwd, port, ready) as server:
        yield server


def version(port: int) -> str:
    """The version one request is served (307s followed), asserting a 200."""
    status, body, _ = fetch(port)
    assert status == 200, body[-500:]
    return str(json.loads(body)["version"])


def recorded(port: int, path: Path) -> bool:
    """Whether the process answering /__pending__ has recorded `path` (not acted yet)."""
    status, body = get(port, "/__pending__")
    assert status == 200, body
    return os.path.realpath(path) in json.loads(body)


def wait_recorded(port: int, path: Path) -> None:
    wait_for(lambda: recorded(port, path), 10, f"the server recording {path.name}")


def lines_with(output: str, *needles: str) -> list[str]:
    return [line for line in output.splitlines() if all(n in line for n in needles)]


def pid_of(line: str) -> int:
    found = re.search(r"\[pid (\d+)\]", line)
    assert found, line
    return int(found.group(1))


# 1. Events lost in an inotify overflow.


def overflowing_writes() -> int:
    """Write cycles that overflow an inotify queue: each gives a modify and a close-write
    event, and the kernel queues `max_queued_events` per instance (16,384 by default)."""
    try:
        queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    except (OSError, ValueError):
        require("no inotify here: nothing to overflow")
        raise AssertionError("unreachable") from None
    return max(20_000, queued + 1_000)


@pytest.mark.parametrize("name", ["gunicorn", "waitress"])
def test_events_lost_in_an_overflow_are_found_by_the_safety_net(
    tmp_path: Path, name: str
) -> None:
    """The serving process stopped while 20,000 writes to a scratch file overflow its
    inotify queue and mymod.py is saved: once it runs again, the new VERSION is served
    within 10 s while requests arrive, and its log says that the safety net found
    mymod.py, and (where the process lives on) that events were lost, in either order:
    the net's look, overdue at the CONT, may run before the watcher reads the overflow."""
    writes = overflowing_writes()
    make_app(tmp_path)
    mymod, scratch = tmp_path / "mymod.py", tmp_path / "scratch.log"
    with serving(name, tmp_path) as server:
        status, body, _ = fetch(server.port)
        assert status == 200, body
        watching = time.monotonic()  # since the first request, the safety net's clock too
        pid = int(json.loads(body)["pid"])  # the gunicorn worker, or waitress itself
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            for _ in range(writes):
                with open(scratch, "w") as out:
                    out.write("x")
            # Stopped past the net's period, as a process held in a debugger or starved
            # by the burst is (on a loaded machine the writes alone take that long): its
            # periodic look is due at the CONT, with the report of the lost events.
            threading.Event().wait(max(0.0, watching + safety_net.PERIOD + 1 - time.monotonic()))
            mymod.write_text("VERSION = '2'\n")  # the save, just before the CONT
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        with Traffic(server.port, pause=0.2) as traffic:
            traffic.wait(lambda answers: served_then(answers, "2", 3), 20,
                         "the new VERSION served", resumed)
        answers = traffic.answers
        story = timeline(answers, resumed)
        print(f"stopped for {resumed - stopped:.1f} s; after the CONT:\n{story}")
        first = next(a for a in answers if a.version == "2")
        assert first.started - resumed <= 10
        assert all(a.status == 200 for a in answers)
        assert all(a.version == "2" for a in answers if a.started >= first.finished)
        log = server.wait_for_output(f"[pid {pid}]", "found by the safety net", "mymod.py")
        if name == "waitress":  # a gunicorn worker may exit before its watcher reads it
            log = server.wait_for_output(f"[pid {pid}] file events were lost")
    assert lines_with(log, f"[pid {pid}]", "found by the safety net", "mymod.py"), log[-4000:]


def served_then(answers: list[Answer], wanted: str, more: int) -> bool:
    """`wanted` was served, and `more` answers came after the first such answer."""
    firsts = [a.finished for a in answers if a.version == wanted]
    return bool(firsts) and sum(a.started >= firsts[0] for a in answers) >= more


# 2. Deleted, then recreated, with a request in between.


@pytest.mark.parametrize("name", ["serve", "waitress"])
def test_a_module_deleted_and_recreated_is_served(tmp_path: Path, name: str) -> None:
    """lazyhelper.py (imported by the view when called) is removed, requests come for a
    second, and it is written again with VALUE = 2: the requests in between are answered
    by the loaded code, never a 500; from 1 s after the save on, every answer is 2."""
    make_app(tmp_path, lazy=True)
    helper = tmp_path / "lazyhelper.py"
    with serving(name, tmp_path) as server:
        # The first request imports the helper, the next one tracks it.
        assert [version(server.port) for _ in range(3)] == ["1", "1", "1"]
        helper.unlink()
        gone = time.monotonic()
        if name == "waitress":  # serve has no way in but through the middleware
            wait_recorded(server.port, helper)
        with Traffic(server.port, pause=0.1) as between:
            between.wait(lambda answers: any(a.started >= gone + 1 for a in answers), 20,
                         "requests for a second after the deletion", gone)
        helper.write_text("VALUE = 2\n")
        saved = time.monotonic()
        with Traffic(server.port, pause=0.2) as after:
            after.wait(lambda answers: sum(a.started >= saved + 1 for a in answers) >= 5, 20,
                       "five answers from 1 s after the save on", saved)
        print(f"after the deletion:\n{timeline(between.answers, gone)}\n"
              f"after the save:\n{timeline(after.answers, saved)}\n{server.output[-4000:]}")
    assert all(a.status == 200 and a.version == "1" for a in between.answers)
    answers = after.answers
    assert all(a.status == 200 for a in answers)
    assert all(a.version == "2" for a in answers if a.started >= saved + 1)
    news = [a.finished for a in answers if a.version == "2"]
    assert all(a.version == "2" for a in answers if a.started >= news[0])


# 3. A save with a time ahead of the clock.


@pytest.mark.parametrize("name", ["gunicorn", "waitress"])
def test_a_save_with_a_future_time_is_one_change(tmp_path: Path, name: str) -> None:
    """mymod.py saved, then its time set an hour ahead (`touch -d '+1 hour'`): the next
    request is served the new code, with no storm hold and one log line per process
    about the time; the ordinary saves after it are served on the next request too."""
    make_app(tmp_path)
    mymod = tmp_path / "mymod.py"
    with serving(name, tmp_path) as server:
        assert version(server.port) == "1"
        mymod.write_text("VERSION = '2'\n")
        ahead = time.time() + 3600
        os.utime(mymod, (ahead, ahead))
        wait_recorded(server.port, mymod)
        assert version(server.port) == "2", server.output[-3000:]
        for new in ("3", "4"):
            mymod.write_text(f"VERSION = {new!r}\n")
            wait_recorded(server.port, mymod)
            assert version(server.port) == new, server.output[-3000:]
        log = server.output
        print(log)
    assert "changes keep coming" not in log, log[-3000:]
    told = lines_with(log, "has a time", "ahead of this machine's clock")
    assert told and all("mymod.py" in line for line in told), log[-3000:]
    assert len({pid_of(line) for line in told}) == len(told), told  # once per process


# 4. A file still being written.


def write_slowly(path: Path, text: str, *, empty_for: float = 0.0, open_for: float = 0.0,
                 on_open: Callable[[], object] = lambda: None) -> tuple[float, float]:
    """Open `path` for writing (truncated), call `on_open`, write nothing for `empty_for`
    s, write `text`, keep it open `open_for` s more, close: (opened, closed), monotonic.
    The waits are the writer's own pace, the schedule under test."""
    pace = threading.Event()
    with open(path, "w") as out:
        opened = time.monotonic()
        on_open()
        pace.wait(empty_for)
        out.write(text)
        out.flush()
        pace.wait(open_for)
    return opened, time.monotonic()


@pytest.mark.parametrize("name", ["gunicorn", "gunicorn-2", "waitress"])
def test_a_file_still_being_written_is_not_loaded_half_done(tmp_path: Path, name: str) -> None:
    """Every process watching, mymod.py open for writing, truncated and empty for 0.8 s,
    then written and closed, while three clients send requests: never a 500 or an empty
    answer; the old VERSION until the close, the new one from 1 s after it on."""
    make_app(tmp_path)
    with serving(name, tmp_path) as server:
        with Traffic(server.port, clients=3, pause=0.05) as traffic:
            begun = time.monotonic()
            traffic.wait(lambda answers: len({a.pid for a in answers}) == PROCESSES[name], 20,
                         "every process answering, so watching", begun)
            opened, closed = write_slowly(tmp_path / "mymod.py", "VERSION = '2'\n",
                                          empty_for=0.8)
            traffic.wait(lambda answers: sum(a.started >= closed + 1 for a in answers) >= 6, 20,
                         "six answers from 1 s after the close on", opened)
        print(f"after the open (closed at {closed - opened:+.2f} s):\n"
              f"{timeline(traffic.answers, opened)}\n{server.output[-6000:]}")
    never_half_done(traffic.answers, opened, closed)


@pytest.mark.parametrize("name", ["gunicorn", "waitress"])
def test_a_file_being_written_when_watching_starts_is_not_loaded_half_done(
    tmp_path: Path, name: str
) -> None:
    """The first request through the middleware, which starts its watching, comes while
    mymod.py is open for writing, truncated and empty (a worker that had served nothing
    yet): its watcher never heard that write, and still never a 500 or an empty answer;
    the old VERSION until the close, the new one from 1 s after it on."""
    make_app(tmp_path)
    with serving(name, tmp_path, ready="/__pending__") as server, contextlib.ExitStack() as stack:
        traffic = Traffic(server.port, clients=3, pause=0.05)
        opened, closed = write_slowly(tmp_path / "mymod.py", "VERSION = '2'\n", empty_for=0.8,
                                      on_open=lambda: stack.enter_context(traffic))
        traffic.wait(lambda answers: sum(a.started >= closed + 1 for a in answers) >= 6, 20,
                     "six answers from 1 s after the close on", opened)
        stack.close()
        print(f"after the open (closed at {closed - opened:+.2f} s):\n"
              f"{timeline(traffic.answers, opened)}\n{server.output[-6000:]}")
    never_half_done(traffic.answers, opened, closed)


def never_half_done(answers: list[Answer], opened: float, closed: float) -> None:
    """No 500 and no empty answer; the old VERSION until the close (requests were sent
    while the file was open), the new one from 1 s after it on."""
    assert [a for a in answers if a.status != 200 or a.version not in ("1", "2")] == []
    assert any(opened <= a.started <= closed for a in answers)
    assert all(a.version == "1" for a in answers if a.finished < closed)
    assert all(a.version == "2" for a in answers if a.started >= closed + 1)


@pytest.mark.parametrize("name", ["gunicorn", "waitress"])
def test_a_writer_that_stays_open_is_acted_on_after_the_bound(tmp_path: Path, name: str) -> None:
    """mymod.py written but kept open 4 s: the wait for its close is bounded (2 s), so
    the new VERSION is served before the close, and the log says the file was still
    open for writing."""
    make_app(tmp_path)
    with serving(name, tmp_path) as server:
        with Traffic(server.port, clients=2, pause=0.1) as traffic:
            begun = time.monotonic()
            traffic.wait(lambda answers: len(answers) >= 4, 20, "requests flowing", begun)
            opened, closed = write_slowly(tmp_path / "mymod.py", "VERSION = '2'\n", open_for=4)
            traffic.wait(lambda answers: served_then(answers, "2", 4), 20,
                         "the new VERSION served", opened)
        answers = traffic.answers
        story = timeline(answers, opened)
        print(f"after the open (closed at {closed - opened:+.2f} s):\n{story}")
        log = server.wait_for_output("still open for writing")
    assert all(a.status == 200 and a.version in ("1", "2") for a in answers)
    assert any(a.version == "2" and a.finished < closed for a in answers)
    assert lines_with(log, "still open for writing", "mymod.py"), log[-3000:]


# 5. A chmod that changes nothing (Apache daemon mode, preloaded, 2 processes).

CHMODS: dict[str, Callable[[Path], Any]] = {
    "chmod-a+r": lambda path: subprocess.run(["chmod", "a+r", str(path)], check=True),
    "os.chmod-same-mode": lambda path: os.chmod(path, stat.S_IMODE(path.stat().st_mode)),
}


@pytest.mark.parametrize("how", list(CHMODS))
def test_a_chmod_that_changes_nothing_restarts_nothing(
    site: Callable[..., Site], apache: Callable[..., Apache], how: str
) -> None:
    """A module already 0644 given its mode again: no daemon restarts and no change is
    logged; a rewrite in place that puts back the size and mtime is still served by
    the next request."""
    app = site()
    server = apache(app)
    pids = warm(server)
    assert all(answer(server)["version"] == "1" for _ in range(5))
    views = app.root / "webapp" / "views.py"
    assert stat.S_IMODE(views.stat().st_mode) == 0o644
    CHMODS[how](views)

    def unchanged() -> bool:
        result = answer(server)
        return result["version"] == "1" and result["pid"] in pids

    try:
        holds(unchanged, 2.0, "old code from the same processes after the chmod")
    except AssertionError as exc:
        told = [line for line in server.error_log().splitlines() if "restart" in line]
        raise AssertionError(f"{exc}\n" + "\n".join(told)) from None
    assert server.daemon_pids() == pids
    assert restarts(server) == 0 and "changed:" not in server.error_log(), server.error_log()

    before = views.stat()
    with open(views, "r+") as target:
        target.write("VERSION = '2'\n")  # the same length as the old text
    os.utime(views, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (views.stat().st_size, views.stat().st_mtime_ns) == (before.st_size,
                                                                before.st_mtime_ns)
    seen(server, views)
    assert answer(server)["version"] == "2"
    assert not pids_answering(server, version="2") & pids
