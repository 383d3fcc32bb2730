"""Which files? Module files, watch paths, exclude patterns and where to put watches (pure).

>>> excluded("/srv/app/.app.py.swp", DEFAULT_EXCLUDES)
True
>>> merge_roots([("/srv/app", False), ("/srv/app/pkg", True), ("/srv/app/pkg/sub", True)])
{'/srv/app': False, '/srv/app/pkg': True}
"""

from __future__ import annotations

import fnmatch
import os
import site
import stat
import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType

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
    below = path[len(within.rstrip(os.sep)) + 1 :] if within and under(path, [within]) else path
    parts = below.split(os.sep)
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatchcase(path, pattern):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts if part):
            return True
    return False


def library_roots() -> tuple[str, ...]:
    """Directories whose modules are not project code: stdlib, site-packages, this package."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(getattr(site, "getsitepackages", list)())
    roots.add(site.getusersitepackages())
    roots.add(os.path.dirname(os.path.abspath(__file__)))
    return tuple(sorted({os.path.realpath(r) for r in roots if r}))


def under(path: str, roots: Iterable[str]) -> bool:
    """True when `path` is one of `roots` or inside one."""
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class RealPaths:
    """`os.path.realpath` for many module files, with a system call per directory only.

    One instance per pass over sys.modules, never kept: a release symlink swapped
    later must be seen by the next pass. Each directory is resolved once, and whether
    a file is a regular file or a symlink (then resolved on its own) comes from one
    listing of its directory rather than a stat per file.
    """

    def __init__(self) -> None:
        self._dirs: dict[str, tuple[str, dict[str, int] | None]] = {}

    def file(self, path: str) -> str | None:
        """The real path of `path` if it is a file, else None."""
        return self.entry(*split(path))

    def prefix(self, directory: str) -> str:
        """The real path of a directory, ending in a separator."""
        return self._place(directory)[0]

    def entry(self, directory: str, name: str) -> str | None:
        """`file()` of `name` in `directory`."""
        prefix, listing = self._place(directory)
        real = prefix + name
        mode = listing.get(name, 0) if listing is not None else _lstat_mode(real)
        if stat.S_ISLNK(mode):
            real = os.path.realpath(real)
            return real if os.path.isfile(real) else None
        return real if stat.S_ISREG(mode) else None

    def _place(self, directory: str) -> tuple[str, dict[str, int] | None]:
        """(real directory ending in a separator, its listing), looked up once."""
        place = self._dirs.get(directory)
        if place is None:
            real = os.path.realpath(directory)
            place = self._dirs[directory] = (os.path.join(real, ""), _listing(real))
        return place


def _listing(directory: str) -> dict[str, int] | None:
    """{name: S_IFREG, S_IFLNK or 0} for a directory's entries; None if unlistable."""
    try:
        with os.scandir(directory) as entries:
            return {entry.name: _kind(entry) for entry in entries}
    except OSError:  # searchable but not readable (--x): a stat per file then
        return None


def _kind(entry: os.DirEntry[str]) -> int:
    try:
        if entry.is_symlink():
            return stat.S_IFLNK
        return stat.S_IFREG if entry.is_file(follow_symlinks=False) else 0
    except OSError:
        return 0


def _lstat_mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def split(path: str) -> tuple[str, str]:
    """`os.path.split`, at the cost of a string method where the separator is `/` alone."""
    if os.altsep:
        return os.path.split(path)
    head, sep, name = path.rpartition(os.sep)
    return head or sep, name


def _imported(module: ModuleType) -> str | None:
    """A module's source file as Python imported it, as given (no system call)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path:
        return None
    return path[:-1] if path.endswith((".pyc", ".pyo")) else path


def source_path(module: ModuleType) -> str | None:
    """The absolute path of a module's source file as it was imported (no system call)."""
    path = _imported(module)
    return None if path is None else os.path.abspath(path)


def module_file(module: ModuleType, *, real: bool = True) -> str | None:
    """The (real) path of a module's source file, if it has one on disk."""
    path = source_path(module)
    if path is None:
        return None
    if real:
        return RealPaths().file(path)
    return path if os.path.isfile(path) else None


