"""Django's template directories, read from what the project has already built.

The engines the app built are read as they are; until it has built one (before its
first template), `settings.TEMPLATES` and the app registry say what they will be.
`engines.all()` is never called: it would build every configured backend, importing it
and running its code. Since Django 4.1 the cached loader wraps the default loaders
whenever `loaders` is not set, DEBUG or not: those directories need watching.

>>> list(find({}, {}, [], isdir=lambda path: True))
[]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

Modules = Mapping[str, Any]
Findings = Iterator[tuple[list[str], str]]  # (directories, note) per engine
CACHED_LOADER = "django.template.loaders.cached.Loader"


def find(
    modules: Modules, project: Modules, apps: list[object], isdir: Callable[[str], bool]
) -> Findings:
    conf, template = modules.get("django.conf"), modules.get("django.template")
    if conf is None or not getattr(conf.settings, "configured", False):
        return  # settings not read yet: reading them now would configure Django
    registry = modules.get("django.apps")
    built = getattr(getattr(template, "engines", None), "_engines", None)
    if built:  # the engines the app built, as they are
        for alias, backend in list(built.items()):
            yield _django_backend(alias, backend)
        return
    for spec in getattr(conf.settings, "TEMPLATES", None) or []:
        yield _django_setting(spec, conf.settings, registry, isdir)


def reset(modules: Modules) -> None:
    """Empty the template caches of the engines the app built (`empty()`)."""
    handler = getattr(modules.get("django.template"), "engines", None)
    if handler is not None:
        empty(handler)


def empty(handler: Any) -> None:
    """Empty the template caches of the engines in Django's `engines` handler: each
    cached loader (Django's autoreloader does the same on a template change) and each
    Jinja2 backend's compiled templates. The engines stay, as the app built them."""
    for backend in list(getattr(handler, "_engines", {}).values()):
        engine = getattr(backend, "engine", None)
        if engine is not None and "template_loaders" in vars(engine):
            for loader in engine.template_loaders:
                loader.reset()
        cache = getattr(getattr(backend, "env", None), "cache", None)
        if cache is not None:
            cache.clear()


def _django_backend(alias: str, backend: Any) -> tuple[list[str], str]:
    engine = getattr(backend, "engine", None)
    env = getattr(backend, "env", None)
    if engine is not None:  # DjangoTemplates
        if not _cached(engine.loaders):
            return [], f"django engine {alias!r}: no cached loader, reads templates itself"
        return list(_safe_dirs(backend)), f"django engine {alias!r}: cached loader"
    if env is not None:  # the Jinja2 backend
        if getattr(env, "auto_reload", False):
            return [], f"django engine {alias!r}: jinja2 auto_reload on"
        return list(_safe_dirs(backend)), f"django engine {alias!r}: jinja2 auto_reload off"
    return [], f"django engine {alias!r}: unknown backend, not watched"


def _safe_dirs(backend: Any) -> list[str]:
    try:
        return [os.fspath(d) for d in backend.template_dirs]
    except Exception:  # the app registry not ready yet: the first request looks again
        return [os.fspath(d) for d in backend.dirs]


def _django_setting(
    spec: Mapping[str, Any], settings: Any, registry: Any, isdir: Callable[[str], bool]
) -> tuple[list[str], str]:
    backend = str(spec.get("BACKEND", ""))
    name = spec.get("NAME", backend.rsplit(".", 2)[-2] if "." in backend else backend)
    options = spec.get("OPTIONS") or {}
    if backend.endswith("jinja2.Jinja2"):
        if options.get("auto_reload", getattr(settings, "DEBUG", False)):
            return [], f"django engine {name!r}: jinja2 auto_reload on"
        subdir, why = "jinja2", "jinja2 auto_reload off"
    elif backend.endswith("django.DjangoTemplates"):
        # Since Django 4.1 the cached loader wraps the default loaders, DEBUG or not.
        if "loaders" in options and not _cached(options["loaders"]):
            return [], f"django engine {name!r}: no cached loader, reads templates itself"
        subdir, why = "templates", "cached loader"
    else:
        return [], f"django engine {name!r}: unknown backend, not watched"
    dirs = [os.fspath(d) for d in spec.get("DIRS") or []]
    if spec.get("APP_DIRS"):
        dirs += [d for d in _app_dirs(registry, subdir) if isdir(d)]
    return dirs, f"django engine {name!r}: {why}"


def _app_dirs(registry: Any, subdir: str) -> list[str]:
    apps = getattr(registry, "apps", None)
    if apps is None or not getattr(apps, "apps_ready", False):
        return []  # the first request looks again, once the registry is ready
    return [os.path.join(c.path, subdir) for c in apps.get_app_configs() if c.path]


def _cached(loaders: Iterable[Any]) -> bool:
    """Whether a Django `loaders` list goes through the cached loader.

    >>> _cached([("django.template.loaders.cached.Loader", ["x.Loader"])])
    True
    >>> _cached(["django.template.loaders.filesystem.Loader"])
    False
    """
    for loader in loaders or []:
        name = loader[0] if isinstance(loader, list | tuple) else loader
        if name == CACHED_LOADER:
            return True
    return False
