"""Which paths? Watch paths, exclude patterns, where to put watches, and mounts (pure).

>>> excluded("/srv/app/.app.py.swp", DEFAULT_EXCLUDES)
True
>>> merge_roots([("/srv/app", False), ("/srv/app/pkg", True), ("/srv/app/pkg/sub", True)])
{'/srv/app': False, '/srv/app/pkg': True}
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping

# Never a change. Each entry is here because something writes it while people work.
DEFAULT_EXCLUDES = (
    "*.pyc", "*.pyo", "__pycache__",   # Python writes these on import, in every process
    ".git", ".hg", ".svn", ".bzr",     # VCS internals change on every status/fetch
    "*.swp", "*.swo", "*.swx", "*~",   # vim swap files and emacs/vim backups
    ".#*", "#*#",                      # emacs lock links and autosave files
    "4913",                            # vim's probe that a directory is writable
    "*___jb_tmp___", "*___jb_old___",  # JetBrains safe-write temporaries
    ".*.kate-swp", "*.tmp", ".~*",     # Kate, generic temp files, LibreOffice locks
    ".DS_Store", "Thumbs.db",          # desktop metadata
)  # fmt: skip


def excluded(path: str, patterns: Iterable[str], within: str = "") -> bool:
    """True when `path`, or a directory on the way to it below `within`, matches a pattern.

    A pattern with a `/` matches the whole path; one without matches a single name.
    Directories above `within` (the watched root) never count: a project kept in
    `~/site.tmp/` is not excluded by `*.tmp`.
    """
    names, whole = _matchers(tuple(patterns))
    if whole is not None and whole.match(path):
        return True
    below = path[len(within.rstrip(os.sep)) + 1 :] if within and under(path, [within]) else path
    return names is not None and any(names.match(part) for part in below.split(os.sep) if part)


@functools.lru_cache(maxsize=64)
def _matchers(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """The patterns as two expressions, for names and for whole paths: one match per
    name instead of one per pattern (the default list has 18), for every file of a tree."""
    def joined(chosen: list[str]) -> re.Pattern[str] | None:
        return re.compile("|".join(fnmatch.translate(p) for p in chosen)) if chosen else None

    return (joined([p for p in patterns if "/" not in p]),
            joined([p for p in patterns if "/" in p]))


def under(path: str, roots: Iterable[str]) -> bool:
    """True when `path` is one of `roots` or inside one."""
    roots = tuple(roots)
    return path in roots or path.startswith(tuple(r.rstrip(os.sep) + os.sep for r in roots))


def watch_root(path: str, name: str) -> tuple[str, bool]:
    """Where to watch so one schedule covers a whole package: (directory, recursive).

    `pkg.sub.mod` at /x/pkg/sub/mod.py gives (/x/pkg, True); a top-level module gives
    its own directory, not recursively (that directory may hold a virtualenv).
    """
    parts = name.split(".")
    is_package = os.path.basename(path).startswith("__init__.")
    directory = os.path.dirname(path)
    package_dirs = parts if is_package else parts[:-1]
    if not package_dirs:
        return directory, False
    top = directory
    for part in reversed(package_dirs):
        if os.path.basename(top) != part:
            return directory, False  # a loader with its own layout: watch just this dir
        top, last = os.path.dirname(top), top
    return last, True


def module_roots(files: Mapping[str, str]) -> list[tuple[str, bool]]:
    """Where to watch each tracked file ({file: module name or ""}), once per directory
    and package: `watch_root()` for a module, its directory for any other file."""
    roots: dict[tuple[str, str], tuple[str, bool]] = {}
    for path, name in files.items():
        directory, _, base = path.rpartition(os.sep)
        package = name if base.startswith("__init__.") else name.rpartition(".")[0]
        key = (directory, package if name else "\0")
        if key not in roots:
            roots[key] = watch_root(path, name) if name else (os.path.dirname(path), False)
    return list(roots.values())


def files_below(dirs: Iterable[str], exclude: tuple[str, ...]) -> list[str]:
    """Every file below `dirs`, skipping excluded names (a watch directory's files)."""
    names, whole = _matchers(tuple(exclude))

    def kept(path: str, name: str) -> bool:  # excluded(path, exclude, within=its directory)
        return not ((names is not None and names.match(name))
                    or (whole is not None and whole.match(path)))

    found = []
    for top in dirs:
        for root, subdirs, files in os.walk(top):
            # Only the last name is looked at: the directories on the way to it were as
            # the walk went down them.
            subdirs[:] = [d for d in subdirs if kept(os.path.join(root, d), d)]
            found += [p for f in files if kept(p := os.path.join(root, f), f)]
    return found


def merge_roots(roots: Iterable[tuple[str, bool]]) -> dict[str, bool]:
    """Fewest schedules: a recursive root swallows everything below it."""
    wanted: dict[str, bool] = {}
    for directory, recursive in roots:
        wanted[directory] = wanted.get(directory, False) or recursive
    recursive_roots = [d for d, r in wanted.items() if r]
    return {
        d: r
        for d, r in sorted(wanted.items())
        if not any(d != top and under(d, [top]) for top in recursive_roots)
    }


def symlinks(path: str, islink: Callable[[str], bool] = os.path.islink) -> list[str]:
    """The symlinks among `path` and the directories above it (a deploy's `current`).

    >>> symlinks("/srv/current/", islink=lambda p: p == "/srv/current")
    ['/srv/current']
    """
    parts = os.path.abspath(path).split(os.sep)
    prefixes = (os.sep.join(parts[:i]) for i in range(2, len(parts) + 1))
    return [p for p in prefixes if islink(p)]


def resolve(paths: Iterable[str], base: str) -> tuple[str, ...]:
    """Absolute real paths; relative ones are relative to `base` (the script's directory)."""
    return tuple(
        os.path.realpath(os.path.join(base, os.path.expanduser(p))) for p in paths
    )


def trigger_path(given: str, base: str) -> str:
    """The trigger's path: relative to `base` (the script's directory), `~` expanded,
    normalised, and never resolved.

    >>> trigger_path("tmp/../deploy.stamp", "/srv/current")
    '/srv/current/deploy.stamp'
    """
    return os.path.abspath(os.path.join(base, os.path.expanduser(given)))


def stdlib_like(path: str) -> bool:
    """True for the interpreter's own trees, which must never be watched recursively."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return path in {os.path.realpath(p) for p in prefixes} or path == os.sep


# Filesystems where native events miss changes made by other machines (or the host).
REMOTE_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "drvfs", "vboxsf", "fuse", "afs", "ceph",
     "glusterfs", "sshfs", "davfs", "prl_fs", "vmhgfs"}
)


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) pairs from /proc/self/mounts text.

    `text` is the table decoded with `os.fsdecode`, as `watcher` reads it.

    >>> parse_mounts("srv:/x /mnt/café nfs4 rw 0 0")
    [('/mnt/café', 'nfs4')]
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((unescape_mount(fields[1]), fields[2]))
    return mounts


# The kernel writes space, tab, newline and backslash in a mount point as \ooo.
_OCTAL = re.compile(rb"\\([0-3][0-7]{2})")


def unescape_mount(field: str) -> str:
    """A mount point as the filesystem names it: only the \\ooo escapes decoded, on bytes,
    so a raw UTF-8 (or any other) name is left as it is.

    >>> unescape_mount(r"/mnt/my\\040café")
    '/mnt/my café'
    """
    raw = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), os.fsencode(field))
    return os.fsdecode(raw)


def filesystem_of(path: str, mounts: Iterable[tuple[str, str]]) -> str:
    """The type of the filesystem holding `path` (the longest mount point above it)."""
    best, kind = "", ""
    for point, fstype in mounts:
        if under(path, [point]) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def remote(fstype: str) -> bool:
    """True for network and host-shared filesystems, which must be polled."""
    return fstype in REMOTE_FILESYSTEMS or fstype.startswith(("fuse.", "nfs"))
