"""What do we watch? One middleware's files, directories and watch roots, kept registered.

A `Tracking` turns settings and sys.modules into a `Registration` for the process
watcher, keyed by the script, so a script executed again replaces what it had. Its
`Changes` is shared with that next execution: the baselines stay the files as this
process loaded them.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import ClassVar

from . import control, logs, modules, paths, watcher
from .changes import TICK_NS, Changes, Taken
from .config import Settings
from .reloading import Script
from .storms import StormGuard

_SHARED: dict[str, Changes] = {}
_FORKS = [0]


class Tracking:
    """The tracked files of one middleware and their registration with the watcher."""

    extra: ClassVar[list[str]] = []  # paths given to track(), for every middleware

    def __init__(self, script: Script | None, *, inert: bool = False) -> None:
        self._script = script
        self._key = script.path if script else f"middleware-{id(self)}"
        self._inert = inert
        self.changes = Changes() if inert else _SHARED.setdefault(self._key, Changes())
        self.changes.poke()
        self._library = modules.library_roots()
        # Project code (SPEC section 1): what is tracked, and what an in-process reload drops.
        self.project = modules.ProjectModules(self._library)
        self._links: set[str] = set()  # symlinked directories on the way to modules
        self._files: dict[str, str] = {}  # tracked file -> module name ("" for other files)
        self._seen: set[str] = set()
        self._missing_logged: set[str] = set()
        self._settings = Settings()
        self._forks = _FORKS[0]
        self._scanned_at = process_started_ns()  # modules seen next were loaded after it
        self._started_in = -1
        self._registered: watcher.Registration | None = None  # the latest registration
        self._registered_at = time.time_ns()
        self._watcher = watcher.process_watcher()
        self.storms = StormGuard(self._key)

    @property
    def forked(self) -> bool:
        """True when this process was forked after the middleware was built."""
        return _FORKS[0] != self._forks

    def update(self, settings: Settings) -> None:
        """Track what `settings` ask for (and the modules loaded now); baseline new files."""
        self._settings = settings
        self._seen.clear()
        self._files = {}
        self._links = set()
        if settings.trigger:
            self._files[self.stamp] = ""
        else:
            self.refresh(register=False)
            if self._script and settings.modules != "off":
                self._files.setdefault(self._script.path, "")
            if settings.control:
                self._files.setdefault(self.stamp, "")  # touched by the control endpoint
        self._register()

    @property
    def stamp(self) -> str:
        """The file whose change reloads every process: the trigger, or a stamp file."""
        if self._settings.trigger:
            return paths.resolve([self._settings.trigger], self._base)[0]
        return control.stamp_file(self._key)

    @property
    def backends(self) -> list[str]:
        return self._watcher.backends

    def counts(self) -> tuple[int, int]:
        """(files, directories) watched."""
        return len(self.changes.known), len(self._watcher.directories)

    def refresh(self, *, register: bool = True) -> None:
        """Track modules imported since the last look (cheap when there are none)."""
        self.storms.release_quiet()
        if self._settings.trigger or self._settings.modules == "off":
            return
        new = {n: m for n, m in list(sys.modules.items()) if n not in self._seen}
        if not new:
            return
        # File times may lag the clock by a tick: earlier is the safe side of a bound.
        loaded_since, self._scanned_at = self._scanned_at, time.time_ns() - TICK_NS
        self._seen.update(new)
        if self._settings.modules == "project":
            found = self.project(new)
        else:
            found = modules.project_modules(new, self._settings.modules, self._library)
        fresh: dict[str, str] = {}
        for name, path in found.items():
            if path not in self._files:
                fresh.setdefault(path, name)
        links = _links([new[n] for n in fresh.values()]) - set(self._files)
        self._links |= links
        fresh.update(dict.fromkeys(links, ""))
        if fresh:
            self.changes.baseline(fresh, loaded_since=loaded_since, record=True)
            self._files.update(fresh)
            if register:
                self._register()

    def add(self, files: Iterable[str]) -> None:
        """Track more files (those named by a failed import, so saving the fix retries)."""
        real = (os.path.realpath(f) for f in files)
        fresh = [f for f in real if not paths.under(f, self._library)]
        if any(f not in self._files for f in fresh):
            for path in fresh:
                self._files.setdefault(path, "")
            self._register()

    def start(self, server: str, settings: Settings) -> None:
        """Start watching in this process (lazily, and again after a fork); heal it after."""
        if self._started_in == _FORKS[0]:
            if self._watcher.heal():
                self.changes.sweep()  # what changed while nothing watched
            return
        self._started_in = _FORKS[0]
        self._watcher.interval = settings.interval
        registration = self._registered or self._registration()
        self._watcher.register(self._key, registration)
        self._watcher.start()
        self.changes.sweep()  # changes made before the watches were live
        # and files created in a watch directory since it was registered
        created = paths.files_below(registration.dirs, registration.exclude)
        self.changes.baseline(created, loaded_since=self._registered_at, record=True)
        files, dirs = self.counts()
        logs.info(
            "watching for code changes: mode %s, server %s, backend %s, %d files, %d directories",
            settings.mode, server, "+".join(self._watcher.backends) or "none", files, dirs,
        )

    def noted(self, taken: Taken) -> None:
        """Tell the storm guard what caused an action (never the modules: see storms.py)."""
        self.storms.acted({
            path: state[0] / 1e9
            for path, state in taken.states.items()
            if state and not self._files.get(path)
        })

    def rebaseline(self, loaded_since: int) -> None:
        """After an in-process reload that started at `loaded_since`: files as loaded.

        Modules loaded again under names already seen keep their files: only names
        new to this process are looked at (a pass over every module costs more than
        the reload itself in a large app), unless a symlink on the way to them was
        swapped (a release deploy), when every module is looked at again. Only files
        with an event pending need a new baseline: any other file is as its baseline
        says, or its event would be there. Polling sees a change up to an interval late,
        so there every file is looked at. An event that comes late anyway costs one
        reload too many, never a change missed.
        """
        loaded_since -= TICK_NS  # see refresh()
        self._scanned_at = loaded_since
        pending = self.changes.pending
        if pending & self._links:
            self.project.forget()
            before = set(self._files)
            self.update(self._settings)
            self.changes.forget(before - set(self._files))
        else:
            self.refresh()
        files = pending if self.backends == ["native"] else self._files
        self.changes.baseline(files, refresh=True, loaded_since=loaded_since)

    def release(self) -> None:
        self._watcher.release(self._key)

    @property
    def _base(self) -> str:
        return self._script.directory if self._script else os.getcwd()

    def _watch_paths(self) -> tuple[str, ...]:
        """The watch paths, resolved, and the symlinks on the way to them."""
        if self._settings.trigger:
            return ()
        given = [os.path.join(self._base, p) for p in [*self._settings.watch, *self.extra]]
        links = {link for p in given for link in paths.symlinks(p)}
        return paths.resolve(given, self._base) + tuple(sorted(links))

    def _registration(self) -> watcher.Registration:
        watched = self._watch_paths()
        missing = [p for p in watched if not os.path.lexists(p)]
        for path in set(missing) - self._missing_logged:
            logs.error("watch path %s does not exist (yet); its creation will be seen", path)
        self._missing_logged.update(missing)
        # A path that does not exist yet may become a file or a directory: both count.
        dirs = tuple(p for p in watched if os.path.isdir(p) and not os.path.islink(p))
        dirs += tuple(missing)
        files = set(self._files) | {p for p in watched if p not in dirs or p in missing}
        roots = paths.module_roots(self._files) + [(d, True) for d in dirs]
        roots += [(os.path.dirname(f), False) for f in files.difference(self._files)]
        return watcher.Registration(
            self.changes, frozenset(files), dirs,
            paths.DEFAULT_EXCLUDES + self._settings.exclude,
            paths.merge_roots(roots), polling=self._settings.observer == "polling",
            ignored=self.storms.ignored,
        )

    def _register(self) -> None:
        if self._inert:
            return
        self._registered_at = time.time_ns()
        registration = self._registered = self._registration()
        self.changes.baseline(registration.files)
        self.changes.baseline(paths.files_below(registration.dirs, registration.exclude))
        self._watcher.register(self._key, registration)

    @classmethod
    def track_everywhere(cls, more: Sequence[str]) -> None:
        cls.extra.extend(os.path.abspath(p) for p in more)


def _links(loaded: Iterable[ModuleType]) -> set[str]:
    """Symlinked directories on the way to these modules' files, as they were imported.

    A deploy that swaps `current -> releases/2` for `current -> releases/3` changes no
    file of the old release: the link itself is the change.
    """
    files = (getattr(m, "__file__", None) for m in loaded)
    dirs = {os.path.abspath(d) for d in {modules.split(f)[0] for f in files if isinstance(f, str)}}
    looked: dict[str, bool] = {}  # directories share their parents: each looked at once

    def islink(path: str) -> bool:
        if path not in looked:
            looked[path] = os.path.islink(path)
        return looked[path]

    return {link for d in dirs for link in paths.symlinks(d + os.sep, islink)}


class _ImportNotifier(importlib.abc.MetaPathFinder):
    """Raises every middleware's flag on an import, so the next request tracks new modules."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        for changes in list(_SHARED.values()):
            changes.poke()
        return None


