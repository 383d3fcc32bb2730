"""What do we watch, and has it changed? The one collaborator of the middleware.

A `Tracking` turns settings and sys.modules into a `Registration` for the interpreter's
watcher, keyed by the script, so a script executed again replaces what it had. Its
`Changes` (the latch) is the interpreter's for that script: the baselines stay the
files as this process loaded them. The middleware reads `dirty` on every request and
uses the rest only when it is up.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping

from . import bounds, bursts, control, logs, modules, paths, statedir, watcher
from .bounds import TICK_NS
from .changes import Changes, Stat, Taken
from .config import Settings
from .imports import Inbox
from .interpreter import Interpreter
from .loading import Load
from .reloading import Script
from .storms import StormGuard

# What a control POST is recorded as where no file can carry it to the other processes.
FORCED = "<control POST>"
YOUNG_NS = 2_000_000_000  # a process this young may be the restart of a moment ago


class Tracking:
    """The tracked files of one middleware, their registration and their latch.

    `stand_in`: built by a script that an in-process reload runs again; the live
    middleware unwraps it, so it registers nothing (reloading.py).
    """

    def __init__(self, script: Script | None, place: Interpreter, *, stand_in: bool = False
                 ) -> None:
        self._script = script
        self._key = script.given if script else f"middleware-{id(self)}"
        self.place = place
        self.stand_in = stand_in
        self.changes = Changes() if stand_in else place.latches.setdefault(self._key, Changes())
        self.changes.poke()  # the first request reads its environ
        self._library = modules.library_roots()
        # Project code (README, "Configuration": `modules`): what is tracked, and what an
        # in-process reload drops.
        self.project = modules.ProjectModules(self._library)
        self._links: set[str] = set()  # symlinked directories on the way to modules
        self._files: dict[str, str] = {}  # tracked file -> module name ("" for other files)
        self._seen: set[str] = set()
        self._missing_logged: set[str] = set()
        self._settings = Settings()
        self._forks = place.forks
        # Every file tracked was read after this moment, however late it is learned.
        self._loaded_since = bounds.process_started_ns()
        self._scanned_at = self._loaded_since  # modules seen next were loaded after it
        self.load = Load(self.changes, script, self._loaded_since, inert=stand_in)
        self._imports: Inbox | None = None  # subscribed by update()
        self._started_in = -1
        self._registered: watcher.Registration | None = None  # the latest registration
        self._registered_at = self._built_at = time.time_ns()
        self._watcher = place.watcher
        self.state = statedir.default()
        self.storms = StormGuard(self._key, state=self.state)

    @property
    def started(self) -> int:
        """When this process started loading code (wall-clock ns)."""
        return self._loaded_since

    @property
    def young(self) -> bool:
        """True for a process that started loading code less than `YOUNG_NS` ago."""
        return time.time_ns() - self._loaded_since < YOUNG_NS

    @property
    def forked(self) -> bool:
        """True when this process was forked after the middleware was built."""
        return self.place.forks != self._forks

    # The latch, as the middleware sees it.

    @property
    def dirty(self) -> bool:
        """Up when something may have changed: the one flag every request reads."""
        return self.changes.dirty

    @property
    def pending(self) -> frozenset[str]:
        """Real paths recorded by the watcher and not acted on yet."""
        return self.changes.pending

    def poke(self) -> None:
        self.changes.poke()

    def lower(self) -> None:
        """Lower the flag for good: reloading is off."""
        self.changes.lower()

    def settled(self, quiet: float) -> bool:
        """Whether changes have stopped coming (settle); the log says when a storm holds."""
        holding = self.changes.holding
        if self.changes.settle(quiet, self.storms.ignored):
            return True
        if not holding:
            logs.info("changes keep coming: the current code serves until they stop "
                      "(%g s at most)", bursts.HOLD)
        return False

    def confirm(self, server: str, settings: Settings) -> Taken:
        """The changes that count, after tracking the modules imported since the last look
        (any import after this look keeps the flag up)."""
        self.start(server, settings)  # a root replaced while settling is watched again
        seq = self.changes.seq
        self.refresh()
        return self.changes.take(ignore=self.storms.ignored, since=seq)

    def changed_since(self, events: int) -> bool:
        """Whether a path was recorded since `Taken.events` was `events`."""
        return self.changes.events != events

    def finish(self, taken: Taken, *, keep_flag: bool = False) -> None:
        """Not acted on: the flag goes down unless something came since (or `keep_flag`)."""
        self.changes.finish(taken, acted=False, keep_flag=keep_flag)

    def acted(self, taken: Taken, *, restarting: bool) -> None:
        """Acted on `taken`: tell the storm guard; unless this process is on its way out,
        take the files as confirmed for baselines."""
        self._note_action(taken)
        if not restarting:
            self.changes.finish(taken, acted=True)

    def update(self, settings: Settings) -> None:
        """Track what `settings` ask for (and the modules loaded now); baseline new files.
        The first call installs the interpreter's hooks (reloading is on)."""
        if not self.stand_in and self._imports is None:
            self.place.install()
            self._imports = self.place.imports.subscribe(self._key, self.changes.poke)
        self._settings = settings
        self._seen.clear()
        self._files = {}
        self._links = set()
        if settings.trigger:
            self._files[self._trigger] = ""
        else:
            self.refresh(register=False)
            if self._script and settings.modules != "off":
                script = self._script.path
                self._files.setdefault(script, "")
                self.load.baseline([script], self._loaded_since, load=[script])
            if settings.control and self.stamp is not None:
                self._files.setdefault(self.stamp, "")  # touched by the control endpoint
        self._register()
        self.load.settle_early()

    @property
    def stamp(self) -> str | None:
        """The file whose change reloads every process: the trigger, or a stamp file in
        the private state directory (None where there is none)."""
        if self._settings.trigger:
            return self._trigger
        directory = self.state.path
        return None if directory is None else os.path.join(directory, control.stamp_name(self._key))

    def force(self) -> None:
        """A control POST: touch the file every process watches, or else act here."""
        try:
            if self._settings.trigger:
                statedir.touch_outside(self._trigger)
                return
            with self.state.opened() as fd:
                if fd is not None:
                    statedir.touch(fd, control.stamp_name(self._key))
                    return
        except OSError as exc:
            logs.error("control POST reloads this process only: %s", exc)
        self.changes.invalidate([FORCED])  # no baseline matches: it counts as a change

    @property
    def backends(self) -> list[str]:
        return self._watcher.backends

    def counts(self) -> tuple[int, int]:
        """(files, directories) watched."""
        return len(self.changes.known), len(self._watcher.directories)

    def refresh(self, *, register: bool = True) -> None:
        """Track modules imported since the last look (cheap when there are none).

        Each gets its own bound: the moment the import system looked it up, where the
        finder of imports.py saw it, else the previous look.
        """
        self.storms.release_quiet()
        noted = self._imports.drain() if self._imports else {}
        if self._settings.trigger or self._settings.modules == "off":
            return
        new = {n: m for n, m in list(sys.modules.items()) if n not in self._seen}
        if not new and not noted:
            return
        loaded_since, self._scanned_at = self._scanned_at, time.time_ns() - TICK_NS
        self._seen.update(new)
        scope = self._settings.modules
        if scope == "project":
            found = self.project(new)
        else:
            found = modules.project_modules(new, scope, self._library)
        imported = {n: getattr(new[n], "__file__", None) or "" for n in found}
        fresh: dict[str, str] = {}
        for name, path in found.items():
            if path not in self._files:
                fresh.setdefault(path, name)  # the first name a file was imported under
        since = dict.fromkeys(fresh, loaded_since)
        for path, real in modules.project_files(noted, scope, self._library).items():
            name, at = noted[path]
            if real not in self._files:
                fresh.setdefault(real, name)
                imported[name] = path
                since[real] = min(at, since.get(real, at))
        links = _links(imported[n] for n in fresh.values()) - set(self._files)
        self._links |= links
        fresh.update(dict.fromkeys(links, ""))
        since.update(dict.fromkeys(links, loaded_since))
        if fresh:
            read = {p for p, n in fresh.items() if n and self.load.read(n)}
            self.load.baseline(fresh, since, read)
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
            self._register(loaded=False)  # as they are now: saving the fix is the change

    def start(self, server: str, settings: Settings) -> None:
        """Start watching in this process (lazily, and again after a fork); heal it after."""
        if self._started_in == self.place.forks:
            if self._watcher.heal():
                self.changes.sweep()  # what changed while nothing watched
            return
        self._started_in = self.place.forks
        self._watcher.interval = settings.interval
        registration = self._registered or self._registration()
        self._watcher.register(self._key, registration)
        self._watcher.start()
        self.changes.sweep()  # changes made before the watches were live
        # and files created in a watch directory since it was registered
        created = paths.files_below(registration.dirs, registration.exclude)
        self.changes.baseline(created, loaded_since=self._registered_at)
        files, dirs = self.counts()
        logs.info(
            "watching for code changes: mode %s, server %s, backend %s, %d files, %d directories",
            settings.mode, server, "+".join(self._watcher.backends) or "none", files, dirs,
        )

    def _note_action(self, taken: Taken) -> None:
        """Tell the storm guard what caused an action: never the modules (see storms.py),
        nor the stamp or trigger, which only a control POST or a deploy touches."""
        ours = {self.stamp, FORCED}
        self.changes.forget([FORCED])  # a later POST is a new change
        self.storms.acted({
            path: state[0] / 1e9
            for path, state in taken.states.items()
            if state and not self._files.get(path) and path not in ours
        })

    def rebaseline(
        self,
        loaded_since: int,
        confirmed: Mapping[str, Stat] | None = None,
        kept: Iterable[str] = (),
    ) -> None:
        """After an in-process reload that started at `loaded_since`: files as loaded.

        A file still as it was `confirmed` before the reload began was read as such;
        any other may have changed while the reload read it. The files of modules `kept`
        (another thread was importing them) count as changed: they were not read again.

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
        observed = self.changes.baseline(files, refresh=True)
        confirmed = confirmed or {}
        doubtful = {p: seen for p, seen in observed.items() if confirmed.get(p) != seen[0]}
        self.changes.judge(doubtful, loaded_since)
        kept = set(kept)
        self.changes.invalidate(p for p, name in self._files.items() if name in kept)

    def release(self) -> None:
        """Stop watching and noting imports for this script (reloading switched off)."""
        self._watcher.release(self._key)
        self.place.imports.unsubscribe(self._key)
        self._imports = None

    @property
    def _trigger(self) -> str:
        return paths.resolve([self._settings.trigger or ""], self._base)[0]

    @property
    def _base(self) -> str:
        return self._script.directory if self._script else os.getcwd()

    def _watch_paths(self) -> tuple[str, ...]:
        """The watch paths, resolved, and the symlinks on the way to them."""
        if self._settings.trigger:
            return ()
        tracked = self.place.tracked
        given = [os.path.join(self._base, p) for p in [*self._settings.watch, *tracked]]
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

    def _register(self, *, loaded: bool = True) -> None:
        """Register what is tracked now; new files other than modules get a baseline.

        `loaded`: they count as the middleware was built, however late they are learned
        (watch paths from the environ): one newer than that changed since. The app may
        write such files itself as it loads, so the load is not their bound (README,
        "How it works"). Otherwise (files named by a failed import) as they are now.
        """
        if self.stand_in:
            return
        self._registered_at = time.time_ns()
        registration = self._registered = self._registration()
        below = paths.files_below(registration.dirs, registration.exclude)
        files = [*registration.files, *below]
        self.changes.baseline(files, loaded_since=self._built_at if loaded else None)
        self._watcher.register(self._key, registration)

    def watch_more(self) -> None:
        """Register the `track()` paths added since, keeping everything else as it is."""
        self._register()


def _links(files: Iterable[str]) -> set[str]:
    """Symlinked directories on the way to these module files, as they were imported.

    A deploy that swaps `current -> releases/2` for `current -> releases/3` changes no
    file of the old release: the link itself is the change.
    """
    dirs = {os.path.abspath(modules.split(f)[0]) for f in files if f}
    looked: dict[str, bool] = {}  # directories share their parents: each looked at once

    def islink(path: str) -> bool:
        if path not in looked:
            looked[path] = os.path.islink(path)
        return looked[path]

    return {link for d in dirs for link in paths.symlinks(d + os.sep, islink)}

