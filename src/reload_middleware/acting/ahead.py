"""The import preflight, run ahead: as soon as a change has settled, before any request.

A restart after a change waits for the app to be imported in a separate process
(preflight.py): as long as the app's own start. A person who saves and then turns to
the browser gives it that time. So when a change has settled, a thread of its own,
started by the change and ended with it, confirms the change as a request would,
without taking it, and runs that preflight. The request that acts then waits only for
what remains of it (docs/how-it-works.md, "The preflight, ahead of the request"):

    ahead = Ahead(name, state, changes, plan=tracking.preview, run=import_preflight)
    changes.listen(ahead.wake)
    ahead.want(True, settle=0.05)             # the action here restarts, after an import
    failure = ahead.check(states, names, run)  # on the request: its result, or run()

A result belongs to the files' states it checked: the request uses it only when it
confirms the very same files in the very same states (mtime, size, inode, ctime) and
module names, and runs its own otherwise. A changed file saved again during the run
stops it (files the import itself writes do not).

The processes that serve one script share the runs, through one file per script in the
private state directory (state_dir.py): its lock is held for a run, its content is the
last result and the states it belongs to. The first process to take the lock runs; a
request elsewhere waits on the lock for the result rather than importing the app once
more. Without that directory nothing is run ahead (each worker would import the app at
every save).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .. import logs
from ..digest import sha256_hex
from ..operations import state_dir
from ..watching.changes import Changes, Stat
from .preflight import Failure

# What a request would confirm now: the changed files in their states, and the module
# names they were loaded under. None: nothing a preflight is for (templates alone).
Plan = tuple[Mapping[str, Stat], Sequence[str]]
# Runs the preflight for a plan, its child process started with the given `run`
# (subprocess.run's signature): ahead, one that a later save stops.
Runner = Callable[..., subprocess.CompletedProcess[str]]

ABANDON = 10.0  # s: changes that do not settle in this long are left to the request
POLL = 0.02  # s between looks for a save while the child imports
MAX_BYTES = 256 * 1024  # a record: one failure, its traceback cut at 4,000 characters
MISSING: Final = "missing"  # no result for these states


class Stopped(Exception):
    """A save came while the preflight ran ahead: its result would be for old states."""


def key_of(states: Mapping[str, Stat], names: Sequence[str]) -> str:
    """What a result belongs to: the changed files' states and the module names.

    >>> key_of({"/a.py": (1, 2, 3, 4, ())}, ["a"]) == key_of({"/a.py": (1, 2, 3, 4, ())}, ["a"])
    True
    >>> key_of({"/a.py": (1, 2, 3, 4, ())}, ["a"]) == key_of({"/a.py": (1, 2, 3, 5, ())}, ["a"])
    False
    """
    text = json.dumps([sorted((p, s) for p, s in states.items()), sorted(names)])
    return sha256_hex(text.encode())


def encode(key: str, failure: Failure | None) -> bytes:
    """A record: the key and the result (null: the app loaded)."""
    found = None if failure is None else dataclasses.asdict(failure)
    return json.dumps({"key": key, "failure": found}).encode()


def decode(data: bytes | None, key: str) -> Failure | str | None:
    """The result a record holds for `key`; MISSING for another key or no sound record.

    >>> decode(encode("k", None), "k") is None, decode(encode("k", None), "j")
    (True, 'missing')
    """
    try:
        record = json.loads(data or b"")
        if record["key"] != key:
            return MISSING
        found = record["failure"]
        if found is None:
            return None
        fields = {f.name for f in dataclasses.fields(Failure)}
        failure = Failure(**{k: v for k, v in found.items() if k in fields})
        return dataclasses.replace(failure, files=tuple(map(str, failure.files)))
    except (ValueError, LookupError, TypeError, AttributeError):
        return MISSING


def stoppable(stopped: Callable[[], bool]) -> Runner:
    """subprocess.run for the child of a preflight run ahead: killed, raising Stopped,
    as soon as `stopped()` says a save came."""

    def run(argv: Sequence[str], *, timeout: float, capture_output: bool = True,
            check: bool = False, **options: Any) -> subprocess.CompletedProcess[str]:
        pipe = subprocess.PIPE if capture_output else None
        with subprocess.Popen(argv, stdout=pipe, stderr=pipe, **options) as child:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    out, err = child.communicate(timeout=POLL)
                    return subprocess.CompletedProcess(argv, child.returncode, out, err)
                except subprocess.TimeoutExpired:
                    late = time.monotonic() > deadline
                    if not (late or stopped()):
                        continue
                    child.kill()
                    child.communicate()
                    if late:
                        raise
                    raise Stopped from None

    return run


class Ahead:
    """The preflight of one script run ahead in this process, and its shared results.

    `plan()` says what a request would confirm now (`Tracking.preview`); `run(plan,
    runner)` runs the preflight for it with `runner` for its child process.
    """

    def __init__(self, name: str, state: state_dir.StateDir, changes: Changes,
                 plan: Callable[[], Plan | None],
                 run: Callable[[Plan, Runner], Failure | None],
                 spawn: Callable[[Callable[[], None], str], threading.Thread | None]) -> None:
        self.name = f"preflight-{sha256_hex(name.encode())[:16]}.json"
        self._state, self._changes, self._plan, self._run = state, changes, plan, run
        self._spawn = spawn  # the watcher's: its stop() ends and joins the thread
        self._lock = threading.Lock()
        self._wanted, self._settle = False, 0.05
        self._woken = False
        self._halts = 0  # the latch's halts when woken: watching stopped if they moved
        self._thread: threading.Thread | None = None
        # The files recorded while our own child ran: the app's import may write files
        # that are watched; a change of those alone runs nothing ahead again.
        self._last: Plan | None = None
        self._during: frozenset[str] = frozenset()

    def want(self, wanted: bool, *, settle: float) -> None:
        """Whether the action here is one the import preflight precedes (a restart):
        only then is anything run ahead; changes settle after `settle` seconds."""
        self._wanted, self._settle = wanted, settle

    def wake(self) -> None:
        """A change was recorded (the watcher thread): run ahead once it has settled."""
        if not self._wanted:
            return
        with self._lock:
            self._woken, self._halts = True, self._changes.halts
            if self._thread is not None and self._thread.is_alive():
                return  # it looks again before it ends (a thread of a parent never is)
            self._thread = self._spawn(self._work, "reload-middleware-preflight")

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._woken:
                    self._thread = None
                    return
                self._woken = False
            try:
                self._once()
            except Exception as exc:  # the request runs its own
                logs.error("the preflight ahead of the request failed: %r", exc)

    def _once(self) -> None:
        halts = self._halts
        settled = self._changes.quiet(self._settle, ABANDON, halts)
        plan = self._plan() if settled and self._wanted else None
        if plan is None or self._ours(plan):
            return
        key = key_of(*plan)
        with self._state.opened() as fd:
            if fd is None:
                return
            lock = _lock_file(fd, self.name)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(lock)
                return  # another process runs one now: its requests and ours wait for it
            try:
                if decode(state_dir.read(fd, self.name, MAX_BYTES), key) != MISSING:
                    return  # done already, by another process
                seq, began, saved = self._changes.seq, time.monotonic(), set(plan[0])
                try:  # a changed file saved again stops it; the import's own writes do not
                    failure = self._run(plan, stoppable(
                        lambda: self._changes.halts != halts
                        or bool(self._changes.recorded_since(seq) & saved)))
                except Stopped:
                    return
                self._last, self._during = plan, self._changes.recorded_since(seq)
                logs.info("%s: the app imported ahead of the next request in %.2f s: %s",
                          logs.describe(plan[0]), time.monotonic() - began,
                          "new code loads" if failure is None
                          else f"new code does not load ({failure.summary})")
                with contextlib.suppress(OSError):
                    state_dir.write(fd, self.name, encode(key, failure))
            finally:
                os.close(lock)  # and its lock with it

    def _ours(self, plan: Plan) -> bool:
        """Whether `plan` differs from the last one run only in files recorded while that
        run's child imported the app: most likely written by that import."""
        if self._last is None:
            return False
        before = self._last[0]
        moved = {p for p, s in plan[0].items() if before.get(p) != s}
        return bool(moved) and moved <= self._during

    def check(self, states: Mapping[str, Stat], names: Sequence[str],
              run: Callable[[], Failure | None]) -> Failure | None:
        """On the request that acts: the result for these states, from a run ahead
        (waited for while one is under way), else `run()`, then shared."""
        key = key_of(states, names)
        with self._state.opened() as fd:
            found = MISSING if fd is None else self._wait_for(fd, key)
        if found != MISSING:
            return found if isinstance(found, Failure) else None
        failure = run()
        with self._state.opened() as fd, contextlib.suppress(OSError):
            if fd is not None:
                state_dir.write(fd, self.name, encode(key, failure))
        return failure

    def _wait_for(self, fd: int, key: str) -> Failure | str | None:
        """The shared result for `key`, once no run holds the lock; MISSING if none."""
        try:
            lock = _lock_file(fd, self.name)
        except OSError:
            return MISSING
        try:
            fcntl.flock(lock, fcntl.LOCK_SH)  # a run under way ends within its timeout
            return decode(state_dir.read(fd, self.name, MAX_BYTES), key)
        finally:
            os.close(lock)


def _lock_file(dir_fd: int, name: str) -> int:
    """A descriptor of the lock file beside the record, replacing anything else at its
    name (only the same user or root can put one in the private directory)."""
    return state_dir.own_fd(dir_fd, f"{name}.lock", os.O_RDWR)
