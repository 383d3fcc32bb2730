"""Which files has the interpreter just started to load? A finder that notes each one.

Modules imported after the middleware was built (Django's views on the first
request, any function-level import) must be tracked from the moment Python looked
them up, not from whenever a request next scans `sys.modules`: a save in between would
otherwise become the baseline while the old code runs. The finder sits first on
`sys.meta_path`, asks the finders behind it for the module's spec as the import system
would, notes the file with the time, and hands the spec on unchanged. It is noted
before the file is read and before the flag is raised, so a request that sees the flag
also sees the note; a failed import is noted as well, so saving the fix is a change.

    >>> recorder = Recorder()
    >>> inbox = recorder.subscribe("/srv/app/app.wsgi", poke=lambda: None)
    >>> _ = sys.modules.pop("colorsys", None); import colorsys
    >>> [name for name, at in inbox.drain().values()]
    ['colorsys']
    >>> recorder.unsubscribe("/srv/app/app.wsgi"); recorder in sys.meta_path
    False
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType

from .read_times import TICK_NS

Loaded = dict[str, tuple[str, int]]  # file -> (module name, wall-clock ns before the read)


class Inbox:
    """The files noted for one middleware (by script) since it last drained them."""

    def __init__(self, poke: Callable[[], None]) -> None:
        self.poke = poke
        self._lock = threading.Lock()
        self._loaded: Loaded = {}
        self._noted = False  # poked since the last drain

    def note(self, path: str, name: str, at: int) -> None:
        """Note a file; the first note since the last drain raises the flag (a reload
        imports thousands of modules: one poke tells the next request to drain them all)."""
        with self._lock:
            self._loaded.setdefault(path, (name, at))  # the earliest moment is the bound
            first, self._noted = not self._noted, True
        if first:
            self.poke()

    def drain(self) -> Loaded:
        with self._lock:
            loaded, self._loaded, self._noted = self._loaded, {}, False
        return loaded


class Recorder:
    """Notes every module file the import system is about to load, in every inbox.

    A meta path finder by its `find_spec` alone: the import system asks no more, and
    `importlib.abc` would load `importlib.resources` and `pathlib` into every process.
    """

    def __init__(self) -> None:
        self.inboxes: dict[str, Inbox] = {}
        self._lock = threading.Lock()

    def subscribe(self, key: str, poke: Callable[[], None]) -> Inbox:
        """The inbox of `key` (a script executed again gets the same one); the finder
        goes first on `sys.meta_path` with the first inbox."""
        with self._lock:
            if not any(f is self for f in sys.meta_path):
                sys.meta_path.insert(0, self)
            inbox = self.inboxes.get(key)
            if inbox is None:
                inbox = self.inboxes[key] = Inbox(poke)
            inbox.poke = poke
            return inbox

    def unsubscribe(self, key: str) -> None:
        """Stop noting files for `key`; the finder leaves with the last inbox."""
        with self._lock:
            self.inboxes.pop(key, None)
            if not self.inboxes and self in sys.meta_path:
                sys.meta_path.remove(self)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        at = time.time_ns() - TICK_NS
        spec = self._behind(fullname, path, target)
        origin = getattr(spec, "origin", None)
        if spec is not None and spec.has_location and isinstance(origin, str):
            for inbox in list(self.inboxes.values()):
                inbox.note(origin, fullname, at)
        return spec

    def _behind(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec the finders after this one give, as the import system asks them."""
        finders = list(sys.meta_path)
        after = finders[finders.index(self) + 1:] if self in finders else finders
        for finder in after:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is not None and finder is not self:
                spec: importlib.machinery.ModuleSpec | None = find_spec(fullname, path, target)
                if spec is not None:
                    return spec
        return None
