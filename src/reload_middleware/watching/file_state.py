"""What state is a file in? The part of its stat that tells a change (pure functions).

>>> stat_of("/nonexistent/views.py") is None
True
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Callable, Iterable

# (mtime_ns, size, inode, ctime_ns, (mode, uid, gid, links)); None: the file is absent.
Stat = tuple[int, int, int, int, tuple[int, ...]] | None
# The baseline of a file written after its module was loaded: it differs from any stat.
STALE: Stat = (-2, -2, -2, -2, ())
UNREADABLE: Stat = (-1, -1, -1, -1, ())
# Files share their mode, owner and links: one tuple for each such set, not one per
# file (a process keeps the state of thousands). Bounded: a few kinds are the rule.
_METAS: dict[tuple[int, ...], tuple[int, ...]] = {}
_METAS_KEPT = 256


def differs(before: Stat, after: Stat) -> bool:
    """Whether `after` is a change from `before`.

    The content's stat (mtime, size, inode) tells most changes. A content rewritten in
    place with its old size and mtime put back (rsync --inplace, builds with fixed
    times) moves only the ctime; so does a chmod, chown or new hard link, which change
    no code: a ctime that moved counts unless the mode, owner or links moved with it.

    >>> differs((5, 10, 7, 5, (0o644, 0, 0, 1)), (5, 10, 7, 9, (0o644, 0, 0, 1)))
    True
    >>> differs((5, 10, 7, 5, (0o644, 0, 0, 1)), (5, 10, 7, 9, (0o600, 0, 0, 1)))
    False
    """
    if before is None or after is None:
        return before is not after
    return before[:3] != after[:3] or (before[3] != after[3] and before[4] == after[4])


def metadata_only(before: Stat, after: Stat) -> bool:
    """Whether `after` differs from `before` by its ctime alone: a chmod or chown that
    changed nothing, a new hard link, or content rewritten in place with its old size and
    mtime put back. The file's events tell which (Changes.take).

    >>> metadata_only((5, 10, 7, 5, (0o644, 0, 0, 1)), (5, 10, 7, 9, (0o644, 0, 0, 1)))
    True
    """
    return (before is not None and after is not None and before[:3] == after[:3]
            and before[3] != after[3] and before[4] == after[4])


def stat_of(path: str, stat: Callable[[str], os.stat_result] = os.lstat) -> Stat:
    """The part of a file's stat that tells a change, or None when it does not exist.

    A symlink to a directory (a release symlink such as `current`) is known by where it
    points: the target's inode, not its mtime, which moves whenever a file is added.
    """
    return observe(path, stat)[0]


Observed = dict[str, tuple[Stat, tuple[int, ...]]]  # path -> (state, (mtime, ctime))


def observe(path: str, stat: Callable[[str], os.stat_result]) -> tuple[Stat, tuple[int, ...]]:
    """`stat_of()`, and the file's mtime and ctime (ns; none for a directory link)."""
    try:
        st = stat(path)
        if stat_module.S_ISLNK(st.st_mode):
            st = os.stat(path)
            if stat_module.S_ISDIR(st.st_mode):
                return (0, 0, st.st_ino, 0, ()), ()
    except (FileNotFoundError, NotADirectoryError):
        return None, ()
    except OSError:
        return UNREADABLE, ()  # still a state, compared like any other
    meta: tuple[int, ...] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink)
    if len(_METAS) < _METAS_KEPT:
        meta = _METAS.setdefault(meta, meta)
    state = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns, meta)
    return state, (st.st_mtime_ns, st.st_ctime_ns)


def newest(states: Iterable[Stat], now: int) -> int:
    """When the files of `states` were last written, as their times tell (`now` for
    none): the latest mtime or ctime not ahead of `now`.

    >>> newest([(5, 1, 9, 7, ()), None, (8, 1, 9, 12, ())], now=10)
    8
    """
    times = [t for state in states if state and state[0] >= 0
             for t in (state[0], state[3]) if t <= now]
    return max(times, default=now)

