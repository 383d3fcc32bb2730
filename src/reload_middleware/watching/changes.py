"""Has anything changed? The latch between the watcher thread and request threads.

The watcher thread only calls `record()`: a set under a lock and a flag. Request
threads read `dirty` with no lock (the hot path), then `settle()`, `take()` and
`finish()`. A path counts only if it `differs()` from its baseline, the file as this
process loaded it.

>>> changes = Changes()
>>> changes.baseline(["/nonexistent/a.py"])
{'/nonexistent/a.py': (None, ())}
>>> changes.record("/nonexistent/a.py")
>>> changes.dirty, changes.take().paths
(True, frozenset())
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .. import logs
from . import open_writers, read_times, settling
from .file_state import (
    STALE,
    UNREADABLE,
    Observed,
    Stat,
    differs,
    metadata_only,
    newest,
    observe,
    stat_of,
)

__all__ = ["ATTRIB", "STALE", "UNKNOWN", "UNREADABLE", "WRITE", "WRITTEN", "Changes", "Observed",
           "Stat", "Taken", "differs", "stat_of"]

# What an event says of its file's content (`record()`, observers.kind):
# - WRITE: written to: open until its close-after-write;
# - WRITTEN: closed after writing, moved into place or deleted: no writer left;
# - ATTRIB: metadata alone (chmod, chown, a link, touch's times): the content is as it was,
#   which is how a chmod that changes nothing is told from a rewrite in place;
# - UNKNOWN: the content may have changed, and nothing is known of a writer (a backend
#   without close events, a directory's event, a look of the safety net).
WRITE, WRITTEN, ATTRIB, UNKNOWN = "write", "written", "attrib", ""

@dataclass(frozen=True)
class Taken:
    """What a request thread took from the latch: confirmed paths and the event count."""

    paths: frozenset[str]
    seq: int
    states: Mapping[str, Stat] = field(default_factory=dict)  # as confirmed, before acting
    events: int = 0  # `Changes.events` when confirmed: a later event is a later change

    def saved_at(self, now: int) -> int:
        """When the change was made, as the files' times tell (wall clock ns)."""
        return newest(self.states.values(), now)


