"""The import preflight run ahead of the request (docs/how-it-works.md, "The preflight,
ahead of the request"): run once a change settles, shared by the processes of a script,
used only for the very files it checked, stopped by a later save."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import Until
from reload_middleware.acting import ahead
from reload_middleware.acting.preflight import Failure
from reload_middleware.operations import state_dir
from reload_middleware.watching.changes import Changes, Stat
from reload_middleware.watching.registration import Registration
from reload_middleware.watching.watcher import Watcher

VIEWS = "/srv/app/views.py"
SAVED: dict[str, Stat] = {VIEWS: (10, 20, 30, 40, ())}
BROKEN = Failure(VIEWS, 1, "NameError: name 'x' is not defined", "Traceback ...", (VIEWS,))


class Threads:
    """spawn() as the watcher's: every thread joined at the end of the test."""

    def __init__(self) -> None:
        self.started: list[threading.Thread] = []

    def spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.started.append(thread)
        thread.start()
        return thread

    def idle(self) -> bool:
        return not any(t.is_alive() for t in self.started)


class Runs:
    """The preflight: each plan it ran, and what it answers (`result`), after `gate`."""

    def __init__(self, result: Failure | None = None) -> None:
        self.plans: list[ahead.Plan] = []
        self.result = result
        self.gate = threading.Event()
        self.gate.set()
        self.during: Callable[[ahead.Runner], None] | None = None

    def __call__(self, plan: ahead.Plan, runner: ahead.Runner) -> Failure | None:
        self.plans.append(plan)
        if self.during is not None:
            self.during(runner)
        self.gate.wait(10)
        return self.result


@pytest.fixture
def threads() -> Iterator[Threads]:
    made = Threads()
    yield made
    for thread in made.started:
        thread.join(10)


@pytest.fixture
def state(tmp_path: Path) -> state_dir.StateDir:
    return state_dir.StateDir([str(tmp_path / "state")])


def make(state: state_dir.StateDir, threads: Threads, runs: Runs,
         plan: Callable[[], ahead.Plan | None] = lambda: (SAVED, ["app.views"]),
         changes: Changes | None = None) -> tuple[Ahead, Changes]:
    changes = changes or Changes()
    made = ahead.Ahead("/srv/app/app.wsgi", state, changes, plan=plan, run=runs,
                       spawn=threads.spawn)
    made.want(True, settle=0.01)
    changes.listen(made.wake)
    return made, changes


Ahead = ahead.Ahead


# A child that waits for its standard input to end: it runs until killed, or until the
# test lets it go (`Released`), never for a time guessed.
WAITING = [sys.executable, "-c", "import sys; sys.stdin.read()"]


@contextlib.contextmanager
def held_input() -> Iterator[int]:
    """A standard input for WAITING that ends only with the block."""
    read, write = os.pipe()
    try:
        yield read
    finally:
        os.close(read)
        os.close(write)


def never(name: str) -> Callable[[], Failure | None]:
    def run() -> Failure | None:
        raise AssertionError(f"{name} ran a preflight of its own")
    return run


def test_a_settled_change_is_imported_once_ahead_and_the_request_takes_its_result(
    state: state_dir.StateDir, threads: Threads, until: Until
) -> None:
    runs = Runs()
    made, changes = make(state, threads, runs)
    changes.record(VIEWS)
    until(lambda: runs.plans and threads.idle())
    assert runs.plans == [(SAVED, ["app.views"])]
    assert made.check(SAVED, ["app.views"], never("the request")) is None


def test_a_failure_found_ahead_is_the_request_s_failure(
    state: state_dir.StateDir, threads: Threads, until: Until
) -> None:
    runs = Runs(BROKEN)
    made, changes = make(state, threads, runs)
    changes.record(VIEWS)
    until(lambda: runs.plans and threads.idle())
    assert made.check(SAVED, ["app.views"], never("the request")) == BROKEN


