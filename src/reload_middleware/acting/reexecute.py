"""In-process reload: drop the project's modules, re-execute the script, take its app.

`reload()` returns what happened, `Reloaded` or `Failed`; the middleware swaps the app
or keeps the old one::

    outcome = reload(script, tracking.project, interpreter.current(), live=middleware)
"""

from __future__ import annotations

import importlib
import importlib._bootstrap
import importlib.util
import os
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from typing import TYPE_CHECKING, Any

from .. import file_reads
from ..script import Script
from .entry import importable
from .preflight import Failure, from_exception

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ..interpreter import Interpreter


@contextmanager
def _marked(place: Interpreter, path: str) -> Iterator[None]:
    """While the script runs again, a middleware it builds is a stand-in (middleware.py)."""
    place.mark(path, True)
    try:
        yield
    finally:
        place.mark(path, False)


@dataclass(frozen=True)
class Reloaded:
    """The script ran again: its application, when the run began, and the modules kept
    because another thread was importing them (they count as changed)."""

    app: WSGIApplication
    started: int
    kept: set[str]


@dataclass(frozen=True)
class Failed:
    """The script could not run again: the old application goes on serving."""

    failure: Failure


def reload(script: Script | None, project: Project, place: Interpreter, live: object,
           changed: Iterable[str] = ()) -> Reloaded | Failed:
    """Execute `script` again and take its application, unwrapped from the middleware it
    builds; the new module's `application` (and hook) then point back at `live`. The
    `changed` modules the script did not import are imported too, as the import
    preflight does: one that cannot be imported fails the reload, not later requests."""
    if script is None:
        return Failed(Failure("?", None, "no script module to re-execute", ""))
    started = time.time_ns()
    try:
        app, kept = reexecute(script, project, place, lambda module: _adopt(module, live),
                              changed)
        return Reloaded(app, started, kept)
    except Exception as exc:
        return Failed(from_exception(exc, script.path))


def _adopt(module: types.ModuleType, live: Any) -> WSGIApplication:
    app = getattr(module, "application", None)
    if app is None:
        raise LookupError("the script defines no 'application'")
    if isinstance(app, type(live)):  # the stand-in the script built
        namespace = vars(module)
        if namespace.get("reload_required") == app.reload_required:
            namespace["reload_required"] = live.reload_required
        namespace["application"] = live
        app = app.app
    return app  # type: ignore[no-any-return]


Project = Callable[[Mapping[str, "types.ModuleType | None"]], Mapping[str, str]]


def dropped(project: Project, modules: Mapping[str, types.ModuleType | None]) -> set[str]:
    """The names among `modules` that a reload drops: the project's modules.

    mod_wsgi's own script modules (`_mod_wsgi_*`) stay: mod_wsgi executes one again on
    the next request when it is missing, so dropping mod_wsgi-express's handler.wsgi
    would execute the app script a second time, after (or while) the reload does. The
    script that built the middleware is replaced by `reexecute()` itself.
    """
    return {name for name in project(modules) if not name.startswith("_mod_wsgi_")}


def in_flight(modules: Mapping[str, types.ModuleType | None]) -> set[str]:
    """The names among `modules` that another thread is importing now, and their parents.

    Dropping one from sys.modules, or the package it goes into, makes that import fail
    (KeyError in the import system); keeping it keeps what it read before the reload, so
    its file counts as changed afterwards. An import holds its module's lock from the
    moment it looks the module up to the moment it is done, so the live locks tell.
    """
    locks = getattr(importlib._bootstrap, "_module_locks", {})
    busy = {name for name, lock in list(locks.items()) if lock() is not None}
    busy.update(
        name for name, module in modules.items()
        if getattr(getattr(module, "__spec__", None), "_initializing", False)
    )
    parents = {name.rsplit(".", n)[0] for name in busy for n in range(1, name.count(".") + 1)}
    return (busy | parents) & set(modules)


def drop_stale_bytecode(files: set[str] | frozenset[str]) -> None:
    """Remove the cached .pyc of changed sources.

    The pyc header holds the source mtime in whole seconds: two saves within one
    second with the same size would otherwise load the first save's bytecode.
    """
    for path in files:
        if path.endswith(".py"):
            with suppress(OSError, NotImplementedError, ValueError):
                os.remove(importlib.util.cache_from_source(path))


