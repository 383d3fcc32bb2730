"""Which files does one middleware track, and since when? Modules, watch paths, the
script, each baselined by its bound (docs/promise.md).

`Files` turns settings and sys.modules into a `Registration` for the interpreter's
watcher, keyed by the script, so a script executed again replaces what it had::

    files = Files(script, key, changes, load, place, ignored=storms.ignored)
    files.update(settings, stamp=None)     # and files.refresh() on each look
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping

from .. import logs
from ..config import Settings
from ..integrations import templates
from ..interpreter import Interpreter
from ..script import Script
from . import import_finder, paths, project_modules, trust, watcher
from .changes import Changes
from .file_state import Stat
from .read_times import TICK_NS
from .script_load import Load
from .unloaded_files import Strays


class Files:
    """The tracked files of one middleware and their registration with the watcher."""

    def __init__(self, script: Script | None, key: str, changes: Changes, load: Load,
                 place: Interpreter, *, loaded_since: int, ignored: set[str],
                 registering: bool = True, built_at: int | None = None) -> None:
        self._script = script
        self._key = key
        self._changes = changes
        self._load = load
        self._place = place
        self._ignored = ignored  # the storm guard's, read by the watcher thread
        self._registering = registering  # False for a stand-in
        self._library = project_modules.library_roots()
        # Project code (docs/configuration.md, `modules`): what is tracked, and what an
        # in-process reload drops.
        self.project = project_modules.ProjectModules(self._library)
        self._links: set[str] = set()  # symlinked directories on the way to modules
        self._files: dict[str, str] = {}  # tracked file -> module name ("" for other files)
        self._seen: set[str] = set()
        self._missing_logged: set[str] = set()
        self._settings = Settings()
        self._stamp: str | None = None
        self._trigger: trust.Trigger | None = None  # set by update() when there is one
        # Every file tracked was read after this moment, however late it is learned.
        self._loaded_since = loaded_since
        self._scanned_at = loaded_since  # modules seen next were loaded after it
        self._registered: watcher.Registration | None = None  # the latest registration
        # When the middleware was built: the bound of files learned later (_register).
        self.registered_at = self._built_at = time.time_ns() if built_at is None else built_at
        self.templates = templates.Found()  # template directories, set by the middleware
        self.strays = Strays(told=place.told)  # saved .py files no module was loaded from

    def is_module(self, path: str) -> bool:
        return bool(self._files.get(path))

    @property
    def library(self) -> tuple[str, ...]:
        """The roots of installed code (stdlib, site-packages)."""
        return self._library

    def names(self, files: Iterable[str]) -> list[str]:
        """The module names these tracked files were loaded under (the preflight imports
        those importable by name: entry.after)."""
        return sorted({self._files.get(f, "") for f in files} - {""})

    def report_strays(self) -> None:
        """Log the saved project files that no module was loaded from and do not compile."""
        self.strays.report(self._files)

    @property
    def registration(self) -> watcher.Registration:
        return self._registered or self._registration()

    def update(self, settings: Settings, stamp: str | None) -> None:
        """Track what `settings` ask for (and the modules loaded now, the control
        endpoint's `stamp`); baseline new files."""
        self._settings, self._stamp = settings, stamp
        self._seen.clear()
        self._files = {}
        self._links = set()
        self._trigger = None
        if settings.trigger:
            trusted = trust.accounts(os.geteuid(), trust.code_owner(
                self._script.path if self._script else None))
            self._trigger = trust.Trigger(self.trigger, trusted, self._place.told)
            self._files[self.trigger] = ""
        else:
            self.refresh(noted={}, register=False)
            if self._script and settings.modules != "off":
                script = self._script.path
                self._files.setdefault(script, "")
                self._load.baseline([script], self._loaded_since, load=[script])
            if settings.control and stamp is not None:
                self._files.setdefault(stamp, "")  # touched by the control endpoint
        self._register()
        self._load.settle_early()

    def refresh(self, noted: import_finder.Loaded, *, register: bool = True) -> None:
        """Track modules imported since the last look (cheap when there are none).

        Each gets its own bound: the moment the import system looked it up, where the
        finder of import_finder.py saw it, else the previous look.
        """
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
            found = project_modules.project_modules(new, scope, self._library)
        imported = {n: getattr(new[n], "__file__", None) or "" for n in found}
        fresh: dict[str, str] = {}
        for name, path in found.items():
            if path not in self._files:
                fresh.setdefault(path, name)  # the first name a file was imported under
        since = dict.fromkeys(fresh, loaded_since)
        # A file tracked as a module's already is its own real path: an in-process reload
        # notes every module again, and only the new ones need classifying.
        unknown = {path: v for path, v in noted.items() if not self._files.get(path)}
        for path, real in project_modules.project_files(unknown, scope, self._library).items():
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
            read = {p for p, n in fresh.items() if n and self._load.read(n)}
            self._load.baseline(fresh, since, read)
            # A module whose file is gone at its first look is served from a file that
            # is no more (deleted or moved away since its import): not what is there.
            self._changes.invalidate(self._changes.absent(p for p, n in fresh.items() if n))
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

    def rebaseline(
        self,
        noted: import_finder.Loaded,
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
        pending = self._changes.pending
        if pending & self._links:
            self.project.forget()
            before = set(self._files)
            self.update(self._settings, self._stamp)
            self._changes.forget(before - set(self._files))
        else:
            self.refresh(noted)
        native = self._place.watcher.backends == ["native"]
        files = pending if native else self._files
        observed = self._changes.baseline(files, refresh=True)
        confirmed = confirmed or {}
        doubtful = {p: seen for p, seen in observed.items() if confirmed.get(p) != seen[0]}
        self._changes.judge(doubtful, loaded_since)
        kept = set(kept)
        self._changes.invalidate(p for p, name in self._files.items() if name in kept)

    @property
    def trigger(self) -> str:
        """The trigger's path as configured, made absolute and never resolved: a link at
        its name is a link, neither followed by a touch nor counted (trust.py)."""
        return paths.trigger_path(self._settings.trigger or "", self.base)

    @property
    def trusted(self) -> frozenset[int]:
        """The accounts whose trigger counts (the server's and root where none is set)."""
        return self._trigger.trusted if self._trigger else trust.accounts(os.geteuid(), None)

    def counts(self, path: str, state: Stat) -> bool:
        """Whether a confirmed change of `path`, now in `state`, may cause an action: any
        file but a trigger that `trust.Trigger.looked()` refuses (judged by its own lstat:
        `state` follows a link to a file)."""
        return self._trigger is None or path != self._trigger.path or self._trigger.looked()

    def exposures(self) -> list[trust.Exposed]:
        """The trigger, or else the watch paths, that other accounts can write beside."""
        if self._trigger is not None:
            return trust.exposures(self._trigger.path, (), self._trigger.trusted)
        given = [os.path.join(self.base, p) for p in [*self._settings.watch,
                                                        *self._place.tracked]]
        owner = trust.code_owner(self._script.path if self._script else None)
        return trust.exposures(None, paths.resolve(given, self.base),
                               trust.accounts(os.geteuid(), owner))

    @property
    def base(self) -> str:
        """The directory relative paths of the options are read against."""
        return self._script.directory if self._script else os.getcwd()

    def _watch_paths(self) -> tuple[str, ...]:
        """The watch paths, resolved, and the symlinks on the way to them."""
        if self._settings.trigger:
            return ()
        tracked = self._place.tracked
        given = [os.path.join(self.base, p) for p in [*self._settings.watch, *tracked]]
        given += self.templates.dirs  # absolute already
        links = {link for p in given for link in paths.symlinks(p)}
        return paths.resolve(given, self.base) + tuple(sorted(links))

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
        packages = self._package_roots()
        roots = packages + [(d, True) for d in dirs]
        roots += [(os.path.dirname(f), False) for f, name in self._files.items() if not name]
        roots += [(os.path.dirname(f), False) for f in files.difference(self._files)]
        return watcher.Registration(
            self._changes, frozenset(files), dirs,
            paths.DEFAULT_EXCLUDES + self._settings.exclude,
            paths.merge_roots(roots), polling=self._settings.observer == "polling",
            ignored=self._ignored, strays=self.strays, packages=paths.merge_roots(packages),
            trigger=self._trigger,
        )

    def _package_roots(self) -> list[tuple[str, bool]]:
        """Where a saved `.py` file no module was loaded from is compiled (unloaded_files.py):
        the package roots of the modules the app loaded, each package's top directory with
        everything below it, and the directory of a top-level module (or of a script the
        server loaded as one) alone. Never the trigger's directory, a watch path, a
        template directory or another tracked file's directory: anyone may create names
        there (a shared temp directory), and a file nothing imports from there is none
        the app can load."""
        return paths.module_roots({path: name for path, name in self._files.items() if name})

    def _register(self, *, loaded: bool = True) -> None:
        """Register what is tracked now; new files other than modules get a baseline.

        `loaded`: they count as the middleware was built, however late they are learned
        (watch paths from the environ): one newer than that changed since. The app may
        write such files itself as it loads, so the load is not their bound (docs/promise.md,
        the bounds). Otherwise (files named by a failed import) as they are now.
        """
        if not self._registering:
            return
        self.registered_at = time.time_ns()
        registration = self._registered = self._registration()
        below = paths.files_below(registration.dirs, registration.exclude)
        files = [*registration.files, *below]
        self._changes.baseline(files, loaded_since=self._built_at if loaded else None)
        self._place.watcher.register(self._key, registration)

    def watch_more(self) -> None:
        """Register the `track()` paths added since, keeping everything else as it is."""
        self._register()


def _links(files: Iterable[str]) -> set[str]:
    """Symlinked directories on the way to these module files, as they were imported.

    A deploy that swaps `current -> releases/2` for `current -> releases/3` changes no
    file of the old release: the link itself is the change.
    """
    # Thousands of modules share a few directories: each is made absolute once.
    dirs = {os.path.abspath(d) for d in {project_modules.split(f)[0] for f in files if f}}
    looked: dict[str, bool] = {}  # directories share their parents: each looked at once

    def islink(path: str) -> bool:
        if path not in looked:
            looked[path] = os.path.islink(path)
        return looked[path]

    return {link for d in dirs for link in paths.symlinks(d + os.sep, islink)}

