"""What one Python interpreter shares between its middlewares, in one object.

mod_wsgi gives each application group an interpreter of its own (unless the group is
`%{GLOBAL}`), so "per process" is really per interpreter: two groups in one daemon
mean two `Interpreter`s and two watchers (docs/how-it-works.md, "Several
applications in one process"). Nothing is made or installed when the package is
imported: the object is made on first use, and `install()` (the first enabled
middleware) puts the import finder on `sys.meta_path` and hooks forks.

>>> here = current()
>>> here is current(), here.forks
(True, 0)
>>> reset() is current()
True
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from . import logs
from .live.beacons import Beacons
from .operations import state_dir
from .watching.changes import Changes
from .watching.import_finder import Recorder
from .watching.watcher import Watcher


class Interpreter:
    """The watcher, the latches by script, the fork generation, the live middlewares,
    the `track()` paths and the scripts being re-executed, of this interpreter; and
    what it remembers besides: what its log said once, its state directory, its live
    reload beacons. The package's modules keep nothing but constants, so a new
    `Interpreter` (`reset()`) remembers nothing from before, as a new process."""

    def __init__(self) -> None:
        self.watcher = Watcher()  # no thread until a request starts it
        self.imports = Recorder()  # on sys.meta_path while a middleware listens
        # By script: an execution of the same script again (mod_wsgi's own reload of it)
        # keeps the baselines, which are the files as this process loaded them.
        self.latches: dict[str, Changes] = {}
        self.forks = 0  # how many forks this process is from the one that installed
        self.middlewares: weakref.WeakSet[Any] = weakref.WeakSet()  # for track()
        self.tracked: dict[str, None] = {}  # track() paths, once each, in order
        self._reexecuting: set[str] = set()  # their middlewares are stand-ins
        # Doubts about file times (read_times.py) and unreadable sources (preflight.py): every
        # request would say them again, so they are said once per interpreter.
        self.told = logs.Once()
        self.beacons = Beacons()  # live reload's, released when mod_wsgi stops the process
        # By list of candidates: every middleware shares the choice (state_dir.py).
        self._state_dirs: dict[tuple[str, ...], state_dir.StateDir] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        """Hook forks (once per process: `os.register_at_fork` cannot be undone)."""
        global _HOOKED
        with _LOCK:
            if not _HOOKED:
                os.register_at_fork(after_in_child=_after_fork)
                _HOOKED = True

    def track(self, paths: list[str]) -> bool:
        """Add `track()` paths; False when all of them were there already."""
        with self._lock:
            new = [p for p in paths if p not in self.tracked]
            self.tracked.update(dict.fromkeys(new))
        return bool(new)

    def state_directory(self) -> state_dir.StateDir:
        """This user's private state directory, one object per list of candidates: it
        chooses once, and says a skipped or lost candidate once, for every middleware."""
        paths = state_dir.user_candidates()
        with self._lock:
            return self._state_dirs.setdefault(paths, state_dir.StateDir(paths))

    def reexecuting(self, script: str) -> bool:
        """True while `script` is being executed again by an in-process reload."""
        with self._lock:
            return script in self._reexecuting

    def mark(self, script: str, on: bool) -> None:
        with self._lock:
            (self._reexecuting.add if on else self._reexecuting.discard)(script)

    def after_fork(self) -> None:
        """In the child: a new fork generation; the watcher's threads stayed behind."""
        self.forks += 1
        self.watcher.forget_threads()


# The one place for mutable state: which state is current, and whether this process
# registered its fork hook, which `reset()` must not forget (it cannot be undone).
_CURRENT: Interpreter | None = None
_HOOKED = False
_LOCK = threading.Lock()


def current() -> Interpreter:
    """This interpreter's shared state, made on first use."""
    global _CURRENT
    with _LOCK:
        if _CURRENT is None:
            _CURRENT = Interpreter()
        return _CURRENT


def reset() -> Interpreter:
    """A new state, as a new process has it (tests); the old watcher is the caller's."""
    global _CURRENT
    with _LOCK:
        _CURRENT = Interpreter()
        return _CURRENT


def _after_fork() -> None:
    # The one dispatcher registered: it asks whichever state is current.
    if _CURRENT is not None:
        _CURRENT.after_fork()
