"""The server's error log: one logger, which writes to stderr when nothing is configured.

mod_wsgi, gunicorn and uWSGI all send a process's stderr to their error log, so a
library that logs nowhere unless configured would hide the lines SPEC promises
(the start line and one line per action).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable

logger = logging.getLogger("reload_middleware")


def log(level: int, message: str, *args: object) -> None:
    """Log `message % args`, prefixed with the pid."""
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("reload_middleware: %(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.log(level, "[pid %d] " + message, os.getpid(), *args)


def info(message: str, *args: object) -> None:
    log(logging.INFO, message, *args)


def error(message: str, *args: object) -> None:
    log(logging.ERROR, message, *args)


def describe(paths: Iterable[str], first: int = 3) -> str:
    """'a.py, b.py (2 files)' style summary: the first few paths and a count."""
    items = sorted(paths)
    shown = ", ".join(items[:first])
    more = f" and {len(items) - first} more" if len(items) > first else ""
    return f"{shown}{more} ({len(items)} file{'s' if len(items) != 1 else ''})"