class Changes:
    """Pending paths, baselines and the `dirty` flag, for one middleware in one process."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[str], os.stat_result] = os.lstat,
        holding: Callable[[Iterable[str]], set[str]] = open_writers.holding,
        *,
        told: logs.Once | None = None,
    ) -> None:
        self._clock = clock
        self._stat = stat
        self._holding = holding  # which files are open for writing by some process?
        # The doubts about file times said once (read_times.py): the interpreter's, so each is
        # said once however many scripts track the file; a latch of its own by default.
        self.told = logs.Once() if told is None else told
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._baselines: dict[str, Stat] = {}
        self._seq = 0
        self._events = 0  # records alone, not pokes: "has anything changed since?"
        self._recorded: dict[str, int] = {}  # pending path -> seq of its latest event
        self._last_event = -1e9  # the latest event of a path not written nonstop
        self._last_any = -1e9
        self._burst: float | None = None  # when the events of a held burst began
        self._burst_events: dict[str, int] = {}  # path -> events since the tree was quiet
        self.holding = False  # changes keep coming: actions wait for them to stop
        self._doubt = ""  # the events may have missed a change: look at every file
        self._writing: dict[str, float] = {}  # file open for writing -> its first write
        self._written: set[str] = set()  # pending paths whose content may have changed
        self._told_open: set[str] = set()
        self._listeners: list[Callable[[], None]] = []  # told of each record, off the lock
        self.halts = 0  # how often watching stopped: a look ahead under way ends (quiet())
        # Read by every request with no lock: a plain attribute, set under the lock.
        self.dirty = True

    @property
    def pending(self) -> frozenset[str]:
        """Recorded paths not acted on yet."""
        with self._cond:
            return frozenset(self._pending)

    @property
    def baselines(self) -> dict[str, Stat]:
        """A copy of every baseline (browser.py reads the code's version from it)."""
        with self._cond:
            return dict(self._baselines)

    @property
    def known(self) -> frozenset[str]:
        """Every path with a baseline."""
        with self._cond:
            return frozenset(self._baselines)

    def baseline(
        self,
        paths: Iterable[str],
        *,
        refresh: bool = False,
        loaded_since: int | Mapping[str, int] | None = None,
    ) -> Observed:
        """Take the current state of paths not known yet (all of them with `refresh`).

        `loaded_since` (wall-clock ns, one for all or one per path): the files were read
        after that moment; `judge()` is applied with it. Returns what was observed, so
        that a caller who learns a tighter bound later can judge then instead.
        """
        with self._cond:
            todo = [p for p in paths if refresh or p not in self._baselines]
        observed = {p: observe(p, self._stat) for p in todo}
        with self._cond:
            for path, (state, _) in observed.items():
                if refresh:
                    self._baselines[path] = state
                else:
                    self._baselines.setdefault(path, state)
        if loaded_since is not None:
            self.judge(observed, loaded_since)
        return observed

    def judge(self, observed: Observed, loaded_since: int | Mapping[str, int]) -> None:
        """Count as changed each observed file that may have changed after it was read.

        Such a file gets a STALE baseline and is recorded at once: better one action too
        many than old code kept (read_times.py says how the times are read).
        """
        stale = []
        for path, (state, times) in observed.items():
            bound = loaded_since if isinstance(loaded_since, int) else loaded_since[path]
            if state and read_times.later_than(path, times, bound, state[1], told=self.told):
                stale.append(path)
        with self._cond:  # a baseline replaced since was taken later: it stands
            stale = [p for p in stale if self._baselines.get(p) == observed[p][0]]
        self.invalidate(stale)

    def absent(self, paths: Iterable[str]) -> list[str]:
        """Those of `paths` whose baseline says they do not exist."""
        with self._cond:
            return [p for p in paths if p in self._baselines and self._baselines[p] is None]

    def invalidate(self, paths: Iterable[str]) -> None:
        """Count these paths as changed: what this process loaded of them is not known."""
        paths = list(paths)
        with self._cond:
            for path in paths:
                self._baselines[path] = STALE
        for path in paths:
            self.record(path)

    def forget(self, paths: Iterable[str]) -> None:
        """Drop baselines (paths no longer tracked)."""
        with self._cond:
            for path in paths:
                self._baselines.pop(path, None)

    def record(self, path: str, kind: str = UNKNOWN) -> None:
        """Called from the watcher thread: remember `path` and raise the flag. `kind`:
        what the event says of the file's content and writer (see WRITE above)."""
        with self._cond:
            self._pending.add(path)
            self._seq += 1
            self._events += 1
            self._recorded[path] = self._seq
            now = self._clock()
            if kind != ATTRIB:
                self._written.add(path)
            if kind == WRITE:
                self._writing.setdefault(path, now)
            elif kind == WRITTEN:
                self._writing.pop(path, None)
                self._told_open.discard(path)
            if now - self._last_any >= settling.CALM:
                self._burst_events = {}  # a pause ends a burst, requests or not
            self._last_any = now
            count = self._burst_events[path] = self._burst_events.get(path, 0) + 1
            if count <= settling.BUSY_PATH:
                self._last_event = now
            self.dirty = True
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def listen(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each `record()`, in the recording thread (once each)."""
        with self._cond:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def quiet(self, quiet: float, abandon: float, halts: int) -> bool:
        """Wait until no event came for `quiet` seconds and no pending file is open for
        writing: True then. False when that takes `abandon` seconds or more
        (a storm, a writer that does not close: the request settles those, `settle`),
        or when watching stopped since `halts` was read (`halt`).
        Changes nothing: another thread may look ahead of the requests with it."""
        with self._cond:
            deadline = self._clock() + abandon
            while self.halts == halts:
                now = self._clock()
                writers = [t + settling.CLOSE_WAIT - now for p, t in self._writing.items()
                           if p in self._pending]
                if writers and min(writers) <= 0:
                    return False  # open past its bound: the request says so and acts
                wait = max(self._last_event + quiet - now, *writers, 0.0)
                if wait == 0:
                    return True
                if now + wait > deadline:
                    return False
                self._cond.wait(wait)
            return False

    def halt(self) -> None:
        """Watching stopped: a `quiet()` under way returns False at once."""
        with self._cond:
            self.halts += 1
            self._cond.notify_all()

    def peek(self, ignore: frozenset[str] | set[str] = frozenset(), *,
             counts: Callable[[str, Stat], bool] | None = None) -> dict[str, Stat]:
        """What `take()` would confirm now, with the states it would confirm them in;
        takes nothing and changes no baseline."""
        with self._cond:
            candidates = set(self._pending) - set(ignore)
        states = {p: stat_of(p, self._stat) for p in candidates}
        if counts is not None:
            states = {p: s for p, s in states.items() if counts(p, s)}
        with self._cond:
            return {p: s for p, s in states.items()
                    if self._changed(p, self._baselines.get(p), s)}

    def sweep(self) -> list[str]:
        """Record every known path not pending that differs from its baseline (changes
        made unwatched, or whose events were lost); returns them."""
        with self._cond:  # pending paths are confirmed by take(), with their events
            baselines = {p: s for p, s in self._baselines.items() if p not in self._pending}
        found = {}
        for path, before in baselines.items():
            state, times = observe(path, self._stat)
            if differs(before, state):
                found[path] = times
        # No event told of them: a writer may still be at work (its write came before
        # the watch), and then its close is waited for as after a write.
        held = self._holding(found)
        for path in found:
            self.record(path, WRITE if path in held else UNKNOWN)
        self._began_writing({p: found[p] for p in held})
        return list(found)

    def held_open(self, paths: Iterable[str]) -> None:
        """Record those of `paths` that a process holds open for writing now, as writes
        under way (a file this process loaded while it was being written: its close is
        the change, and no request should be served before it)."""
        held = self._holding(paths)
        for path in held:
            self.record(path, WRITE)
        self._began_writing({p: observe(p, self._stat)[1] for p in held})

    def _began_writing(self, times: Mapping[str, tuple[int, ...]]) -> None:
        """Date the writes under way that no event told of by the files' own times, so
        that their close is waited for CLOSE_WAIT at most from their last write."""
        wall, now = time.time_ns(), self._clock()
        with self._cond:
            for path, seen in times.items():
                age = max(0.0, (wall - max(seen, default=wall)) / read_times.SECOND)
                if path in self._writing:
                    self._writing[path] = min(self._writing[path], now - age)

    def doubt(self, *, lost: bool = False) -> None:
        """The events may have missed a change (the safety net's period is up), or did
        (`lost`): raise the flag, and the next request looks at every file (`doubted()`)."""
        with self._cond:
            self._doubt = "lost" if lost or self._doubt == "lost" else "period"
            self._seq += 1
            self.dirty = True

    @property
    def doubting(self) -> bool:
        """Lost events were reported and no request has looked yet."""
        return self._doubt == "lost"

    def doubted(self) -> str:
        """Why a doubt was raised since the last call: "lost", "period", or ""."""
        with self._cond:
            doubt, self._doubt = self._doubt, ""
            return doubt

    def poke(self) -> None:
        """Raise the flag with no path: the next request looks (new imports, config)."""
        with self._cond:
            self._seq += 1
            self.dirty = True

    def lower(self) -> None:
        """Lower the flag for good (reloading switched off): nothing will look again."""
        with self._cond:
            self.dirty = False

    def settle(self, quiet: float, ignore: frozenset[str] | set[str] = frozenset()) -> bool:
        """Wait until no event came for `quiet` seconds, at most max(10 x quiet, 1 s).

        True: quiet, act now. False: a storm (settling.py) is going on: hold the action
        and serve the current code; later calls return at once until it has been calm
        for `CALM` seconds. A storm that lasts `HOLD` seconds is acted on all the same.
        The files' own times count as events: a watcher that started after the storm
        did has not heard its earlier writes.
        """
        times = [] if self.holding else self._change_times(ignore)
        wall = time.time_ns()
        with self._cond:
            now = self._clock()
            if times:
                self._last_event = max(self._last_event, now - (wall - max(times)) / 1e9)
            if self.holding or settling.storming(times, wall):
                self.holding = True
                quiet = max(quiet, settling.CALM)
            deadline = now + (0 if self.holding else max(10 * quiet, 1.0))
            while True:
                while (wait := min(self._last_event + quiet, deadline) - now) > 0:
                    self._cond.wait(wait)
                    now = self._clock()
                if now - self._last_event < quiet or not self._await_writers():
                    break
                now = self._clock()  # a writer closed: its last writes must settle too
                deadline = now + max(10 * quiet, 1.0)
            if now - self._last_event >= quiet:
                self.holding, self._burst, self._burst_events = False, None, {}
                return True
            self.holding = True
            burst = self._burst = self._burst if self._burst is not None else now
            if now - burst < settling.HOLD:
                return False
            self._burst = now  # acted on: the next hold starts from here
            return True

    def _await_writers(self) -> bool:
        """Under the lock: wait for the pending files open for writing to be closed, each
        `CLOSE_WAIT` at most from its first write. True if one closed meanwhile; files
        still open at their bound are said once and taken as they are."""
        waited = False
        while opened := {p: t for p, t in self._writing.items() if p in self._pending}:
            wait = max(opened.values()) + settling.CLOSE_WAIT - self._clock()
            if wait <= 0:
                for path in sorted(opened.keys() - self._told_open):
                    logs.error("%s was still open for writing %g s after its first write: "
                               "acting on it as it is", path, settling.CLOSE_WAIT)
                self._told_open.update(opened)
                return False
            self._cond.wait(wait)
            waited = True
        return waited

    def _change_times(self, ignore: frozenset[str] | set[str]) -> list[int]:
        """When the files changed (wall-clock ns): the pending files as they are now, and
        the others as their baselines say, leaving out files written nonstop."""
        with self._cond:
            pending = [p for p in self._pending - ignore
                       if self._burst_events.get(p, 0) <= settling.BUSY_PATH]
            known = [t for p, s in self._baselines.items()
                     if s is not None and s[0] > 0 and p not in ignore for t in (s[0], s[3])]
        now = time.time_ns()  # a time ahead of it is no change going on (bounds.reached)
        return [t for t in known if t <= now] + [
            t for p in pending
            for t in read_times.reached(p, observe(p, self._stat)[1], now, self.told)]

    def take(
        self, ignore: frozenset[str] | set[str] = frozenset(), *, since: int | None = None,
        counts: Callable[[str, Stat], bool] | None = None,
    ) -> Taken:
        """Confirm the pending paths against their baselines; drop those that did not change.

        Paths in `ignore` (restart storms) are dropped and take their current state as
        baseline, so only a later change counts once they are no longer ignored; so do
        paths whose metadata alone moved, so a later ctime is compared with the new one,
        and changed paths that `counts` refuses as they are now (a trigger of another
        account: trust.py), so that only a later change of an accepted file counts.
        `since`: a `seq` read before the caller looked for new files, so whatever came
        after that look keeps the flag up.
        """
        with self._cond:
            seq, candidates = self._seq if since is None else since, set(self._pending)
        states = {p: stat_of(p, self._stat) for p in candidates}
        refused = set() if counts is None else {p for p, s in states.items() if not counts(p, s)}
        ignore = set(ignore) | refused
        with self._cond:
            confirmed = frozenset(
                p for p, s in states.items()
                if p not in ignore and self._changed(p, self._baselines.get(p), s)
            )
            for path in candidates - confirmed:
                if path in ignore or self._baselines.get(path) not in (None, STALE):
                    self._baselines[path] = states[path]
            self._drop(candidates - confirmed, seq)
            events = self._events
        return Taken(confirmed, seq, {p: states[p] for p in confirmed}, events)

    def recorded_since(self, seq: int) -> frozenset[str]:
        """The pending paths with an event after `seq` (read from `seq` before)."""
        with self._cond:
            return frozenset(p for p, n in self._recorded.items() if n > seq)

    @property
    def seq(self) -> int:
        """How many events and pokes so far: tells whether anything came since."""
        return self._seq

    @property
    def events(self) -> int:
        """How many paths were recorded so far (pokes for new imports do not count)."""
        return self._events

    def finish(self, taken: Taken, *, acted: bool, keep_flag: bool = False) -> None:
        """Lower the flag unless an event came meanwhile; `acted`: take new baselines."""
        with self._cond:
            if acted:
                # The files as confirmed before acting: a save made since counts again;
                # a file found doubtful while acting stays so.
                self._baselines.update(
                    (p, s) for p, s in taken.states.items() if self._baselines.get(p) != STALE
                )
                self._drop(taken.paths, taken.seq)
            if self._seq == taken.seq and not keep_flag:
                self.dirty = False

    def _changed(self, path: str, before: Stat, after: Stat) -> bool:
        """Under the lock: `differs()`, where a ctime that moved alone counts only if an
        event may have written the content (a chmod that changes nothing is reported as
        an attribute event alone; a rewrite in place, by writes)."""
        if metadata_only(before, after):
            return path in self._written
        return differs(before, after)

    def _drop(self, paths: Iterable[str], seq: int) -> None:
        """Under the lock: forget pending paths, except those recorded again after `seq`."""
        for path in paths:
            if self._recorded.get(path, 0) <= seq:
                self._pending.discard(path)
                self._recorded.pop(path, None)
                self._written.discard(path)
