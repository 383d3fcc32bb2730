"""Which template directories need watching? Read from the frameworks the app has loaded.

A framework that re-reads a template when its file changes (Jinja2's `auto_reload`,
Mako's `filesystem_checks`, Pyramid's `reload_templates`) needs nothing from us. One
that caches compiled templates (Django's cached loader, Flask with debug off) serves
an edited template stale until the process restarts: its directories are watched like
`watch=` paths (docs/templates.md). The directories of translation catalogs
(translations.py) and, with live reload on, of static files (static_files.py) are
gathered here too: a save in any of them is decided alike (`Found`).

Everything here reads objects that already exist, found in a `sys.modules`-like
mapping and in the wrapped app: it never imports a framework the app did not import,
and never builds what the app did not build (Django's `engines.all()` would import and
instantiate every configured backend; Flask's `jinja_env` is read only once built).

>>> found = find({}, app=None)
>>> found.dirs, found.notes
((), ())
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..watching import paths
from ..watching.project_modules import Library
from . import app_objects, static_files, translations
from .app_objects import flask_apps, is_a, module_globals
from .django_templates import find as _django
from .django_templates import reset as reset_django

Modules = Mapping[str, Any]


@dataclass(frozen=True)
class Found:
    """Directories to watch, and one note per framework saying what was decided and why.
    `resettable`: those of `dirs` whose every engine `reset()` empties (Django's, Flask's
    and Jinja2's, the translation catalogs) or that hold static files (with live reload
    on): a save there needs no restart. `catalogs` and `static`: those of `resettable`
    that hold translation catalogs, and static files."""

    dirs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    resettable: tuple[str, ...] = ()
    catalogs: tuple[str, ...] = ()
    static: tuple[str, ...] = ()

    def describe(self) -> str:
        """For the start log line: the template directories, or why there are none,
        then the translation and static directories.

        >>> Found(("/srv/app/templates",), ("flask app 'app': cached",)).describe()
        '/srv/app/templates'
        >>> Found((), ("jinja2: auto_reload on",)).describe()
        'none (jinja2: auto_reload on)'
        >>> Found(("/srv/locale",), (), ("/srv/locale",), ("/srv/locale",)).describe()
        'none; translations /srv/locale'
        """
        others = {*self.catalogs, *self.static}
        named = [d for d in self.dirs if d not in others]
        if named:
            text = ", ".join(named)
        else:
            text = f"none ({'; '.join(self.notes)})" if self.notes and not others else "none"
        for kind, dirs in (("translations", self.catalogs), ("static", self.static)):
            text += f"; {kind} {', '.join(dirs)}" if dirs else ""
        return text

    def unreachable(self, changed: Iterable[str]) -> bool:
        """Whether every changed path lies in a template directory whose engine's cache
        `reset()` cannot reach (Pyramid's renderers): acted on as code.

        >>> Found(("/srv/app/templates",)).unreachable(["/srv/app/templates/a.pt"])
        True
        """
        fixed = [d for d in self.dirs if d not in self.resettable]
        return bool(fixed) and all(paths.under(path, fixed) for path in changed)

    def kinds(self, changed: Iterable[str]) -> frozenset[str]:
        """What a change of these resettable paths touches: "templates", "catalogs"
        (caches to empty), "static" (nothing to empty).

        >>> sorted(Found(catalogs=("/srv/locale",)).kinds(["/srv/locale/fr/x.mo", "/srv/t/a"]))
        ['catalogs', 'templates']
        """
        def kind(path: str) -> str:
            if paths.under(path, self.catalogs):
                return "catalogs"
            return "static" if paths.under(path, self.static) else "templates"

        return frozenset(kind(path) for path in changed)


def watched(option: str, app: object, library: Iterable[str], *, live: bool = False,
            static: Iterable[str] = ()) -> Found:
    """What the options ask for in this process: `find()` over `sys.modules`, leaving
    out the `library` roots (site-packages), or nothing when `templates` is "off"; with
    `live`, the static directories too, and the `static` option's (absolute) ones."""
    if option == "off":
        found = Found((), ("templates off",))
    else:
        found = find(sys.modules, app, library=Library(library).holds, live=live)
    extra = tuple(os.path.realpath(d) for d in static if live)
    extra = tuple(d for d in dict.fromkeys(extra) if d not in found.dirs)
    return dataclasses.replace(found, dirs=found.dirs + extra,
                               resettable=found.resettable + extra,
                               static=found.static + extra)


def find(
    modules: Modules,
    app: object,
    *,
    library: Callable[[str], bool] = lambda path: False,
    isdir: Callable[[str], bool] = os.path.isdir,
    live: bool = False,
) -> Found:
    """The template directories of every loaded framework that caches templates, the
    translation directories (translations.py) and, with `live`, the static directories
    (static_files.py).

    `modules`: `sys.modules` or a stand-in; `app`: the wrapped WSGI app (a Flask or
    Pyramid app is found through it and its usual wrappers); `library(path)`: True for
    installed code (site-packages), whose templates are left out.
    """
    dirs: dict[str, None] = {}
    notes: list[str] = []
    apps = list(app_objects.unwrapped(app))
    mine = app_objects.project(modules, library)
    fixed: set[str] = set()  # read by an engine whose cache reset() cannot empty
    kinds: dict[Callable[..., Findings], set[str]] = {translations.find: set(),
                                                       static_files.find: set()}
    finders = [_django, _flask, _jinja2, _mako, _pyramid, translations.find]
    for finder in finders + [static_files.find] * live:
        for found, note in finder(modules, mine, apps, isdir):
            notes.append(note)
            for d in found:
                real = os.path.realpath(d)
                if isdir(real) and not library(real):
                    dirs.setdefault(real, None)
                    if finder not in RESETTABLE:
                        fixed.add(real)
                    elif finder in kinds:
                        kinds[finder].add(real)
    resettable = tuple(d for d in dirs if d not in fixed)
    return Found(tuple(dirs), tuple(notes), resettable,
                 tuple(d for d in resettable if d in kinds[translations.find]),
                 tuple(d for d in resettable if d in kinds[static_files.find]))


def reset(app: object, library: Iterable[str], *, templates: bool = True,
          catalogs: bool = False, modules: Modules = sys.modules) -> None:
    """Empty the caches of what `find()` found resettable: with `templates`, the
    compiled templates of Django's engines (cached loaders, Jinja2 backends), of the
    Flask apps' environments, of the Jinja2 environments and Mako lookups (wrapped, or
    at module level of a module outside the `library` roots); with `catalogs`, the
    translation catalogs (translations.reset). Each is read again on its next use; the
    engines themselves, and all else, stay as they are."""
    mine = app_objects.project(modules, Library(library).holds)
    apps = list(app_objects.unwrapped(app))
    if catalogs:
        translations.reset(modules, mine, apps)
    if not templates:
        return
    reset_django(modules)
    envs = [a.__dict__.get("jinja_env") for a in flask_apps(modules, mine, apps)]
    jinja2 = getattr(modules.get("jinja2"), "Environment", None)
    if isinstance(jinja2, type):
        envs += list(module_globals(mine, jinja2))
    caches = [getattr(env, "cache", None) for env in envs]
    lookup = getattr(modules.get("mako.lookup"), "TemplateLookup", None)
    if isinstance(lookup, type):  # a lookup keeps its compiled templates by URI
        caches += [app_objects.namespace_of(found).get("_collection")
                   for found in module_globals(mine, lookup)]
    for cache in caches:
        if cache is not None:
            cache.clear()


Findings = Iterator[tuple[list[str], str]]  # (directories, note) per framework object


def _flask(
    modules: Modules, project: Modules, apps: list[object], isdir: Callable[[str], bool]
) -> Findings:
    flask = modules.get("flask")
    cls = getattr(flask, "Flask", None)
    if not isinstance(cls, type):
        return
    found = flask_apps(modules, project, apps)
    if not found:
        yield [], "flask: no Flask app found (neither wrapped nor at module level)"
    for app in found:
        env = app.__dict__.get("jinja_env")  # built on the first render only
        if env is not None:
            reload = env.auto_reload
        else:
            reload = app.jinja_options.get("auto_reload", app.config["TEMPLATES_AUTO_RELOAD"])
            reload = app.debug if reload is None else reload
        if reload:
            yield [], f"flask app {app.name!r}: auto_reload on"
            continue
        dirs = []
        for scaffold in [app, *app.iter_blueprints()]:
            if scaffold.template_folder is not None:
                dirs.append(os.path.join(scaffold.root_path, scaffold.template_folder))
        if env is not None:
            dirs += _loader_dirs(env.loader)
        yield dirs, f"flask app {app.name!r}: auto_reload off"


def _jinja2(
    modules: Modules, project: Modules, apps: list[object], isdir: Callable[[str], bool]
) -> Findings:
    jinja2 = modules.get("jinja2")
    cls = getattr(jinja2, "Environment", None)
    if not isinstance(cls, type):
        return
    for env in module_globals(project, cls):
        if type(env).__module__.startswith("flask"):
            continue  # a Flask app's own: decided with its app
        if env.auto_reload:
            yield [], "jinja2 environment: auto_reload on"
        else:
            yield _loader_dirs(env.loader), "jinja2 environment: auto_reload off"


def _loader_dirs(loader: Any, depth: int = 4) -> list[str]:
    """The directories a Jinja2 loader reads, through choice and prefix loaders."""
    if loader is None or depth == 0:
        return []
    dirs = [os.fspath(p) for p in getattr(loader, "searchpath", None) or []]
    root = getattr(loader, "_template_root", None)  # PackageLoader
    if isinstance(root, str):
        dirs.append(root)
    inner = list(getattr(loader, "loaders", None) or [])
    mapping = getattr(loader, "mapping", None)
    if isinstance(mapping, dict):
        inner += [v for v in mapping.values() if hasattr(v, "get_source")]
    for sub in inner:
        dirs += _loader_dirs(sub, depth - 1)
    return dirs


def _mako(
    modules: Modules, project: Modules, apps: list[object], isdir: Callable[[str], bool]
) -> Findings:
    lookup = modules.get("mako.lookup")
    cls = getattr(lookup, "TemplateLookup", None)
    if not isinstance(cls, type):
        return
    for found in module_globals(project, cls):
        if getattr(found, "filesystem_checks", True):
            yield [], "mako lookup: filesystem_checks on"
        else:
            yield list(found.directories), "mako lookup: filesystem_checks off"


def _pyramid(
    modules: Modules, project: Modules, apps: list[object], isdir: Callable[[str], bool]
) -> Findings:
    router = modules.get("pyramid.router")
    cls = getattr(router, "Router", None)
    if not isinstance(cls, type):
        return
    routers: list[Any] = [a for a in apps if is_a(a, cls)]
    for app in routers:
        settings = getattr(app.registry, "settings", None) or {}
        value = settings.get("pyramid.reload_templates", settings.get("reload_templates"))
        if str(value).strip().lower() in ("true", "yes", "on", "1", "t", "y"):
            yield [], "pyramid: reload_templates on"
            continue
        # Renderers name templates as assets of the app's packages (`pkg:templates/x`).
        dirs = [os.path.join(os.path.dirname(m.__file__), "templates")
                for m in project.values()
                if getattr(m, "__path__", None) and getattr(m, "__file__", None)]
        yield [d for d in dirs if isdir(d)], "pyramid: reload_templates off"


# The finders whose caches reset() reaches, and static files' (nothing to reach): a
# save in their directories is no restart.
RESETTABLE = (_django, _flask, _jinja2, _mako, translations.find, static_files.find)
