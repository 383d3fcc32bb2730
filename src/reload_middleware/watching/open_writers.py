"""Which files are open for writing right now? Asked of files whose writes no event told.

A write that began before this process watched (a slow copy under way when a process
starts, or takes its first request) will be closed with an event, but its start came with
none: a look finds the file changed, or the process loaded it half written, and cannot
tell a finished save from a write still going on. Linux tells through /proc: a process
holds a file open for writing when one of its descriptors links to it with a writable
mode. Only the processes this one may inspect can be asked (its own user's, or all of
them for root); the others are passed over, and then a write under way is not seen.

>>> holding(["/nonexistent/views.py"], proc="/nonexistent/proc")
set()
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .project_modules import RealPaths


def holding(paths: Iterable[str], proc: str = "/proc") -> set[str]:
    """Those of `paths` that a process this one may inspect holds open for writing."""
    wanted = _real(paths)
    if not wanted:
        return set()
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return set()  # no /proc: nothing to ask, as on other platforms
    found: set[str] = set()
    for pid in pids:
        fds = os.path.join(proc, pid, "fd")
        try:
            names = os.listdir(fds)
        except OSError:
            continue  # another user's process, or one that ended meanwhile
        found.update(wanted[t] for fd in names if (t := _written(fds, fd, wanted)) is not None)
    return found


def _real(paths: Iterable[str]) -> dict[str, str]:
    """{real path: path}, as a descriptor's link names a file: a system call per
    directory, not one per path component of each of thousands of modules."""
    real = RealPaths()
    return {real.file(path) or os.path.realpath(path): path for path in paths}


def _written(fds: str, fd: str, wanted: dict[str, str]) -> str | None:
    """The wanted file that descriptor `fd` of the process holds with a writable mode."""
    try:
        target = os.readlink(os.path.join(fds, fd))
        if target not in wanted:
            return None
        with open(os.path.join(os.path.dirname(fds), "fdinfo", fd)) as info:
            flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return target if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR) else None