@pytest.mark.parametrize("states, names", [
    ({VIEWS: (11, 20, 30, 41, ())}, ["app.views"]),  # saved again since
    ({**SAVED, "/srv/app/models.py": (1, 2, 3, 4, ())}, ["app.models", "app.views"]),
    (SAVED, ["app.views", "views"]),
], ids=["other states", "more files", "other names"])
def test_a_result_serves_only_the_very_files_it_checked(
    state: state_dir.StateDir, threads: Threads, until: Until,
    states: dict[str, Stat], names: list[str],
) -> None:
    runs = Runs(BROKEN)
    made, changes = make(state, threads, runs)
    changes.record(VIEWS)
    until(lambda: runs.plans and threads.idle())
    assert made.check(states, names, lambda: None) is None  # its own run: it loads
    # and that result is shared in turn: another process takes it as it is
    other, _ = make(state, threads, Runs())
    assert other.check(states, names, never("the other process")) is None


def test_the_processes_of_a_script_run_it_once_and_wait_for_it(
    state: state_dir.StateDir, threads: Threads, until: Until
) -> None:
    """Two workers hear of the same save: one imports the app, and a request on the
    other waits for that result rather than importing it once more."""
    runs = Runs(BROKEN)
    runs.gate.clear()
    _, first_changes = make(state, threads, runs)
    second, second_changes = make(state, threads, runs)
    first_changes.record(VIEWS)
    until(lambda: len(runs.plans) == 1)
    second_changes.record(VIEWS)
    answered: list[Failure | None] = []
    request = threading.Thread(
        target=lambda: answered.append(second.check(SAVED, ["app.views"], never("the request"))))
    request.start()
    until(lambda: threads.started[-1:] and not threads.started[-1].is_alive()
          and len(threads.started) == 2)  # the second worker's own look found the run
    assert not answered, "the request did not wait for the run under way"
    runs.gate.set()
    request.join(10)
    assert answered == [BROKEN]
    assert len(runs.plans) == 1


def test_a_save_during_the_run_stops_its_child_and_runs_again_once_settled(
    state: state_dir.StateDir, threads: Threads, until: Until
) -> None:
    plans: Iterator[ahead.Plan] = iter([(SAVED, ["app.views"]),
                                        ({VIEWS: (11, 20, 30, 41, ())}, ["app.views"])])
    runs = Runs()
    changes = Changes()
    stopped: list[float] = []

    def during(runner: ahead.Runner) -> None:
        if len(runs.plans) > 1:
            return
        began = time.monotonic()
        changes.record(VIEWS)  # saved again while the child imports
        with pytest.raises(ahead.Stopped), held_input() as child_input:
            runner(WAITING, timeout=60, stdin=child_input)
        stopped.append(time.monotonic() - began)
        raise ahead.Stopped

    runs.during = during
    made, _ = make(state, threads, runs, plan=lambda: next(plans), changes=changes)
    changes.record(VIEWS)
    until(lambda: len(runs.plans) == 2 and threads.idle())
    assert stopped and stopped[0] < 10
    newer = {VIEWS: (11, 20, 30, 41, ())}
    assert made.check(newer, ["app.views"], never("the request")) is None
    assert made.check(SAVED, ["app.views"], lambda: BROKEN) == BROKEN  # never stored


def test_files_the_import_itself_writes_run_nothing_again(
    state: state_dir.StateDir, threads: Threads, until: Until
) -> None:
    """An app that writes a watched file as it loads: the run ahead writes it too, and
    that alone must not run it again, and again."""
    log = "/srv/app/data/app.log"
    plans: Iterator[ahead.Plan] = iter([(SAVED, ["app.views"]),
                                        ({**SAVED, log: (5, 6, 7, 8, ())}, ["app.views"])])
    runs = Runs()
    changes = Changes()
    runs.during = lambda runner: changes.record(log)
    make(state, threads, runs, plan=lambda: next(plans), changes=changes)
    changes.record(VIEWS)
    until(lambda: runs.plans and threads.idle())
    assert len(runs.plans) == 1


@pytest.mark.parametrize("why", ["no private directory", "not wanted", "nothing to check"])
def test_nothing_is_run_ahead(threads: Threads, until: Until, tmp_path: Path, why: str) -> None:
    state = state_dir.StateDir([] if why == "no private directory" else [str(tmp_path / "s")])
    runs = Runs()
    made, changes = make(state, threads, runs,
                         plan=(lambda: None) if why == "nothing to check" else
                         (lambda: (SAVED, ["app.views"])))
    if why == "not wanted":
        made.want(False, settle=0.01)
    changes.record(VIEWS)
    until(threads.idle)
    assert runs.plans == []
    assert made.check(SAVED, ["app.views"], lambda: BROKEN) == BROKEN


