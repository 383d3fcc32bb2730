"""Restart storms: a file the app itself writes while serving would restart it forever.

The sign of it: the file changes again within `quick` seconds after every action, as
when the restarted app writes its log or database on its first request. A person
saving a template does not come back that fast every time. Actions are noted in a
small record that survives restarts (a JSON file in the private state directory, one
per script, see statedir.py; in memory where there is none); a path with `limit` such
actions in a row is reported once and ignored until it has been quiet for `quiet`
seconds. Python modules are never treated as storms: an app does not rewrite its own
code while serving; nor are the control stamp and the trigger, touched on purpose.

>>> guard = StormGuard("/srv/app/app.wsgi")                     # doctest: +SKIP
>>> guard.acted({"/srv/app/data/app.log": 1700000000.2})  # path -> mtime  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping

from . import logs, statedir

Record = dict[str, tuple[float, int]]  # path -> (time of its last action, quick returns)
MAX_BYTES = 256 * 1024  # far above any real record: paths within `quiet` seconds
MAX_STREAK = 1_000_000
SKEW = 5.0  # seconds: a record written "later than now" by this clock is no record of ours

ADVICE = (
    "%s changed again right after each of the last %d actions: the application itself "
    "seems to write it. Exclude it (exclude='%s'); it is ignored until it stops changing"
)


class StormGuard:
    """Counts, per path and across restarts, the actions it caused right after another."""

    def __init__(
        self,
        key: str,
        *,
        limit: int = 5,
        quick: float = 2.0,
        quiet: float = 60.0,
        state: statedir.StateDir | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.name = f"storms-{digest}.json"
        self._state = state or statedir.default()
        self._memory: Record = {}  # the record itself where no directory is usable
        self._limit, self._quick, self._quiet, self._clock = limit, quick, quiet, clock
        # Read by the watcher thread (membership only), changed by request threads.
        self.ignored: set[str] = set()

    def acted(self, changed: Mapping[str, float]) -> None:
        """Note an action caused by `changed` ({path: its mtime}); ignore storming paths."""
        now = self._clock()
        record = self._load()
        for path, mtime in changed.items():
            last, streak = record.get(path, (-1e18, 0))
            streak = streak + 1 if mtime - last < self._quick else 0
            record[path] = (now, streak)
            if streak >= self._limit and path not in self.ignored:
                self.ignored.add(path)
                logs.error(ADVICE, path, streak, os.path.basename(path))
        self._save({p: v for p, v in record.items() if now - v[0] < self._quiet})

    def release_quiet(self, stat: Callable[[str], os.stat_result] = os.stat) -> set[str]:
        """Stop ignoring paths untouched for `quiet` seconds; returns them."""
        quiet = set()
        for path in list(self.ignored):
            try:
                age = self._clock() - stat(path).st_mtime
            except OSError:
                age = self._quiet
            if age >= self._quiet:
                quiet.add(path)
        self.ignored -= quiet
        return quiet

    def _load(self) -> Record:
        """The record: from the private directory, else this process's memory."""
        with self._state.opened() as fd:
            if fd is None:
                return dict(self._memory)
            data = statedir.read(fd, self.name, MAX_BYTES)
        if data is None:
            return {}
        try:
            return valid(json.loads(data), self._clock() + SKEW)
        except (ValueError, TypeError, AttributeError) as exc:
            logs.error("storm record %s discarded: %s", self.name, exc)
            return {}

    def _save(self, record: Record) -> None:
        """Replace the record; one that cannot be written only weakens the guard."""
        self._memory = record
        with self._state.opened() as fd, contextlib.suppress(OSError):
            if fd is not None:
                statedir.write(fd, self.name, json.dumps(record).encode())


def valid(data: object, latest: float) -> Record:
    """A record read back, checked: ValueError (or TypeError) for anything else.

    >>> valid({"/a": [1.5, 2]}, 10.0)
    {'/a': (1.5, 2)}
    >>> valid({"/a": [1e18, 100]}, 10.0)
    Traceback (most recent call last):
    ...
    ValueError: /a: time 1e+18 out of bounds
    """
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    record: Record = {}
    for path, entry in data.items():
        when, streak = entry  # TypeError or ValueError unless a pair
        if type(when) not in (int, float) or not 0 <= when <= latest or not math.isfinite(when):
            raise ValueError(f"{path}: time {when!r} out of bounds")
        if type(streak) is not int or not 0 <= streak <= MAX_STREAK:
            raise ValueError(f"{path}: count {streak!r} out of bounds")
        record[path] = (float(when), streak)
    return record
