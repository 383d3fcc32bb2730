"""Has anything changed, and is it time to act? The one collaborator of the middleware.

A `Tracking` holds the latch (`Changes`, the interpreter's for this script, so a script
executed again keeps the baselines of the files as this process loaded them), the
tracked files (`Files`), the watcher's start and healing, the control stamp and the
storm guard. The middleware reads the latch's `dirty` flag on every request; when it is
up, a request that may act asks one question and tells what became of the answer:

    change = tracking.next_change(server, settings, after=None, keep_flag=False)
    if change is not None:
        ...  # preflight, then restart or reload
        tracking.outcome(change, RESTARTING)  # or a reloading.Reloaded, or Kept(files)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Literal

from . import logs
from .acting.reexecute import Reloaded
from .acting.storm_guard import StormGuard
from .config import Settings
from .integrations import static_files, templates
from .interpreter import Interpreter
from .operations import control, state_dir
from .script import Script
from .watching import import_finder, paths, read_times, settling, trust
from .watching.changes import Changes, Stat, Taken
from .watching.import_finder import Inbox
from .watching.script_load import Load
from .watching.tracked_files import Files

# What a control POST is recorded as where no file can carry it to the other processes.
FORCED = "<control POST>"
YOUNG_NS = 2_000_000_000  # a process this young may be the restart of a moment ago


@dataclass(frozen=True)
class Change:
    """A change that counts, settled: what `Tracking.next_change()` answers. `names`:
    the module names its files were loaded under (the import preflight and an
    in-process reload import those: entry.after)."""

    taken: Taken
    names: list[str]

    @property
    def paths(self) -> frozenset[str]:
        return self.taken.paths

    def saved_at(self, now: int) -> int:
        """When it was made, as the files' times tell (wall clock ns)."""
        return self.taken.saved_at(now)


@dataclass(frozen=True)
class Kept:
    """The old code serves on: the new did not load. `files`: those its error named,
    tracked from now on, so that saving the fix retries."""

    files: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reset:
    """Only templates, translation catalogs or static files changed, and the caches of
    the first two were emptied at `started` (templates.reset): no restart, no reload."""

    started: int


# What became of a change: this process restarts, reloaded in-process, reset its
# template caches, or kept the old code.
RESTARTING: Final = "restarting"
Outcome = Literal["restarting"] | Reloaded | Reset | Kept


