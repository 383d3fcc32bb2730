"""Which events are ours? One middleware's registration with the process watcher.

A `Registration` is plain data plus `route()`, which the observer thread calls for
every counted event: it only decides and records, in `Changes`, under its lock.

>>> reg = Registration(Changes(), files=frozenset({"/srv/app/views.py"}))
>>> reg.route("/srv/app/views.py", is_directory=False)
>>> reg.changes.dirty
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import paths
from .changes import UNKNOWN, Changes
from .trust import Trigger
from .unloaded_files import Strays


@dataclass
class Registration:
    """What one middleware tracks: exact files, and directories in which any file counts."""

    changes: Changes
    files: frozenset[str] = frozenset()
    dirs: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    roots: dict[str, bool] = field(default_factory=dict)
    packages: dict[str, bool] = field(default_factory=dict)  # where strays are noted
    polling: bool = False
    ignored: set[str] = field(default_factory=set)  # restart storms, see storm_guard.py
    strays: Strays | None = None  # Python files saved that no module was loaded from
    trigger: Trigger | None = None  # whose trigger counts (trust.py)

    def route(self, path: str, is_directory: bool, kind: str = UNKNOWN) -> None:
        """Record `path` (or, for a directory, the known files below it) if it is ours;
        `kind`: what the event says of its content (observers.kind)."""
        if path in self.ignored:
            return
        if self.trigger is not None and path == self.trigger.path and not self.trigger.looked():
            return  # another account's trigger, a link, a removal: no event (trust.py)
        if path in self.files:
            if not paths.excluded(path, self.exclude, within=os.path.dirname(path)):
                self.changes.record(path, kind)  # a tracked file, or a new watch path
        elif not is_directory and any(
            paths.under(path, [d]) and not paths.excluded(path, self.exclude, within=d)
            for d in self.dirs
        ):
            self.changes.record(path, kind)
        elif (self.strays and not is_directory
              and self.strays.note(path, self.packages, self.exclude)):
            self.changes.poke()  # not a change: the next request compiles it (unloaded_files.py)
        if is_directory:
            for known in self.changes.known:
                if paths.under(known, [path]) and known != path:
                    self.changes.record(known)
