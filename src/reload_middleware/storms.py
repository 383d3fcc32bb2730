"""Restart storms: a file the app itself writes while serving would restart it forever.

The sign of it: the file changes again within `quick` seconds after every action, as
when the restarted app writes its log or database on its first request. A person
saving a template does not come back that fast every time. Actions are noted in a
small record that survives restarts (a JSON file in the temp directory, one per
script and user); a path with `limit` such actions in a row is reported once and
ignored until it has been quiet for `quiet` seconds. Python modules are never
treated as storms: an app does not rewrite its own code while serving.

>>> guard = StormGuard("/srv/app/app.wsgi")                     # doctest: +SKIP
>>> guard.acted({"/srv/app/data/app.log": 1700000000.2})        # path -> its mtime
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping

from . import logs

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
        directory: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        digest = hashlib.sha256(f"{os.getuid()}:{key}".encode()).hexdigest()[:16]
        self._file = os.path.join(
            directory or tempfile.gettempdir(), f"reload-middleware-storms-{digest}.json"
        )
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

    def _load(self) -> dict[str, tuple[float, int]]:
        """{path: (time of its last action, how many quick returns in a row)}."""
        try:
            with open(self._file) as source:
                data = json.load(source)
            return {str(p): (float(v[0]), int(v[1])) for p, v in data.items()}
        except (OSError, ValueError, TypeError, LookupError, AttributeError):
            return {}

    def _save(self, record: dict[str, tuple[float, int]]) -> None:
        """Write atomically; a record that cannot be written only weakens the guard."""
        with contextlib.suppress(OSError):
            fd, temp = tempfile.mkstemp(dir=os.path.dirname(self._file), prefix=".storms-")
            with os.fdopen(fd, "w") as target:
                json.dump(record, target)
            os.replace(temp, self._file)