class Tracking:
    """The tracked files of one middleware, their registration and their latch.

    `stand_in`: built by a script that an in-process reload runs again; the live
    middleware unwraps it, so it registers nothing (reexecute.py).
    """

    def __init__(self, script: Script | None, place: Interpreter, *, stand_in: bool = False
                 ) -> None:
        # The script has loaded: the end of its import, taken first. A file learned later
        # (a watch path) counts as changed when it is newer than this; anything done
        # before this line (the state directory's checks take milliseconds) would widen
        # the window in which a save after the app read the file goes unseen.
        self._built = time.time_ns()
        self.key = script.given if script else f"middleware-{id(self)}"
        self.place = place
        self.stand_in = stand_in
        latch = Changes(told=place.told)  # each doubt said once in the interpreter
        self.changes = latch if stand_in else place.latches.setdefault(self.key, latch)
        self.changes.poke()  # the first request reads its environ
        self._settings = Settings()
        self._forks = place.forks
        self._loaded_since = read_times.process_started_ns()
        self.load = Load(self.changes, script, self._loaded_since, inert=stand_in)
        self._imports: Inbox | None = None  # subscribed by update()
        self._started_in = -1
        self.state = place.state_directory()
        self.storms = StormGuard(self.key, state=self.state)
        self.files = Files(script, self.key, self.changes, self.load, place,
                           loaded_since=self._loaded_since, built_at=self._built,
                           ignored=self.storms.ignored, registering=not stand_in)
        self.project = self.files.project

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
    def pending(self) -> frozenset[str]:
        """Real paths recorded by the watcher and not acted on yet."""
        return self.changes.pending

    def poke(self) -> None:
        self.changes.poke()

    def lower(self) -> None:
        """Lower the flag for good: reloading is off."""
        self.changes.lower()

    @property
    def ignored(self) -> AbstractSet[str]:
        """The files the storm guard ignores for now (the app seems to write them): the
        guard's own set, which changes as it learns, not a copy."""
        return self.storms.ignored

    def judge_load(self, environ: Mapping[str, Any] | None, lock: AbstractContextManager[Any],
                   wait: float) -> None:
        """Before acting: judge what the script's load read (script_load.py), once."""
        self.load.judge_at(environ, lock, wait)

    def next_change(self, server: str, settings: Settings, *, after: int | None,
                    keep_flag: bool) -> Change | None:
        """The one question of a request that may act: what changed that counts, once
        changes have settled? None: nothing to act on now (still coming, nothing new
        since the failure at event count `after`, or nothing that counts: the flag then
        goes down, unless `keep_flag`)."""
        if after is not None and self.changes.events == after:
            return None  # nothing changed since the last failed attempt (imports do not count)
        if not self._settled(settings.settle):
            return None
        taken = self._confirm(server, settings)
        if not taken.paths:
            self.changes.finish(taken, acted=False, keep_flag=keep_flag)
            return None
        return Change(taken, self.files.names(taken.paths))

    def outcome(self, change: Change, result: Outcome, *, keep_flag: bool = False) -> None:
        """Told once what became of `change`. Acted on: the storm guard hears of it and,
        unless this process is on its way out, the files are taken as confirmed (after
        an in-process reload, as that reload read them). Kept: the change stays pending,
        retried at the next change; the flag goes down unless `keep_flag`."""
        if isinstance(result, Kept):
            self.files.add(result.files)
            self.changes.finish(change.taken, acted=False, keep_flag=keep_flag)
            return
        since = None if result == RESTARTING else result.started
        self._note_action(change.taken, since)
        if isinstance(result, Reloaded | Reset):
            kept = result.kept if isinstance(result, Reloaded) else set()
            self.files.rebaseline(self._noted(), result.started, change.taken.states, kept)
            self.changes.finish(change.taken, acted=True)

    def resettable(self, changed: AbstractSet[str]) -> bool:
        """Whether every file `changed` is a template or catalog that templates.reset()
        makes its engine read again, or a static file: no restart, no reload
        (docs/templates.md)."""
        dirs = self.files.templates.resettable
        ours = {self.stamp, FORCED}
        return bool(dirs) and all(
            path not in ours and not self.files.is_module(path) and paths.under(path, dirs)
            for path in changed)

    def preview(self) -> tuple[dict[str, Stat], list[str]] | None:
        """What the next request would confirm now, taking nothing (acting/ahead.py): the
        changed files in their states and their module names; None when nothing changed
        or only templates, catalogs or static files did."""
        states = self.changes.peek(set(self.storms.ignored), counts=self.files.counts)
        if not states or self.resettable(states.keys()):
            return None
        return states, self.files.names(states)

    def _settled(self, quiet: float) -> bool:
        """Whether changes have stopped coming (settle); the log says when a storm holds."""
        holding = self.changes.holding
        if self.changes.settle(quiet, self.storms.ignored):
            return True
        if not holding:
            logs.info("changes keep coming: the current code serves until they stop "
                      "(%g s at most)", settling.HOLD)
        return False

    def _confirm(self, server: str, settings: Settings) -> Taken:
        """The changes that count, after tracking the modules imported since the last look
        (any import after this look keeps the flag up)."""
        self.start(server, settings)  # a root replaced while settling is watched again
        seq = self.changes.seq
        self.refresh()
        return self.changes.take(ignore=self.storms.ignored, since=seq, counts=self.files.counts)

    def update(self, settings: Settings, app: object = None) -> None:
        """Track what `settings` ask for (the modules loaded now, the template directories
        of the frameworks serving `app`); baseline new files. The first call installs the
        interpreter's hooks (reloading is on)."""
        self.files.templates = self._templates(settings, app)
        if not self.stand_in and self._imports is None:
            self.place.install()
            self._imports = self.place.imports.subscribe(self.key, self.changes.poke)
        self._settings = settings
        self.files.update(settings, self.stamp)

    def templates_moved(self, settings: Settings, app: object) -> bool:
        """Whether the template directories to watch are others now (Django's app
        registry may be ready only at the first request)."""
        return self._templates(settings, app).dirs != self.files.templates.dirs

    def _templates(self, settings: Settings, app: object) -> templates.Found:
        """The template, translation and static directories to watch (docs/templates.md,
        docs/live-reload.md)."""
        static = [os.path.join(self.files.base, d) for d in settings.static]
        return templates.watched(settings.templates, app, self.files.library,
                                 live=settings.live, static=static)

    def stylesheet(self, path: str) -> bool:
        """Whether `path` is a stylesheet among the static files (live reload swaps it)."""
        return static_files.stylesheet(path) and paths.under(path, self.files.templates.static)

    def refresh(self) -> None:
        """Track the modules imported since the last look (cheap when there are none)."""
        self.storms.release_quiet()
        self.storms.recall()  # a storm found by another process, or before a restart
        self.files.refresh(self._noted())

    def watch_more(self) -> None:
        """Register the `track()` paths added since, keeping everything else as it is."""
        self.files.watch_more()

    def _noted(self) -> import_finder.Loaded:
        return self._imports.drain() if self._imports else {}

    @property
    def stamp(self) -> str | None:
        """The file whose change reloads every process: the trigger, or a stamp file in
        the private state directory (None where there is none)."""
        if self._settings.trigger:
            return self.files.trigger
        directory = self.state.path
        return None if directory is None else os.path.join(directory, control.stamp_name(self.key))

    def force(self) -> None:
        """A control POST: touch the file every process watches, or else act here."""
        try:
            if self._settings.trigger:
                state_dir.touch_outside(self.files.trigger, self.files.trusted)
                return
            with self.state.opened() as fd:
                if fd is not None:
                    state_dir.touch(fd, control.stamp_name(self.key))
                    return
        except OSError as exc:
            logs.error("control POST reloads this process only: %s", exc)
        self.changes.invalidate([FORCED])  # no baseline matches: it counts as a change

    def report(self) -> dict[str, object]:
        """For the control endpoint's status: what is watched, how, and what is pending
        or ignored for now (the app itself seems to write those files)."""
        return {
            "backend": self.place.watcher.backends, "files": len(self.changes.known),
            "directories": len(self.place.watcher.directories),
            "pending": sorted(self.changes.pending), "ignored": sorted(self.storms.ignored),
            "templates": list(self.files.templates.dirs),
        }

    def start(self, server: str, settings: Settings) -> None:
        """Start watching in this process (lazily, and again after a fork); heal it after.
        Then log the saved project files that nothing imported and that do not compile,
        before a request imports them (Django's views)."""
        if self._started_in != self.place.forks:
            self._begin(server, settings)
        elif (healed := self.place.watcher.heal()) | bool(why := self.changes.doubted()):
            self._look(lost=healed or why == "lost")
        self.files.report_strays()

    def _look(self, *, lost: bool) -> None:
        """The safety net's look (safety_net.py), after lost events or a healed watch: every
        tracked file against its baseline, and the files new in the watch directories.
        Whatever it finds, no event had told of: it is named in the log (a report of
        lost events may come only after the look, as after a stopped process)."""
        registration = self.files.registration
        known = self.changes.known | self.changes.pending
        created = [p for p in paths.files_below(registration.dirs, registration.exclude)
                   if p not in known]
        for path in created:
            self.changes.record(path)  # no baseline: it appeared
        self.place.watcher.net.looked()
        if found := self.changes.sweep() + created:
            logs.error("%s changed and no file event told of it (%s): found by the "
                       "safety net", logs.describe(found),
                       "events lost" if lost else "events lost, late or missed")

    def _begin(self, server: str, settings: Settings) -> None:
        self._started_in = self.place.forks
        self.place.watcher.interval = settings.interval
        registration = self.files.registration
        self.place.watcher.register(self.key, registration)
        self.place.watcher.start()
        self.changes.sweep()  # changes made before the watches were live
        # and modules loaded while a writer was at work: the process read them half done
        self.changes.held_open(p for p in self.changes.known if self.files.is_module(p))
        # and files created in a watch directory since it was registered
        created = paths.files_below(registration.dirs, registration.exclude)
        self.changes.baseline(created, loaded_since=self.files.registered_at)
        self.files.strays.sweep(registration.packages, registration.exclude, self._loaded_since,
                                self.changes.known)
        files, dirs = len(self.changes.known), len(self.place.watcher.directories)
        logs.info(
            "watching for code changes: mode %s, server %s, backend %s, %d files, %d directories"
            ", templates %s",
            settings.mode, server, "+".join(self.place.watcher.backends) or "none", files, dirs,
            self.files.templates.describe(),
        )
        self._warn_exposed()

    def _warn_exposed(self) -> None:
        """Say once, as watching begins, which trigger or watch path other accounts can
        write beside (trust.py): the risk, and the fix."""
        for found in self.files.exposures():
            if self.place.told.first(("exposed", found.path, found.why)):
                logs.error("%s; %s", found.describe(), trust.FIX)

    def loading(self, began: int, *, first: bool, reloaded: int | None
                ) -> Callable[[], None] | None:
        """For a request that began at `began` (wall-clock ns) and loaded code: this
        process's first (`first`), or one that reloaded in-process at `reloaded`. What to
        call when it is done: the storm guard looks at what changed while the code
        loaded (storm_guard.py); None for any other request."""
        spans = [(self._loaded_since, self._built), (began, None)] if first else []
        spans += [] if reloaded is None else [(reloaded, None)]
        if not spans:
            return None
        return lambda: self.storms.loaded(
            [(start / 1e9, (end or time.time_ns()) / 1e9) for start, end in spans])

    def _note_action(self, taken: Taken, since: int | None = None) -> None:
        """Tell the storm guard what caused an action: never the modules (see storm_guard.py),
        nor the stamp or trigger, which only a control POST or a deploy touches."""
        ours = {self.stamp, FORCED}
        self.changes.forget([FORCED])  # a later POST is a new change
        self.storms.acted({
            path: state
            for path, state in taken.states.items()
            if state and not self.files.is_module(path) and path not in ours
        }, since=None if since is None else since / 1e9, templates=self.files.templates.dirs)

    def release(self) -> None:
        """Stop watching and noting imports for this script (reloading switched off)."""
        self.place.watcher.release(self.key)
        self.place.imports.unsubscribe(self.key)
        self._imports = None

