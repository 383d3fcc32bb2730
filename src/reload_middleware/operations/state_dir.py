"""Where the files we write live: one private directory per user, never a shared name.

Storm records and the control stamp must be seen by every process that serves a script
and by the next process after a restart, so the directory is not random: it is the first
usable of a fixed list of candidates. Each is created with mode 0700 and checked through
an open descriptor (a directory, owned by us, mode 0700) before every use; files in it
are then reached through that descriptor, never by resolving the path again. Another
local account can still plant things at the candidates' names in the shared temp
directory before we create them: such a candidate is skipped, said once in the log.

    state = default()
    with state.opened() as fd:          # None: no private directory, keep it in memory
        if fd is not None:
            touch(fd, "stamp-0123")
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from .. import file_reads, logs
from ..watching import trust

NAME = "reload-middleware"
SUFFIXES = 4  # numbered spares of the temp-dir candidate, should one be planted
# Every open: no link followed, no wait on a FIFO, nothing inherited by a child.
SAFE = file_reads.SAFE


def candidates(uid: int, environ: Mapping[str, str], home: str | None, temp: str) -> list[str]:
    """The fixed list, in order: the runtime dir, a writable home's cache, the temp dir.

    >>> candidates(33, {}, None, "/tmp")[:2]
    ['/tmp/reload-middleware-33', '/tmp/reload-middleware-33.1']
    >>> candidates(1000, {"XDG_RUNTIME_DIR": "/run/user/1000"}, "/home/a", "/tmp")[:2]
    ['/run/user/1000/reload-middleware', '/home/a/.cache/reload-middleware']
    """
    found = []
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        found.append(os.path.join(runtime, NAME))
    if home:
        found.append(os.path.join(home, ".cache", NAME))
    base = os.path.join(temp, f"{NAME}-{uid}")
    return [*found, base, *(f"{base}.{n}" for n in range(1, SUFFIXES + 1))]


def writable_home(uid: int) -> str | None:
    """The account's home directory when it is ours and writable (www-data's is not)."""
    try:
        home = pwd.getpwuid(uid).pw_dir
        info = os.stat(home)
    except (KeyError, OSError):
        return None
    if info.st_uid != uid or not os.access(home, os.W_OK):
        return None
    return home


def own_file(info: os.stat_result) -> bool:
    """A regular file of ours that nobody else may write."""
    return (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def problem(info: os.stat_result) -> str | None:
    """Why this is not a private directory of ours, or None when it is."""
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}"
    if stat.S_IMODE(info.st_mode) != 0o700:
        return f"mode {stat.S_IMODE(info.st_mode):04o}"
    return None


def open_dir(path: str) -> int:
    """A descriptor of `path` if it is a private directory of ours; OSError if not."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | SAFE)
    why = problem(os.fstat(fd))
    if why is not None:
        os.close(fd)
        raise OSError(f"{path}: {why}")
    return fd


def make_dir(path: str) -> int:
    """Create `path` (mode 0700) unless it exists, then `open_dir()` it.

    One missing parent is created too, private as well (a home without `.cache` yet).
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(os.path.dirname(path), 0o700)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700, follow_symlinks=False)  # whatever the umask took away
    return open_dir(path)


class StateDir:
    """The first usable of `paths`, chosen once per process, checked at every use."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = tuple(paths)
        self._lock = threading.Lock()
        self._chosen: str | None = None
        self._looked = False
        self._lost_logged = False

    @property
    def path(self) -> str | None:
        """The directory in use, or None when no candidate is usable (said once)."""
        with self._lock:
            if not self._looked:
                self._looked = True
                self._chosen = self._choose()
            return self._chosen

    @contextlib.contextmanager
    def opened(self) -> Iterator[int | None]:
        """A descriptor of the directory, checked again now; None where there is none."""
        path = self.path
        fd = None
        if path is not None:
            try:
                fd = open_dir(path)
            except OSError as exc:
                self._lost(exc)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def _choose(self) -> str | None:
        """The first candidate that is already a private directory of ours, else the first
        that can be made one.

        Existing first: every process of a script must use the same directory, and one
        that starts after a plant at an earlier candidate is gone (a daemon recycled)
        would otherwise make that candidate and use it alone, its control POSTs touching
        a stamp no other process watches. Nobody else can make a private directory of
        ours, so this opens nothing to planting.
        """
        skipped: dict[str, OSError] = {}
        existing = [p for p in self.paths if os.path.lexists(p)]
        chosen = _first(existing, open_dir, skipped) or _first(
            [p for p in self.paths if p not in skipped], make_dir, skipped)
        for path, why in skipped.items():
            logs.error("state directory %s skipped: %s", path, why.strerror or why)
        if chosen is None:
            logs.error(
                "no private state directory usable (tried %s): restart storms are "
                "remembered in this process only, and a control POST reloads only the "
                "process that gets it", ", ".join(self.paths),
            )
        else:
            self._split(chosen)
        return chosen

    def _split(self, chosen: str) -> None:
        """Say when another numbered spare of `chosen` is a private directory of ours as
        well: processes that chose it earlier (started while `chosen` could not be used)
        may still run, and the stamp each side's control POST touches is not watched by
        the other."""
        for path in self.paths:
            if path == chosen or os.path.dirname(path) != os.path.dirname(chosen):
                continue
            try:
                os.close(open_dir(path))
            except OSError:
                continue
            logs.error(
                "state directory %s in use, and %s is one too: processes of a script "
                "that started while only that one was usable may still use it, and a "
                "control POST then reloads only the processes on the same directory as "
                "the one that got it; restart them all (then %s can be removed)",
                chosen, path, path)

    def _lost(self, exc: OSError) -> None:
        if not self._lost_logged:
            self._lost_logged = True
            logs.error("state directory no longer usable, files kept in memory: %s; a "
                       "control POST to this process reloads only this process, and "
                       "processes started since may use another directory", exc)


