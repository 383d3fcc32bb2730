"""Project files not loaded yet: a save there that does not compile is said in the log.

Django imports views on the first request that needs them, so a daemon that has not
served one has not imported `views.py`: a save there changes none of its code, and no
restart is due. But the request that imports it will fail, and the log should say why
before it does. The watcher notes `.py` files saved below the package roots of the
modules the app loaded (`Files.packages`: never the trigger's directory nor a plain
watch directory, where another account may create names) that no tracked module was
loaded from (the observer thread only notes); a request compiles them, read as
`file_reads` reads (no FIFO waited on, no last symlink followed, 1 MiB at most), and
logs the file and line of an error, once per save.

>>> strays = Strays()
>>> strays.note("/srv/app/polls/views.py", {"/srv/app/polls": True}, ())
True
>>> strays.note("/srv/app/README.txt", {"/srv/app/polls": True}, ())
False
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet

from .. import logs
from ..acting import preflight
from . import paths
from .file_state import Stat, stat_of


def below(path: str, roots: Mapping[str, bool]) -> bool:
    """Whether `path` is in a watched root (anywhere below it for a recursive root).

    >>> below("/a/b/c.py", {"/a": True}), below("/a/b/c.py", {"/a": False})
    (True, False)
    """
    directory = os.path.dirname(path)
    return any(directory == root or (recursive and paths.under(path, [root]))
               for root, recursive in roots.items())


class Strays:
    """Saved `.py` files nobody loaded, noted by the watcher and checked by a request."""

    def __init__(self, check: Callable[[Iterable[str]], preflight.Failure | None] | None = None,
                 *, told: logs.Once | None = None) -> None:
        # The compile preflight by default, which says an unreadable file once as far as
        # `told` remembers: the interpreter's, shared with the middleware's preflight.
        self._check = check or functools.partial(preflight.compile_files, told=told)
        self._lock = threading.Lock()
        self._noted: set[str] = set()
        self._reported: dict[str, Stat] = {}  # file -> the state its error was logged for

    def note(self, path: str, roots: Mapping[str, bool], exclude: tuple[str, ...]) -> bool:
        """From the watcher thread: note `path` if it is Python source in a package root."""
        if not path.endswith(".py") or not below(path, roots):
            return False
        if paths.excluded(path, exclude, within=os.path.dirname(path)):
            return False
        with self._lock:
            self._noted.add(path)
        return True

    def sweep(self, roots: Mapping[str, bool], exclude: tuple[str, ...], since: int,
              loaded: AbstractSet[str] = frozenset()) -> None:
        """Note the Python files in `roots` written after `since` (wall-clock ns): saved
        before this process watched (it starts watching on its first request). The
        `loaded` ones, tracked with a baseline of their own, are not looked at."""
        recursive = [r for r, deep in roots.items() if deep]
        found = paths.files_below(recursive, exclude)
        for root in (r for r, deep in roots.items() if not deep):
            with contextlib.suppress(OSError), os.scandir(root) as entries:
                found += [e.path for e in entries if e.is_file()]
        for path in found:
            state = stat_of(path) if path.endswith(".py") and path not in loaded else None
            if state is not None and state[0] > since:
                self.note(path, roots, exclude)

    def report(self, tracked: Iterable[str] = ()) -> list[preflight.Failure]:
        """From a request: compile what was noted (not `tracked` meanwhile); log each
        error once per saved state of its file. Returns the errors logged."""
        with self._lock:
            if not self._noted:
                return []  # the usual look: nothing to compile, no set of tracked files
            noted, self._noted = self._noted - set(tracked), set()
        logged = []
        for path in sorted(noted):
            failure = self._check([path])
            state = stat_of(path)
            if failure is None or self._reported.get(path) == state:
                continue
            self._reported[path] = state
            logs.error("%s does not load, and nothing has imported it yet: the request "
                       "that imports it will fail\n%s", failure.summary,
                       logs.Lines(failure.traceback.rstrip()))
            logged.append(failure)
        return logged
