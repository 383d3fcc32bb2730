"""Has anything changed? The latch between the watcher thread and request threads.

The watcher thread only calls `record()`: a set under a lock and a flag. Request
threads read `dirty` with no lock (the hot path), then `settle()`, `take()` and
`finish()`. A path counts only if its (mtime, size, inode) differ from the baseline,
the file as this process loaded it.

>>> changes = Changes()
>>> changes.baseline(["/nonexistent/a.py"])
>>> changes.record("/nonexistent/a.py")
>>> changes.dirty, changes.take().paths
(True, frozenset())
"""

from __future__ import annotations

import os
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

Stat = tuple[int, int, int] | None  # (mtime_ns, size, inode); None: the file is absent
# The baseline of a file written after its module was loaded: it differs from any stat.
STALE: Stat = (-2, -2, -2)


def stat_of(path: str, stat: Callable[[str], os.stat_result] = os.lstat) -> Stat:
    """The part of a file's stat that tells a change, or None when it does not exist.

    A symlink to a directory (a release symlink such as `current`) is known by where it
    points: the target's inode, not its mtime, which moves whenever a file is added.
    """
    return _observe(path, stat)[0]


def _observe(path: str, stat: Callable[[str], os.stat_result]) -> tuple[Stat, tuple[int, ...]]:
    """`stat_of()`, and the file's mtime and ctime (ns; none for a directory link)."""
    try:
        st = stat(path)
        if stat_module.S_ISLNK(st.st_mode):
            st = os.stat(path)
            if stat_module.S_ISDIR(st.st_mode):
                return (0, 0, st.st_ino), ()
    except (FileNotFoundError, NotADirectoryError):
        return None, ()
    except OSError:
        return (-1, -1, -1), ()  # unreadable: still a state, compared like any other
    return (st.st_mtime_ns, st.st_size, st.st_ino), (st.st_mtime_ns, st.st_ctime_ns)


# File times come from a clock that may lag time.time_ns() by a tick (4 ms at 250 Hz).
TICK_NS = 20_000_000


@dataclass(frozen=True)
class Taken:
    """What a request thread took from the latch: confirmed paths and the event count."""

    paths: frozenset[str]
    seq: int
    states: Mapping[str, Stat] = field(default_factory=dict)  # as confirmed, before acting


class Changes:
    """Pending paths, baselines and the `dirty` flag, for one middleware in one process."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[str], os.stat_result] = os.lstat,
    ) -> None:
        self._clock = clock
        self._stat = stat
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._baselines: dict[str, Stat] = {}
        self._seq = 0
        self._recorded: dict[str, int] = {}  # pending path -> seq of its latest event
        self._last_event = -1e9
        # Read by every request with no lock: a plain attribute, set under the lock.
        self.dirty = True

    @property
    def pending(self) -> frozenset[str]:
        """Recorded paths not acted on yet."""
        with self._cond:
            return frozenset(self._pending)

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
        loaded_since: int | None = None,
        record: bool = False,
    ) -> None:
        """Record the current state of paths not known yet (all of them with `refresh`).

        `loaded_since` (ns, wall clock): the files were loaded after that moment, so one
        changed later may have changed after it was read. It gets a STALE baseline and
        counts as a change (`record`: at once): better one reload too many than new code
        never loaded. The ctime tells as well as the mtime: a copy that puts the old
        mtime back (rsync -a, cp -p, tar) still sets it.
        """
        with self._cond:
            todo = [p for p in paths if refresh or p not in self._baselines]
        observed = {p: _observe(p, self._stat) for p in todo}
        states = {p: state for p, (state, _) in observed.items()}
        if loaded_since is not None:
            # A time ahead of the clock (skew, a share) proves nothing: it would restart
            # forever. A file whose times are all in the future counts as unchanged.
            now = time.time_ns()
            for path, (state, times) in observed.items():
                if state and loaded_since < max((t for t in times if t <= now), default=0):
                    states[path] = STALE
        with self._cond:
            for path, state in states.items():
                if refresh:
                    self._baselines[path] = state
                else:
                    self._baselines.setdefault(path, state)
        if record:
            for path in [p for p, state in states.items() if state == STALE]:
                self.record(path)

    def forget(self, paths: Iterable[str]) -> None:
        """Drop baselines (paths no longer tracked)."""
        with self._cond:
            for path in paths:
                self._baselines.pop(path, None)

    def record(self, path: str) -> None:
        """Called from the watcher thread: remember `path` and raise the flag."""
        with self._cond:
            self._pending.add(path)
            self._seq += 1
            self._recorded[path] = self._seq
            self._last_event = self._clock()
            self.dirty = True
            self._cond.notify_all()

    def sweep(self) -> None:
        """Record every known path that differs from its baseline (changes made unwatched)."""
        with self._cond:
            baselines = dict(self._baselines)
        for path, before in baselines.items():
            if stat_of(path, self._stat) != before:
                self.record(path)

    def poke(self) -> None:
        """Raise the flag with no path: the next request looks (new imports, config)."""
        with self._cond:
            self._seq += 1
            self.dirty = True

    def settle(self, quiet: float) -> None:
        """Wait until no event came for `quiet` seconds, at most max(10 x quiet, 1 s)."""
        deadline = self._clock() + max(10 * quiet, 1.0)
        with self._cond:
            while True:
                now = self._clock()
                wait = min(self._last_event + quiet, deadline) - now
                if wait <= 0:
                    return
                self._cond.wait(wait)

    def take(self, ignore: frozenset[str] | set[str] = frozenset()) -> Taken:
        """Confirm the pending paths against their baselines; drop those that did not change.

        Paths in `ignore` (restart storms) are dropped and take their current state as
        baseline, so only a later change counts once they are no longer ignored.
        """
        with self._cond:
            seq, candidates = self._seq, set(self._pending)
        states = {p: stat_of(p, self._stat) for p in candidates}
        with self._cond:
            for path in candidates & ignore:
                self._baselines[path] = states[path]
            confirmed = frozenset(
                p for p, s in states.items() if p not in ignore and s != self._baselines.get(p)
            )
            self._drop(candidates - confirmed, seq)
        return Taken(confirmed, seq, {p: states[p] for p in confirmed})

    @property
    def seq(self) -> int:
        """How many events and pokes so far: tells whether anything came since."""
        return self._seq

    def finish(self, taken: Taken, *, acted: bool, keep_flag: bool = False) -> None:
        """Lower the flag unless an event came meanwhile; `acted`: take new baselines."""
        with self._cond:
            if acted:
                # The files as confirmed before acting: a save made since counts again.
                self._baselines.update(taken.states)
                self._drop(taken.paths, taken.seq)
            if self._seq == taken.seq and not keep_flag:
                self.dirty = False

    def _drop(self, paths: Iterable[str], seq: int) -> None:
        """Under the lock: forget pending paths, except those recorded again after `seq`."""
        for path in paths:
            if self._recorded.get(path, 0) <= seq:
                self._pending.discard(path)
                self._recorded.pop(path, None)