def user_candidates() -> tuple[str, ...]:
    """This user's candidates, as the environment names them now (`candidates`)."""
    uid = os.geteuid()
    return tuple(candidates(uid, os.environ, writable_home(uid), tempfile.gettempdir()))


def default() -> StateDir:
    """A new object for this user's state directory, which chooses on first use.

    The middlewares of an interpreter share one instead (`Interpreter.state_dir`), so
    that the choice is made, and a skipped candidate said, once; this module keeps no
    state.
    """
    return StateDir(user_candidates())


@contextlib.contextmanager
def locked(dir_fd: int | None) -> Iterator[None]:
    """Hold the directory's lock (none for no directory): a record read, changed and
    replaced under it loses nothing to another process doing the same."""
    if dir_fd is not None:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)  # released when the descriptor closes, too
    try:
        yield
    finally:
        if dir_fd is not None:
            fcntl.flock(dir_fd, fcntl.LOCK_UN)


def read(dir_fd: int, name: str, limit: int) -> bytes | None:
    """The content of our own regular file `name`, at most `limit` bytes; else None."""
    try:
        return file_reads.read(name, limit, own_file, dir_fd=dir_fd)
    except OSError:
        return None


def remove(dir_fd: int, name: str) -> None:
    """Remove whatever is at `name` (ours to remove: the directory is private)."""
    with contextlib.suppress(FileNotFoundError):
        try:
            os.unlink(name, dir_fd=dir_fd)
        except IsADirectoryError:
            shutil.rmtree(name, dir_fd=dir_fd)


def write(dir_fd: int, name: str, data: bytes) -> None:
    """Replace `name` with `data` atomically, whatever was there before."""
    temp = f".{name}.{os.getpid()}.{threading.get_ident()}"
    remove(dir_fd, temp)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | SAFE, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as target:
        target.write(data)
    try:
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:  # a directory at `name`
        remove(dir_fd, name)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def own_fd(dir_fd: int, name: str, flags: int = os.O_WRONLY) -> int:
    """A descriptor of our own regular file `name` (created if need be), opened with
    `flags`; anything else found there (a link, a directory, a FIFO, a file we cannot
    write or is not ours alone) is replaced first."""
    flags |= os.O_CREAT | SAFE
    with contextlib.suppress(OSError):  # OSError: a link, a directory, a FIFO with no reader
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        if own_file(os.fstat(fd)):
            return fd
        os.close(fd)
    remove(dir_fd, name)
    return os.open(name, flags | os.O_EXCL, 0o600, dir_fd=dir_fd)


def touch(dir_fd: int, name: str) -> None:
    """Create or touch our file `name`, replacing anything else found there."""
    fd = own_fd(dir_fd, name)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def touch_outside(path: str, trusted: frozenset[int] | None = None) -> None:
    """Touch `path` (the trigger) if it is a regular file of a `trusted` account (ours
    alone by default) that no other account may write; OSError if it is not.

    `path` is taken as given, never resolved: a link at its name is refused (ELOOP), not
    followed, so no file elsewhere is touched or created; a FIFO is not waited on. A
    missing trigger is created, ours.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | SAFE, 0o644)
    try:
        info = os.fstat(fd)
        why = trust.refusal(info.st_mode, info.st_uid, trusted or frozenset({os.geteuid()}))
        if why is not None:
            raise OSError(f"{path} is not a regular file of ours ({why})")
        os.utime(fd)
    finally:
        os.close(fd)


def _first(paths: Sequence[str], opener: Callable[[str], int],
           skipped: dict[str, OSError]) -> str | None:
    """The first of `paths` that `opener` opens (then closed); the others' errors go to
    `skipped`."""
    for path in paths:
        try:
            os.close(opener(path))
        except OSError as exc:
            skipped[path] = exc
            continue
        return path
    return None

