r"""The server's error log: one logger, which writes to stderr when nothing is configured.

mod_wsgi, gunicorn and uWSGI all send a process's stderr to their error log, so a
library that logs nowhere unless configured would hide the lines the documentation promises
(the start line and one line per action).

Every argument is escaped before it reaches the log: a file named
"x\nreload_middleware: [pid 1] FORGED\x1b[2J" shows as one line with `\n` and `\x1b`
in it, never as a second line of its own or as a terminal escape sequence.

>>> info("%s changed: reload", "/srv/app/x\n.py")      # doctest: +SKIP
reload_middleware: [pid 4242] /srv/app/x\n.py changed: reload
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Hashable, Iterable

logger = logging.getLogger("reload_middleware")


# Characters that end a line or drive a terminal, and lone surrogates (undecodable bytes
# of a file name), which some handlers cannot even encode.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def escape(text: str) -> str:
    r"""`text` with control characters, line breaks and surrogates as Python escapes.

    >>> escape("a\nb\x1b[2J\udcff")
    'a\\nb\\x1b[2J\\udcff'
    """
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class Lines(str):
    """An argument that is several lines on purpose (a traceback): each line is escaped
    and the lines after the first are indented, so none can pass for a log line."""


def _safe(arg: object) -> object:
    if isinstance(arg, Lines):
        return "\n    ".join(escape(line) for line in arg.splitlines())
    if isinstance(arg, int | float):
        return arg  # for %d and %g
    return escape(str(arg))


def log(level: int, message: str, *args: object) -> None:
    """Log `message % args`, prefixed with the pid; every argument escaped (see `escape`)."""
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("reload_middleware: %(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.log(level, "[pid %d] " + message, os.getpid(), *map(_safe, args))


def info(message: str, *args: object) -> None:
    log(logging.INFO, message, *args)


def error(message: str, *args: object) -> None:
    log(logging.ERROR, message, *args)


class Once:
    """What the log has said once already: a doubt or an error that every request would
    repeat is said the first time only.

    Held by the state the saying belongs to (the interpreter's, interpreter.py), never by
    a module, so that a new state, as a new process has it, says everything again.

    >>> told = Once()
    >>> told.first(("future", "/srv/app/a.py")), told.first(("future", "/srv/app/a.py"))
    (True, False)
    """

    def __init__(self) -> None:
        self._said: set[Hashable] = set()
        self._lock = threading.Lock()  # two requests may have the same thing to say

    def first(self, key: Hashable) -> bool:
        """True the first time `key` is given, False ever after."""
        with self._lock:
            if key in self._said:
                return False
            self._said.add(key)
            return True


def describe(paths: Iterable[str], first: int = 3) -> str:
    """'a.py, b.py (2 files)' style summary: the first few paths and a count."""
    items = sorted(paths)
    shown = ", ".join(items[:first])
    more = f" and {len(items) - first} more" if len(items) > first else ""
    return f"{shown}{more} ({len(items)} file{'s' if len(items) != 1 else ''})"
