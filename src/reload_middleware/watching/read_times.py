"""When was the served code read? Time bounds for baselines, and the doubts they leave.

A baseline is the file as this process loaded it. The process rarely stats a file at
the very moment it reads it, so a *bound* stands in: a wall-clock moment known to be
before the read (the process start, the start of the request that loaded the script,
the moment the import system looked the module up). A file whose times are later than
its bound may have changed after it was read: it counts as changed. That costs one
action too many at worst, never old code (docs/promise.md).

    >>> SECOND = 1_000_000_000
    >>> later_than("/srv/app/data.txt", (5 * SECOND + 1, 5 * SECOND + 1), 4 * SECOND)
    True
    >>> later_than("/srv/app/data.txt", (3 * SECOND + 1, 3 * SECOND + 1), 4 * SECOND)
    False
"""

from __future__ import annotations

import errno
import importlib.util
import marshal
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from .. import file_reads, logs

SECOND = 1_000_000_000
# File times come from a clock that may lag time.time_ns() by a tick (4 ms at 250 Hz):
# earlier is the safe side of a bound.
TICK_NS = 20_000_000
# The coarsest file clock in use (FAT and some shares keep even seconds only).
COARSE_NS = 2 * SECOND


def later_than(
    path: str,
    times: Sequence[int],
    bound: int,
    size: int = -1,
    *,
    now: Callable[[], int] = time.time_ns,
    told: logs.Once | None = None,
) -> bool:
    """Whether a file with these (mtime, ctime) may have changed after a read at `bound`.

    The ctime tells as well as the mtime: a copy that puts the old mtime back (rsync -a,
    cp -p, tar) still sets it. Where the times cannot tell, the answer is the safe one
    and the log says so, naming the file, once per file and doubt remembered in `told`
    (the caller's: its latch's, which is the interpreter's; None: said every time):
    - a time ahead of the clock (skew, a share) proves nothing and would act forever:
      such a time is left out (`reached`);
    - whole-second times (a coarse filesystem clock) may hide a change made in the
      second of the read;
    - a `.py` file saved in the second before the read may have been loaded from a
      `.pyc` of the previous save (Python trusts a pyc whose whole-second mtime and
      size match the source).
    """
    if max(times, default=0) + COARSE_NS <= bound:
        return False  # the usual file, older than its read by more than any doubt reaches
    valid = reached(path, times, now(), told)
    if not valid:
        return False
    latest = max(valid)
    if latest > bound:
        return True
    if all(t % SECOND == 0 for t in valid) and latest + COARSE_NS > bound:
        _tell(told, path, "coarse", "%s has whole-second file times: a change made in the "
              "second its code was loaded counts as a change", path)
        return True
    return (
        path.endswith(".py") and latest + SECOND > bound
        and stale_bytecode(path, valid[0], size, told)
    )


def reached(path: str, times: Sequence[int], now: int, told: logs.Once | None = None
            ) -> list[int]:
    """The file times the clock `now` has reached. One ahead of it (a skewed clock on a
    share, a restored archive, `touch -d`) says nothing of when the file changed: it is
    left out, and said with the skew, once per file remembered in `told` (as in
    `later_than`)."""
    valid = [t for t in times if t <= now]
    if len(valid) < len(times):
        _tell(told, path, "future", "%s has a time %.0f s ahead of this machine's clock: "
              "each change to it counts once, told by its size, inode and times, never as "
              "a change still going on", path, (max(times) - now) / SECOND)
    return valid