class Library:
    """The interpreter's and installed packages' roots, asked about many modules in a row.

    One instance per pass over sys.modules (its RealPaths must not outlive the pass).
    Each module's directory is looked at once, by the path Python imported it from (the
    stdlib and site-packages are settled there) and by its real path.
    """

    def __init__(self, roots: Iterable[str]) -> None:
        self._roots = frozenset(roots)
        self._prefixes = tuple(r.rstrip(os.sep) + os.sep for r in self._roots)
        self.real = RealPaths()
        self._installed: dict[str, bool] = {}  # imported directory -> under a root

    def holds(self, path: str) -> bool:
        """`under(path, roots)`, fast."""
        return path in self._roots or path.startswith(self._prefixes)

    def has(self, module: ModuleType) -> bool:
        """`is_library(module, roots)`."""
        path = source_path(module)
        if path is None:
            return False
        if self.holds(path) and os.path.isfile(path):
            return True
        real = self.real.file(path)
        return real is not None and self.holds(real)

    def project_file(self, module: ModuleType) -> str | None:
        """The real file of a project module; None for library modules and no file."""
        path = _imported(module)
        if path is None:
            return None
        directory, name = split(path)
        installed = self._installed.get(directory)
        if installed is None:
            installed = self._installed[directory] = self.holds(
                os.path.join(os.path.abspath(directory), "")
            ) or self.holds(self.real.prefix(directory))
        if installed:
            return None
        real = self.real.entry(directory, name)
        return None if real is None or self.holds(real) else real


def is_library(module: ModuleType, library: Iterable[str]) -> bool:
    """True for modules of the interpreter or installed packages.

    Both the path Python imported and its real path are checked: Debian's
    sitecustomize is a link from the stdlib into /etc.
    """
    return Library(library).has(module)


def project_modules(
    modules: Mapping[str, ModuleType | None], scope: str, library: Iterable[str]
) -> dict[str, str]:
    """{module name: real file} for the modules to track. `scope` is the modules option."""
    if scope == "off":
        return {}
    roots = Library(library)
    found = {}
    for name, module in list(modules.items()):
        if module is None or name == "__main__" or name.partition(".")[0] == "reload_middleware":
            continue
        if scope == "all":
            path = source_path(module)
            real = roots.real.file(path) if path else None
        else:
            real = roots.project_file(module)
        if real:
            found[name] = real
    return found


class ProjectModules:
    """`project_modules(modules, "project", library)`, pass after pass over sys.modules.

    Each module is classified once per name and imported file: an in-process reload
    imports the same names from the same files again, so a later pass costs a dict
    lookup per module where the first makes system calls (70 ms for 5,000 modules
    here). `forget()` when real paths may have moved (a release symlink swapped).

    >>> project = ProjectModules(library_roots())
    >>> "json" in project(sys.modules)
    False
    """

    def __init__(self, library: Iterable[str]) -> None:
        self._library = tuple(library)
        self._known: dict[str, tuple[object, str | None]] = {}  # name -> (__file__, real)

    def forget(self) -> None:
        self._known = {}

    def __call__(self, modules: Mapping[str, ModuleType | None]) -> dict[str, str]:
        """{module name: real file} of the project's modules among `modules`."""
        known, names, fresh, files = self._known, [], {}, {}
        for name, module in list(modules.items()):
            names.append(name)
            file = getattr(module, "__file__", None)
            entry = known.get(name)
            if entry is None or entry[0] != file:
                fresh[name], files[name] = module, file
        if fresh:
            found = project_modules(fresh, "project", self._library)
            known.update((name, (file, found.get(name))) for name, file in files.items())
        return {name: real for name in names if (real := known[name][1])}


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
    """The symlinks among the directories above `path` (a deploy's `current` link)."""
    parts = os.path.abspath(path).split(os.sep)
    prefixes = (os.sep.join(parts[:i]) for i in range(2, len(parts)))
    return [p for p in prefixes if islink(p)]


def resolve(paths: Iterable[str], base: str) -> tuple[str, ...]:
    """Absolute real paths; relative ones are relative to `base` (the script's directory)."""
    return tuple(
        os.path.realpath(os.path.join(base, os.path.expanduser(p))) for p in paths
    )


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
    """(mount point, filesystem type) pairs from /proc/self/mounts text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            point = fields[1].encode().decode("unicode_escape")  # \\040 is a space
            mounts.append((point, fields[2]))
    return mounts


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
