"""Is a file open for writing right now? Asked of a file whose write no event told of.

A write that began before this process watched (a slow copy under way when a preloaded
process takes its first request) will be closed with an event, but its start came with
none: the safety net's look or the first look finds the file changed and cannot tell a
finished save from a half-written file. Linux tells through /proc: a process holds the
file open for writing when one of its descriptors links to it with a writable mode.
Only the processes this one may inspect can be asked (its own user's, or all for root),
so the answer is True, False, or None for "some could not be asked and none of the
others holds it".

>>> held("/nonexistent/views.py", proc="/nonexistent/proc")
False
"""

from __future__ import annotations

import os


def held(path: str, proc: str = "/proc") -> bool | None:
    """Whether a process holds `path` open for writing (None: not known)."""
    target = os.path.realpath(path)
    unknown = False
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return False  # no /proc: nothing to ask, as on other platforms
    for pid in pids:
        fds = os.path.join(proc, pid, "fd")
        try:
            names = os.listdir(fds)
        except PermissionError:
            unknown = True
            continue
        except OSError:
            continue  # the process ended meanwhile
        if any(_writes(fds, fd, target) for fd in names):
            return True
    return None if unknown else False


def _writes(fds: str, fd: str, target: str) -> bool:
    """Whether descriptor `fd` of the process links to `target` with a writable mode."""
    try:
        if os.readlink(os.path.join(fds, fd)) != target:
            return False
        with open(os.path.join(os.path.dirname(fds), "fdinfo", fd)) as info:
            flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return False
    return flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
