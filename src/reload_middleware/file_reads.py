"""How is a file read that someone else may have put there? Never waiting, never through
a last link, a regular file only, and never past a bound.

Project sources compiled before acting (changed files, saved files no module was loaded
from), cached bytecode and the files we write ourselves are all read here. Another local
account may create names in a shared directory (the trigger's, a watch directory): a
FIFO there would block an `open()` for good while a request holds the middleware's
lock, and a huge or sparse file would be read whole into memory. So every read:

- opens with `O_NONBLOCK` (a FIFO opens at once, with nobody writing to it) and
  `O_NOFOLLOW` (a symlink as the last component is refused; links on the way to it,
  such as a deploy's `current -> releases/N`, are followed as usual). The files the app
  imported are tracked by their real paths, so a symlinked module is read at its target;
  only the storm guard, which keeps a digest and never shows a byte, follows a last link
  (a symlinked template in a watch directory);
- checks the open descriptor with `fstat`: a regular file (`accept` may ask more);
- reads at most `limit` bytes (`LIMIT`, 1 MiB, by default): a larger file is refused
  before any byte of it is read.

A refusal is an `OSError`, `Refused`, whose text says why, for the caller's log line.

>>> read("/srv/app/views.py")                       # doctest: +SKIP
b'VERSION = 1\\n'
>>> read("/srv/shared/evil.py")                    # doctest: +SKIP
Traceback (most recent call last):
reload_middleware.file_reads.Refused: [Errno 22] not a regular file (a FIFO): '/srv/shared/evil.py'
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

# Above any real module or its bytecode (the standard library's largest source,
# pydoc_data/topics.py, is 0.72 MiB and its .pyc 0.45 MiB; generated modules in common
# packages stay under 0.3 MiB). Compiling is what costs: 2 MB of one list literal takes
# about 850 MB and seconds, so a file past the bound is refused before it is read.
LIMIT = 1024 * 1024
# Every open: no link followed, no wait on a FIFO, no terminal taken, nothing inherited.
SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

Accept = Callable[[os.stat_result], bool]


class Refused(OSError):
    """A file that is there and was not read: not a regular file, a link, or too large."""


def regular(info: os.stat_result) -> bool:
    """A regular file (the default of `accept`)."""
    return stat.S_ISREG(info.st_mode)


def kind(mode: int) -> str:
    """What a file that is no regular file is, for a log line.

    >>> kind(stat.S_IFIFO), kind(stat.S_IFDIR), kind(stat.S_IFSOCK)
    ('a FIFO', 'a directory', 'a socket')
    """
    kinds = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink",
             stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
             stat.S_IFSOCK: "a socket"}
    return kinds.get(stat.S_IFMT(mode), "not a regular file")


def size_text(limit: int) -> str:
    """A bound as people write it.

    >>> size_text(LIMIT), size_text(4096), size_text(1000)
    ('1 MiB', '4 KiB', '1000 bytes')
    """
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def open_file(path: str, *, dir_fd: int | None = None, follow: bool = False) -> int:
    """A read-only descriptor of `path` that no FIFO makes wait; a symlink as the last
    component raises `Refused` (ELOOP), unless `follow`."""
    flags = os.O_RDONLY | (SAFE & ~os.O_NOFOLLOW if follow else SAFE)
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused(errno.ELOOP, "a symlink, not followed", path) from None
        raise


def check(fd: int, limit: int = LIMIT, accept: Accept = regular, path: str = "?"
          ) -> os.stat_result:
    """The stat of the open file `fd` if it is a regular file `accept` takes, of at most
    `limit` bytes; `Refused` otherwise."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Refused(errno.EINVAL, f"not a regular file ({kind(info.st_mode)})", path)
    if not accept(info):
        raise Refused(errno.EPERM, "not a file of ours", path)
    if info.st_size > limit:
        raise Refused(errno.EFBIG, f"larger than {size_text(limit)}, the most read", path)
    return info


def read_fd(fd: int, limit: int = LIMIT, path: str = "?") -> bytes:
    """All of the open file `fd`, at most `limit` bytes: `Refused` if it holds more (it
    grew since it was checked)."""
    chunks: list[bytes] = []
    got = 0
    while got <= limit:
        chunk = os.read(fd, limit + 1 - got)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        got += len(chunk)
    raise Refused(errno.EFBIG, f"larger than {size_text(limit)}, the most read", path)


def read_open(fd: int, limit: int = LIMIT, accept: Accept = regular, path: str = "?"
              ) -> tuple[bytes, os.stat_result]:
    """The content and stat of the open file `fd` (closed here) after `check()`."""
    try:
        info = check(fd, limit, accept, path)
        return read_fd(fd, limit, path), info
    finally:
        os.close(fd)


def read(path: str, limit: int = LIMIT, accept: Accept = regular, *,
         dir_fd: int | None = None, follow: bool = False) -> bytes:
    """The content of the regular file `path` (see the module's rules); OSError if it
    cannot be read, `Refused` (an OSError) if it is not read. `follow`: a symlink as the
    last component is followed (only where the content is never shown, see storm_guard)."""
    return read_open(open_file(path, dir_fd=dir_fd, follow=follow), limit, accept, path)[0]