def reexecute(script: Script, project: Project, place: Interpreter,
              adopt: Callable[[types.ModuleType], WSGIApplication],
              changed: Iterable[str] = ()) -> tuple[WSGIApplication, set[str]]:
    """Drop every project module, load the script afresh, import the `changed` modules
    it did not, and take its application with `adopt`: (that application, the names of
    the modules left in place because another thread was importing them). `project`
    classifies modules: `modules.ProjectModules`.

    Unless `in_place`, the old script module serves until the new one is complete. On
    any exception the previous sys.modules entries are restored and it propagates.
    """
    saved = dict(sys.modules)
    old_script = sys.modules.get(script.name)
    early = in_place(script)
    drop = dropped(project, saved)
    busy = in_flight({name: saved[name] for name in drop})
    gone = {name for name in drop if _gone(saved[name])}
    drop -= busy | gone
    leaving = (drop | {script.name}) if early else (drop - {script.name})
    for name in leaving - {"__main__"}:
        sys.modules.pop(name, None)
    unlinked = _unlink(drop, saved)
    importlib.invalidate_caches()
    try:
        with _marked(place, script.given):
            module = _execute(script, old_script, early=early)
        _reattach(gone)
        for name in sorted(set(changed) - set(sys.modules)):
            if importable(name, find=lambda top: True):  # not a made-up script name
                importlib.import_module(name)  # else the first request to import it fails
        app = adopt(module)
        if not early:
            sys.modules[module.__name__] = module  # complete: now mod_wsgi may find it
        return app, busy
    except BaseException:
        new = {n: m for n, m in list(sys.modules.items()) if n not in saved}
        unwanted = {n for n, m in new.items() if m is None or n == script.name}
        for name in dropped(project, new) | unwanted:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        for package, child, module in unlinked:
            setattr(package, child, module)
        raise


def _gone(module: types.ModuleType | None) -> bool:
    """Whether the file a module was loaded from is gone (deleted, or moved away during a
    deploy). Such a module stays loaded through a reload: what still imports it keeps
    working on the old code until the file is back, which is a change of its own."""
    path = getattr(module, "__file__", None)
    return isinstance(path, str) and not os.path.lexists(path)


def _reattach(kept: set[str]) -> None:
    """Put modules kept through a reload back on their packages loaded anew (loading
    them now if the script did not), so that `import package.module` then
    `package.module` still finds them: the import system finds the module in sys.modules
    and leaves its package as it is."""
    for name in sorted(kept):
        parent, _, child = name.rpartition(".")
        module = sys.modules.get(name)
        if not parent or module is None:
            continue
        package = sys.modules.get(parent) or importlib.import_module(parent)
        if not hasattr(package, child):
            with suppress(AttributeError, TypeError):
                setattr(package, child, module)

def in_place(script: Script) -> bool:
    """Whether the script's new module is in sys.modules while it executes, as an import
    puts it (a module it imports may import it back). Not a mod_wsgi script: mod_wsgi
    looks it up by name for each request, so other threads would find it half run (no
    `application`: mod_wsgi's 404) or missing (mod_wsgi runs the script itself), and
    nothing imports it. Nor `__main__`, run under another name (`_execute`).

    >>> in_place(Script("_mod_wsgi_0f3c", "/srv/app.wsgi")), in_place(Script("app", "/a.py"))
    (False, True)
    """
    return not script.name.startswith("_mod_wsgi_") and script.name != "__main__"


def _unlink(
    dropped: set[str], modules: Mapping[str, types.ModuleType | None]
) -> list[tuple[types.ModuleType, str, types.ModuleType]]:
    """Take dropped submodules off the packages that stay loaded (see `in_flight()`), so
    `from package import submodule` imports the new one; returns what it took."""
    unlinked: list[tuple[types.ModuleType, str, types.ModuleType]] = []
    for name in dropped:
        parent, _, child = name.rpartition(".")
        package, module = modules.get(parent), modules.get(name)
        if parent in dropped or package is None or module is None:
            continue
        entry = (package, child, module)  # before `is` narrows module to the attribute
        if vars(package).get(child) is module:
            with suppress(AttributeError, TypeError):
                delattr(package, child)
                unlinked.append(entry)
    return unlinked


def _execute(script: Script, old: types.ModuleType | None, *, early: bool
             ) -> types.ModuleType:
    """Execute the script afresh under its name, keeping what its server put on the old
    one; in sys.modules while it executes if `early` (`in_place`).

    Through its import spec when it has one (mod_wsgi gives its scripts one; packages and
    relative imports work), else compiled from its file. A script run as `__main__` is
    executed under another name, so its server block does not run.
    """
    spec = getattr(old, "__spec__", None) if script.name != "__main__" else None
    if isinstance(spec, ModuleSpec) and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        _keep_server_marks(old, module, script)
        if early:
            sys.modules[script.name] = module
        spec.loader.exec_module(module)
        return module
    name = "__reload_middleware_main__" if script.name == "__main__" else script.name
    module = types.ModuleType(name)
    module.__file__ = script.given
    _keep_server_marks(old, module, script)
    # As the server ran it: through a symlinked script too, never waiting on a FIFO.
    source = file_reads.read(script.given, follow=True)
    code = compile(source, script.given, "exec", dont_inherit=True)
    if early:
        sys.modules[name] = module
    exec(code, vars(module))
    return module


def _keep_server_marks(old: types.ModuleType | None, new: types.ModuleType, script: Script) -> None:
    """Before the new module is seen: what mod_wsgi checks on a script module before each
    request, so that it finds nothing to load again after our reload.

    `__mtime__` (the file's mtime in microseconds): without it, or with another value,
    mod_wsgi executes the script a second time.
    """
    if old is not None and "__mtime__" in vars(old):
        new.__mtime__ = os.stat(script.given).st_mtime_ns // 1000  # type: ignore[attr-defined]
