"""Was the script loaded by a request? Then what that load read waits for its start.

Under mod_wsgi without preloading, a daemon loads the script on the first request for
it: what the load read is bounded by that request's start (`mod_wsgi.request_start`),
not by the process start, or every file saved since the daemon started would count as
changed and its first requests would restart it. The request tells its start only when
it reaches the middleware; until then those files are observed but not judged, and
other requests wait for it (docs/promise.md).

    load = Load(changes, script, started=bounds.process_started_ns())   # doctest: +SKIP
    load.judge_at(environ, lock, wait=1.0)      # on each request while it waits
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from ..script import Script
from . import read_times
from .changes import Changes
from .file_state import Observed


class Load:
    """The load of one script: by which request thread, and the files it read."""

    def __init__(
        self, changes: Changes, script: Script | None, started: int, *, inert: bool = False
    ) -> None:
        self._changes = changes
        self._started = started  # the process start: the bound when the request is unknown
        self._thread = None if inert else loading_request()
        self._before = _before(script) if self._thread else set()
        self._unjudged: Observed = {}
        self.judged = threading.Event()
        if self._thread is None:
            self.judged.set()  # preloaded, or not mod_wsgi: nothing waits

    @property
    def waiting_for(self) -> int | None:
        """The thread of the request that loaded the script, until its files are judged."""
        return None if self.judged.is_set() else self._thread

    def read(self, name: str) -> bool:
        """Whether module `name` (or a file, "") was read by the script's load."""
        return name not in self._before

    def baseline(
        self, files: Iterable[str], since: int | Mapping[str, int], load: Iterable[str] = ()
    ) -> None:
        """Baselines for new files, each judged by its bound; those the load read (`load`)
        wait for the loading request while it has not come."""
        if self.judged.is_set():
            self._changes.baseline(files, loaded_since=since)
            return
        load = set(load)
        observed = self._changes.baseline(files)
        self._unjudged.update((p, o) for p, o in observed.items() if p in load)
        self._changes.judge({p: o for p, o in observed.items() if p not in load}, since)

    def settle_early(self) -> None:
        """Judge at once when nothing the load read is newer than the process start."""
        if not any(read_times.later_than(p, times, self._started, state[1] if state else -1,
                                     told=self._changes.told)
                   for p, (state, times) in self._unjudged.items()):
            self.judge(None)

    def judge_at(self, environ: Mapping[str, Any] | None, lock: AbstractContextManager[Any],
                 wait: float) -> None:
        """On a request (`environ`) or in the hook (None): judge what the load read, by the
        loading request's start when this is that request. Others wait for it, at most
        `wait` s: they may reach the middleware, or the hook, before it does. Under
        `lock`, the middleware's: judging moves baselines."""
        loader = self.waiting_for
        if loader is None:
            return
        mine = environ is not None and loader == threading.get_ident()
        if not mine and self.judged.wait(wait):
            return
        with lock:
            start = environ.get("mod_wsgi.request_start") if mine and environ else None
            self.judge(read_times.request_start_ns(start))

    def judge(self, started: int | None) -> None:
        """Judge what the load read by its request's start (`None`: the request did not
        come in time, so by the process start), once."""
        if self.judged.is_set():
            return
        observed, self._unjudged = self._unjudged, {}
        bound = self._started if started is None else started - read_times.TICK_NS
        self._changes.judge(observed, bound)
        self.judged.set()


def loading_request() -> int | None:
    """The thread that is loading the script for a request, or None when no request is
    (a preloaded script, or a server other than mod_wsgi)."""
    mod_wsgi = sys.modules.get("mod_wsgi")
    request_data = getattr(mod_wsgi, "request_data", None)
    if request_data is None:
        return None
    try:
        request_data()
    except Exception:  # RuntimeError: no active request for this thread
        return None
    return threading.get_ident()


def _before(script: Script | None) -> set[str]:
    """Names of the modules imported before the script began to load (sys.modules keeps
    the order of insertion, and the server inserts the script's module first)."""
    names = list(sys.modules)
    if script is None or script.name not in names:
        return set(names)
    return set(names[: names.index(script.name)])
