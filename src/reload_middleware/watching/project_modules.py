"""Which modules are project code? Their files, real paths, and the installed packages.

A module is project code when its file is outside the stdlib, site-packages and this
package, by the path Python imported it from and by its real path. Each directory is
resolved and listed once per pass, so a pass over thousands of modules makes a few
system calls per directory, not per module.

>>> import sys
>>> project = ProjectModules(library_roots())
>>> "json" in project(sys.modules)
False
"""

from __future__ import annotations

import os
import site
import stat
import sysconfig
from collections.abc import Iterable, Mapping
from types import ModuleType

# This package's own directory (this module is one folder down in it): never project code.
OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def library_roots() -> tuple[str, ...]:
    """Directories whose modules are not project code: stdlib, site-packages, this package."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(getattr(site, "getsitepackages", list)())
    roots.add(site.getusersitepackages())
    roots.add(OWN)
    return tuple(sorted({os.path.realpath(r) for r in roots if r}))


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

    def gone(self, directory: str, name: str) -> str | None:
        """Where `name` in `directory` was, if it is no more: a module whose file was
        deleted or moved away since its import is still code being served (tracked_files.py)."""
        prefix, listing = self._place(directory)
        if listing is None or name in listing or not os.path.isdir(prefix):
            return None
        return prefix + name

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
        return None if path is None else self.project_path(path)

    def project_path(self, path: str) -> str | None:
        """The real path of a file of the project as imported; None for library files."""
        directory, name = split(path)
        installed = self._installed.get(directory)
        if installed is None:
            installed = self._installed[directory] = self.holds(
                os.path.join(os.path.abspath(directory), "")
            ) or self.holds(self.real.prefix(directory))
        if installed:
            return None
        real = self.real.entry(directory, name) or self.real.gone(directory, name)
        if real is None or self.holds(real):
            return None
        return path if real == path else real  # the module's own string: kept once


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


def project_files(paths: Iterable[str], scope: str, library: Iterable[str]) -> dict[str, str]:
    """{file as imported: real file} for the module files to track (`project_modules()`
    for files whose module may not exist: one that failed to import, say)."""
    if scope == "off":
        return {}
    roots = Library(library)
    own = OWN
    found = {}
    for path in paths:
        source = path[:-1] if path.endswith((".pyc", ".pyo")) else path
        real = roots.real.file(source) if scope == "all" else roots.project_path(source)
        if real and not real.startswith(own + os.sep):
            found[path] = real
    return found


class ProjectModules:
    """`project_modules(modules, "project", library)`, pass after pass over sys.modules.

    Each module is classified once per name and imported file: an in-process reload
    imports the same names from the same files again, so a later pass costs a dict
    lookup per module where the first makes system calls. `forget()` when real paths
    may have moved (a release symlink swapped).
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
