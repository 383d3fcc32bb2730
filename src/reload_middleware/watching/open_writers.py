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
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(os.path.basename(path), []).append(path)
    if not by_name:
        return set()
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return set()  # no /proc: nothing to ask, as on other platforms
    written: set[str] = set()
    for pid in pids:
        fds = os.path.join(proc, pid, "fd")
        try:
            names = os.listdir(fds)
        except OSError:
            continue  # another user's process, or one that ended meanwhile
        written.update(t for fd in names if (t := _written(fds, fd, by_name)) is not None)
    return _ours(written, by_name)


def _ours(written: Iterable[str], by_name: dict[str, list[str]]) -> set[str]:
    """The paths that are these real files. A descriptor's link names the real file, and
    is matched by its last name first: only the few paths of a name held open are
    resolved, not thousands of modules (with a system call per directory)."""
    real = RealPaths()
    return {path for target in written for path in by_name[os.path.basename(target)]
            if (real.file(path) or os.path.realpath(path)) == target}


def _written(fds: str, fd: str, by_name: dict[str, list[str]]) -> str | None:
    """The file, named as one of ours, that descriptor `fd` of the process holds with a
    writable mode."""
    try:
        target = os.readlink(os.path.join(fds, fd))
        if os.path.basename(target) not in by_name:
            return None
        with open(os.path.join(os.path.dirname(fds), "fdinfo", fd)) as info:
            flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return target if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR) else None