def stale_bytecode(path: str, mtime_ns: int, size: int, told: logs.Once | None = None
                   ) -> bool:
    """True when the `.pyc` of `path` matches its header but holds other code.

    Python checks a pyc against the source's mtime in whole seconds and its size: a save
    in the same second with the same size leaves old bytecode that Python still loads.
    A pyc written before the source is such old bytecode; one written after it may still
    be (a process read the old source before the save and wrote its pyc after), so its
    code is compared with the source's, compiled here: a few files at most, each saved
    in the second before it was loaded.

    Both are read by `file_reads` (never waiting on a FIFO planted at the pyc's name,
    never through a link, at most 1 MiB). A pyc that is no regular file (a FIFO, a
    symlink) is not looked at: False, as for a pyc that cannot be read. One larger than
    the bound may be old bytecode: True, the safe side (one action too many). Either is
    said once per file as far as `told` remembers.
    """
    try:
        cached = importlib.util.cache_from_source(path)
    except (NotImplementedError, ValueError):
        return False
    try:
        fd = file_reads.open_file(cached)
        data, info = file_reads.read_open(fd, file_reads.LIMIT, path=cached)
    except file_reads.Refused as exc:
        if told is None or told.first(("refused", cached, exc.errno)):
            logs.error("%s is not read (%s): %s", cached, exc.strerror,
                       "its source counts as changed" if exc.errno == errno.EFBIG
                       else "not looked at for old bytecode")
        return exc.errno == errno.EFBIG
    except OSError:
        return False  # none, or not ours to read: none Python loads either
    header, body = data[:16], data[16:]
    if len(header) < 16 or int.from_bytes(header[4:8], "little") != 0:
        return False  # hash-based pycs are checked against the source's content
    if (int.from_bytes(header[8:12], "little") != (mtime_ns // SECOND) & 0xFFFFFFFF
            or int.from_bytes(header[12:16], "little") != size & 0xFFFFFFFF):
        return False  # Python will not load it for this source
    return info.st_mtime_ns < mtime_ns or not _same_code(path, body)


def _same_code(path: str, bytecode: bytes) -> bool:
    """Whether `bytecode` (a pyc's body) is what the source at `path` compiles to now."""
    try:
        fresh = compile(file_reads.read(path), path, "exec", dont_inherit=True)
        return bool(marshal.loads(bytecode) == fresh)
    except (OSError, SyntaxError, ValueError, EOFError, TypeError):
        return False  # unreadable, not read, or not code: count it as changed


def _tell(told: logs.Once | None, path: str, kind: str, message: str, *args: object) -> None:
    """Log a doubt once per file and kind, as far as `told` remembers (None: every time).

    The memory is the caller's: this module keeps no state, so a new interpreter state
    (interpreter.reset) says every doubt again."""
    if told is None or told.first((kind, path)):
        logs.info(message, *args)


def request_start_ns(value: object) -> int | None:
    """mod_wsgi's `mod_wsgi.request_start` as wall-clock ns, or None.

    Microseconds as a string in mod_wsgi 4 and 5, seconds as a float in 6.

    >>> request_start_ns("1700000000123456"), request_start_ns(1700000000.5)
    (1700000000123456000, 1700000000500000000)
    """
    try:
        if isinstance(value, str):
            return int(value) * 1000
        if isinstance(value, int | float) and value > 0:
            # A number that large is microseconds, whatever the version said.
            # mod_wsgi keeps microseconds: rounding there drops the float's noise.
            return round(value if value > 1e14 else value * 1_000_000) * 1000
    except (ValueError, OverflowError):
        pass
    return None


def process_started_ns(modules: Mapping[str, object] = sys.modules) -> int:
    """When this process started loading code, wall clock (ns): a lower bound.

    uWSGI re-executes its master in place on a graceful reload (same pid, same start
    time), so there the bound is the later of the process start and `started_on`, the
    re-exec's whole second rounded down. Never this module's import: the application
    imports its own modules before it builds the middleware.
    """
    started = min(_IMPORTED_NS, process_start_ns() or _IMPORTED_NS)  # else: not Linux
    started_on = getattr(modules.get("uwsgi"), "started_on", None)
    if isinstance(started_on, int):
        started = min(max(started, started_on * SECOND), _IMPORTED_NS)
    return started


def process_start_ns(pid: int | str = "self", proc: str = "/proc") -> int | None:
    """When process `pid` started, wall clock (ns), from its /proc entry; None if it is
    gone, or not on Linux."""
    try:
        with open(f"{proc}/{pid}/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        # Both clocks count from boot: exact to a clock tick (btime is whole seconds).
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time_ns() - int(age * SECOND)


_IMPORTED_NS = time.time_ns()
