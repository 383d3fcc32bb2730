"""How do events arrive? Observers scheduled on the tracked roots, one set per interpreter.

One `Watcher` per interpreter (interpreter.py), shared by every middleware. Each
middleware registers what it tracks under a key (its script), so a re-executed script
replaces its old registration instead of adding to it. The observer threads only call
`Changes.record()`; everything else happens on requests.

>>> from reload_middleware.watching.changes import Changes                # doctest: +SKIP
>>> changes = Changes()                                         # doctest: +SKIP
>>> files = frozenset({"/srv/app/views.py"})                    # doctest: +SKIP
>>> watched = Registration(changes, files, roots={"/srv/app": False})  # doctest: +SKIP
>>> watcher = Watcher()                                         # doctest: +SKIP
>>> watcher.register("/srv/app/app.wsgi", watched)              # doctest: +SKIP
>>> watcher.start()                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from watchdog.events import (
    EventsLostEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from .. import logs
from . import observers, paths, safety_net
from .changes import UNKNOWN, WRITTEN
from .registration import Registration as Registration

Factory = Callable[[], BaseObserver]


@dataclass(frozen=True)
class _Scheduled:
    recursive: bool
    requested: str  # the backend asked for
    backend: str  # the backend that serves it (polling when native failed)
    watch: ObservedWatch


class _Handler(FileSystemEventHandler):
    """Routes counted events with what each says of its file (observers.kind); `closes`:
    the backend reports closes after writing."""

    def __init__(self, route: Callable[[str, bool, str], None],
                 lost: Callable[[str], None], *, closes: bool) -> None:
        self._route = route
        self._lost = lost
        self._closes = closes

    def dispatch(self, event: FileSystemEvent) -> None:
        if type(event) is EventsLostEvent:
            self._lost(os.fsdecode(event.src_path))
            return
        if type(event) not in observers.COUNTED:
            return
        self._route(os.fsdecode(event.src_path), event.is_directory,
                    observers.kind(event, closes=self._closes))
        if event.dest_path:  # moved into place: complete
            self._route(os.fsdecode(event.dest_path), event.is_directory,
                        WRITTEN if self._closes else UNKNOWN)


class Watcher:
    """The process's observers: native first, polling where native cannot serve."""

    def __init__(
        self,
        native: Factory = Observer,
        polling: Callable[[float], BaseObserver] = lambda interval: PollingObserver(
            timeout=interval
        ),
        interval: float = 1.0,
        mounts: Callable[[], str] = lambda: observers.read("/proc/self/mounts"),
    ) -> None:
        self._mounts = mounts
        self._native_factory = native
        self._polling_factory = polling
        self.interval = interval
        self._lock = threading.RLock()
        self._registrations: dict[str, Registration] = {}
        self._observers: dict[str, BaseObserver] = {}
        self._scheduled: dict[str, _Scheduled] = {}
        self._handlers = {
            "native": _Handler(self._route, self._events_lost,
                               closes=observers.native_backend() == "InotifyObserver"),
            "polling": _Handler(self._route, self._events_lost, closes=False),
        }
        self.net = safety_net.Net(self._doubt)
        self._helpers: set[threading.Thread] = set()  # threads that look ahead: spawn()
        self.started = False
        # Roots whose watch died with them (deleted, replaced by a git checkout or a deploy)
        # or that are about to exist. Its own lock: the observer thread adds to it.
        self._lost: set[str] = set()
        self._lost_lock = threading.Lock()
        self._missing: dict[str, str] = {}  # wanted root that does not exist -> watched parent

    def register(self, key: str, registration: Registration) -> None:
        """Add or replace what `key` tracks; applies at once when started."""
        with self._lock:
            self._registrations[key] = registration
            if self.started:
                self._reschedule()

    def release(self, key: str) -> None:
        """Forget `key`: its watches go unless another registration needs them."""
        with self._lock:
            if self._registrations.pop(key, None) is None or not self.started:
                return
            if self._registrations:
                self._reschedule()
                return
        self.stop()  # nothing left to watch: no threads, no inotify instance

    def start(self) -> None:
        """Schedule every root and start the observers (idempotent)."""
        with self._lock:
            if not self.started:
                self.started = True
                self._reschedule()
                self.net.start()

    def stop(self) -> None:
        """Stop and join every observer thread, and the threads spawned to look ahead."""
        with self._lock:
            observers, self._observers = list(self._observers.values()), {}
            self._scheduled.clear()
            self._missing.clear()
            self.started = False
            helpers, self._helpers = list(self._helpers), set()
            for registration in self._registrations.values():
                registration.changes.halt()
        self.net.stop()
        for observer in observers:
            observer.stop()
            observer.join()
        for helper in helpers:
            helper.join()

    def spawn(self, target: Callable[[], None], name: str) -> threading.Thread | None:
        """Start a daemon thread that ends by itself, joined by `stop()`, which halts the
        latches it waits on (acting/ahead.py); None while stopped (events that come as
        the observers stop start nothing)."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            if not self.started:
                return None
            self._helpers = {t for t in self._helpers if t.is_alive()} | {thread}
            thread.start()
        return thread

    def forget_threads(self) -> None:
        """After a fork: the threads stayed in the parent; start afresh on next use."""
        with self._lock:
            self._observers, self._scheduled, self.started = {}, {}, False
            self._missing.clear()
            self.net.forget()
            for registration in self._registrations.values():
                registration.changes.poke()

    def deliver(self, event: FileSystemEvent) -> None:
        """Route `event` as an observer thread does: the seam tests feed events through."""
        self._handlers["native"].dispatch(event)

    @property
    def backends(self) -> list[str]:
        """Names of the backends in use, e.g. ['native'] or ['native', 'polling']."""
        with self._lock:
            return sorted({s.backend for s in self._scheduled.values()})

    @property
    def directories(self) -> dict[str, bool]:
        """The scheduled roots: {directory: recursive}."""
        with self._lock:
            return {d: s.recursive for d, s in self._scheduled.items()}

    def heal(self) -> bool:
        """Restart dead observers and watch lost or new roots again; True if it had to."""
        with self._lost_lock:
            lost, self._lost = self._lost, set()
        with self._lock:
            dead = [name for name, o in self._observers.items() if not observers.alive(o)]
            if not (lost or dead) or not self.started:
                return False
            if dead:
                logs.error("the watcher thread had stopped; starting it again")
            for directory, scheduled in list(self._scheduled.items()):
                if directory in lost or scheduled.backend in dead:
                    if scheduled.backend not in dead:
                        with contextlib.suppress(KeyError, OSError):
                            self._observers[scheduled.backend].unschedule(scheduled.watch)
                    del self._scheduled[directory]
            for name in dead:
                self._observers.pop(name).stop()  # its emitter threads outlive it
            self._missing.clear()
            self._reschedule()
        return True

    def _route(self, path: str, is_directory: bool, kind: str = UNKNOWN) -> None:
        if is_directory and (path in self._scheduled or path in self._missing):
            with self._lost_lock:
                self._lost.add(path)
        for registration in list(self._registrations.values()):
            registration.route(path, is_directory, kind)
            if is_directory and path in self._missing:
                registration.changes.poke()  # a root appeared: the next request watches it

    def _events_lost(self, where: str) -> None:
        """The backend dropped events (a kernel queue overflow): the next request looks at
        every tracked file, as the safety net does (safety_net.py)."""
        if not any(r.changes.doubting for r in list(self._registrations.values())):
            logs.error("file events were lost (the event queue of %s overflowed): every "
                       "tracked file is looked at on the next request", where)
        self._doubt(lost=True)

    def _doubt(self, *, lost: bool = False) -> None:
        for registration in list(self._registrations.values()):
            registration.changes.doubt(lost=lost)

    def _died(self) -> None:
        """An observer thread ended on its own: the next request restarts it."""
        for registration in list(self._registrations.values()):
            registration.changes.poke()

    def _wanted(self) -> dict[str, tuple[bool, str]]:
        """{root: (recursive, backend)}: polling where asked for or where the
        filesystem is remote (native events miss changes made by other machines)."""
        mounts = paths.parse_mounts(self._mounts())
        by_backend: dict[str, list[tuple[str, bool]]] = {"native": [], "polling": []}
        for reg in self._registrations.values():
            for root, recursive in reg.roots.items():
                fstype = paths.filesystem_of(root, mounts)
                remote = paths.remote(fstype)
                if remote and root not in self._scheduled and not reg.polling:
                    logs.info("%s is on %s, a remote filesystem: polling it, so its changes "
                              "are seen up to %g s late", root, fstype, self.interval)
                backend = "polling" if reg.polling or remote else "native"
                by_backend[backend].append((root, recursive))
        wanted: dict[str, tuple[bool, str]] = {}
        for backend, roots in by_backend.items():
            for directory, recursive in paths.merge_roots(roots).items():
                wanted.setdefault(directory, (recursive, backend))
        return wanted

    def _reschedule(self) -> None:
        wanted = self._wanted()
        for directory, scheduled in list(self._scheduled.items()):
            if wanted.get(directory) != (scheduled.recursive, scheduled.requested):
                self._observers[scheduled.backend].unschedule(scheduled.watch)
                del self._scheduled[directory]
        for directory, (recursive, backend) in wanted.items():
            if directory in self._scheduled:
                continue
            if os.path.isdir(directory):
                self._schedule(directory, recursive, backend)
            else:
                self._watch_for(directory, backend)

    def _watch_for(self, directory: str, backend: str) -> None:
        """Watch the nearest existing parent of a root that does not exist (yet)."""
        parent = os.path.dirname(directory)
        while parent != os.path.dirname(parent) and not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        if parent not in self._scheduled:
            self._schedule(parent, False, backend)
        self._missing[directory] = parent

    def _schedule(self, directory: str, recursive: bool, requested: str) -> None:
        """Schedule one root; where native events fail (inotify limits) poll instead."""
        backend = requested
        try:
            watch = self._observer(backend).schedule(
                self._handlers[backend], directory, recursive=recursive,
                event_filter=observers.FILTER,
            )
        except OSError as exc:
            if backend == "polling":
                logs.error("cannot watch %s: %s", directory, exc)
                return
            limit = observers.LIMIT_ADVICE.get(exc.errno or 0, f"an error ({exc})")
            logs.error("native events unavailable for %s: %s; polling it instead", directory, limit)
            backend = "polling"
            watch = self._observer(backend).schedule(
                self._handlers[backend], directory, recursive=recursive,
                event_filter=observers.FILTER,
            )
        self._scheduled[directory] = _Scheduled(recursive, requested, backend, watch)

    def _observer(self, backend: str) -> BaseObserver:
        observer = self._observers.get(backend)
        if observer is None:
            if backend == "native":
                observer = self._native_factory()
            else:
                observer = self._polling_factory(self.interval)
            observer.daemon = True  # a non-daemon thread makes every mod_wsgi restart wait 5 s
            observers.report_deaths(observer, self._died)
            observers.pair_moves_promptly(observer)
            observer.start()
            self._observers[backend] = observer
        return observer