def process_started_ns(loaded: Mapping[str, object] = sys.modules) -> int:
    """When this process started loading code, wall clock (ns): a lower bound.

    uWSGI re-executes its master in place on a graceful reload (same pid, same start
    time), so there the bound is the later of the process start and `started_on`, the
    re-exec's whole second rounded down. Never this module's import: the application
    imports its own modules before it builds the middleware.
    """
    started = _IMPORTED_NS
    try:
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        # Both clocks count from boot: exact to a clock tick (btime is whole seconds).
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        started = min(started, time.time_ns() - int(age * 1_000_000_000))
    except (OSError, ValueError, IndexError, AttributeError):
        pass  # not Linux: the best earlier moment known
    started_on = getattr(loaded.get("uwsgi"), "started_on", None)
    if isinstance(started_on, int):
        started = min(max(started, started_on * 1_000_000_000), _IMPORTED_NS)
    return started


_IMPORTED_NS = time.time_ns()


def _after_fork() -> None:
    _FORKS[0] += 1


_NOTIFIER_LOCK = threading.Lock()
with _NOTIFIER_LOCK:
    if not any(type(f).__name__ == "_ImportNotifier" for f in sys.meta_path):
        sys.meta_path.insert(0, _ImportNotifier())
os.register_at_fork(after_in_child=_after_fork)
