"""The classic polling monitor, as mod_wsgi's "Reloading Source Code" page describes it.

A daemon thread wakes once a second, stats the file of every module in sys.modules
(the source file for a `.pyc`) and any extra tracked file, and compares each mtime with
the one it saw first. Where the recipe sends SIGINT to its own process, this one calls
`on_change(path)` and takes the new mtime as the baseline, as a restarted process
would, so one process can measure many changes.

>>> monitor = ClassicMonitor(on_change=print)                  # doctest: +SKIP
>>> monitor.start()
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator


class ClassicMonitor:
    """Stat every loaded module's file every `interval` seconds, in a daemon thread."""

    def __init__(self, on_change: Callable[[str], None], interval: float = 1.0) -> None:
        self.on_change = on_change
        self.interval = interval
        self.scans = 0  # complete passes so far
        self._mtimes: dict[str, float | None] = {}
        self._extra: list[str] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="classic-monitor", daemon=True)

    def track(self, path: str) -> None:
        """Also watch a file that is not a module (a config file), like the recipe's."""
        self._extra.append(path)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            for path in self._files():
                if self._changed(path):
                    self.on_change(path)
            self.scans += 1
            if self._stopping.wait(self.interval):
                return

    def _files(self) -> Iterator[str]:
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path:
                yield path[:-1] if path.endswith((".pyc", ".pyo")) else path
        yield from self._extra

    def _changed(self, path: str) -> bool:
        """First sight records the mtime; later a different one (or a vanished file) counts."""
        try:
            mtime: float | None = os.stat(path).st_mtime
        except OSError:
            mtime = None
        before = self._mtimes.setdefault(path, mtime)
        if before == mtime:
            return False
        self._mtimes[path] = mtime
        return True