def test_stopping_the_watcher_ends_a_look_ahead_at_once(until: Until) -> None:
    """A change that never settles (a writer that keeps the file open) holds the thread
    for `ABANDON` seconds, unless watching stops: then stop() ends and joins it."""
    watcher = Watcher()
    watcher.start()
    changes = Changes()
    watcher.register("key", Registration(changes, frozenset({VIEWS}), roots={}))
    runs = Runs()
    made = ahead.Ahead("key", state_dir.StateDir([]), changes, plan=lambda: None, run=runs,
                       spawn=watcher.spawn)
    made.want(True, settle=0.01)
    changes.listen(made.wake)
    changes.record(VIEWS, "write")  # open for writing: not settled for 2 s
    began = time.monotonic()
    watcher.stop()
    assert time.monotonic() - began < 1.5
    assert watcher.spawn(lambda: None, "late") is None  # nothing starts once stopped


def test_stoppable_runs_a_child_as_subprocess_run_does() -> None:
    runner = ahead.stoppable(lambda: False)
    done = runner([sys.executable, "-c", "import sys; print('ok'); sys.exit(3)"],
                  timeout=30, capture_output=True, text=True, check=False,
                  stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout.strip()) == (3, "ok")
    with pytest.raises(subprocess.TimeoutExpired), held_input() as child_input:
        runner(WAITING, timeout=0.2, text=True, stdin=child_input)


@pytest.mark.parametrize("data", [None, b"", b"[]", b"{}", b'{"key": "k", "failure": 3}',
                                  b'{"key": "k", "failure": {"file": 1}}', b"\xff"])
def test_an_unsound_record_is_no_result(data: bytes | None) -> None:
    assert ahead.decode(data, "k") == ahead.MISSING


def test_a_record_keeps_the_failure_whole() -> None:
    assert ahead.decode(ahead.encode("k", BROKEN), "k") == BROKEN


@pytest.mark.parametrize("planted", ["fifo", "directory", "symlink"])
def test_something_planted_at_the_record_or_its_lock_is_no_result_and_holds_nothing(
    state: state_dir.StateDir, threads: Threads, tmp_path: Path, planted: str
) -> None:
    """Only the same user or root can put anything in the private directory; whatever
    is at the record's or the lock's name, the request runs its own preflight at once,
    and the record it leaves is a file of its own."""
    made, _ = make(state, threads, Runs())
    assert state.path is not None
    for name in (made.name, f"{made.name}.lock"):
        target = Path(state.path) / name
        if planted == "fifo":
            os.mkfifo(target)
        elif planted == "directory":
            target.mkdir()
        else:
            target.symlink_to(tmp_path / "elsewhere")
    assert made.check(SAVED, ["app.views"], lambda: BROKEN) == BROKEN
    assert (Path(state.path) / made.name).is_file()
    other, _ = make(state, threads, Runs())
    assert other.check(SAVED, ["app.views"], never("the other process")) == BROKEN


def test_files_the_import_writes_while_it_runs_do_not_stop_it(
    state: state_dir.StateDir, threads: Threads, until: Until
) -> None:
    """An app that writes a watched file early in its import (a database, a log): that
    event must not kill the child that wrote it, or each run would stop the next."""
    changes = Changes()
    runs = Runs()
    finished: list[int] = []
    looks = threading.Semaphore(0)  # each look of the run for a save that stops it
    recorded_since = changes.recorded_since

    def looked(seq: int) -> frozenset[str]:
        looks.release()
        return recorded_since(seq)

    changes.recorded_since = looked  # type: ignore[method-assign]
    read, write = os.pipe()

    def release() -> None:  # once the run has looked twice with the event there
        looks.acquire(timeout=10)
        looks.acquire(timeout=10)
        os.close(write)

    def during(runner: ahead.Runner) -> None:
        changes.record("/srv/app/data/app.db")  # written by the import itself
        threading.Thread(target=release).start()
        with os.fdopen(read) as child_input:
            done = runner(WAITING, timeout=30, stdin=child_input)
        finished.append(done.returncode)

    runs.during = during
    made, _ = make(state, threads, runs, changes=changes)
    changes.record(VIEWS)
    until(lambda: runs.plans and threads.idle())
    assert finished == [0]
    assert made.check(SAVED, ["app.views"], never("the request")) is None
