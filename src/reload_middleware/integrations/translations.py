"""Which translation catalogs does the app read, and how are they read again?

Django reads a language's compiled catalogs (`.mo`) once per process, on its first use,
from `LOCALE_PATHS` and each installed app's `locale/` directory; Flask-Babel keeps
them per domain the same way. A recompiled catalog is served stale until the process
restarts, or until those caches are emptied, which is all that `reset()` does (Django's
own autoreloader does the like when a `.mo` file changes). Their directories are
watched like template directories (docs/templates.md, "Translations").

Like templates.py, this reads objects that already exist and never imports a module
the app did not import.

>>> list(find({}, {}, [], isdir=lambda path: True))
[]
>>> reset({}, {}, [])   # nothing loaded: nothing to do
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .app_objects import flask_apps, module_globals, namespace_of

Modules = Mapping[str, Any]
Findings = Iterator[tuple[list[str], str]]  # (directories, note) per framework

# Django's caches keyed by language that depend on which catalogs exist: a language
# whose first `.mo` file has just been compiled must be found (those present only).
_DJANGO_LOOKUPS = ("translation_catalog_exists", "check_for_language",
                   "_get_supported_language_variant", "get_supported_language_variant")


def find(modules: Modules, project: Modules, apps: list[object],
         isdir: Callable[[str], bool]) -> Findings:
    """The translation directories of Django and of Flask-Babel, where loaded."""
    yield from _django(modules, isdir)
    yield from _flask_babel(modules, project, apps)


def reset(modules: Modules, project: Modules, apps: list[object]) -> None:
    """Empty the catalog caches, so that each language is read again on its next use.

    Django's active language of each thread is kept (a request in flight finishes with
    the catalogs it started with; Django's LocaleMiddleware activates the language of
    each request anew, which reads the new ones): unlike Django's autoreloader, which
    replaces every thread's state at once, this runs while other requests are served.
    """
    gettext = modules.get("gettext")
    if gettext is not None and isinstance(getattr(gettext, "_translations", None), dict):
        gettext._translations.clear()  # the .mo files gettext.translation() has read
    trans_real = modules.get("django.utils.translation.trans_real")
    if trans_real is not None:
        trans_real._translations = {}  # one catalog per language, built on first use
        trans_real._default = None  # the catalog of LANGUAGE_CODE without an active one
        for name in _DJANGO_LOOKUPS:
            cache_clear = getattr(getattr(trans_real, name, None), "cache_clear", None)
            if cache_clear is not None:
                cache_clear()
    for domain in _babel_domains(modules, project, apps):
        cache = getattr(domain, "cache", None)
        if isinstance(cache, dict):
            cache.clear()


def _django(modules: Modules, isdir: Callable[[str], bool]) -> Findings:
    conf = modules.get("django.conf")
    if conf is None or not getattr(conf.settings, "configured", False):
        return  # settings not read yet: reading them now would configure Django
    settings = conf.settings
    if not getattr(settings, "USE_I18N", True):
        yield [], "django: USE_I18N off, no catalogs"
        return
    dirs = [os.fspath(d) for d in getattr(settings, "LOCALE_PATHS", None) or []]
    registry = getattr(modules.get("django.apps"), "apps", None)
    if registry is not None and getattr(registry, "apps_ready", False):
        dirs += [d for d in (os.path.join(c.path, "locale")
                             for c in registry.get_app_configs() if c.path) if isdir(d)]
    yield dirs, "django: catalogs read once per language"


def _flask_babel(modules: Modules, project: Modules, apps: list[object]) -> Findings:
    for config in _babel_configs(modules, project, apps):
        found = getattr(config, "translation_directories", None) or []
        yield [os.fspath(d) for d in found], "flask-babel: catalogs read once per locale"
    domain_cls = getattr(modules.get("flask_babel"), "Domain", None)
    if isinstance(domain_cls, type):
        for domain in module_globals(project, domain_cls):
            given = namespace_of(domain).get("_translation_directories")  # None: the app's
            if given:
                yield [os.fspath(d) for d in given], "flask-babel domain: catalogs read once"


def _babel_configs(modules: Modules, project: Modules, apps: list[object]) -> Iterator[Any]:
    """Flask-Babel's configuration of each Flask app found (wrapped or module level)."""
    if "flask_babel" not in modules:
        return
    for app in flask_apps(modules, project, apps):
        extensions = namespace_of(app).get("extensions")
        config = extensions.get("babel") if isinstance(extensions, dict) else None
        if config is not None:
            yield config


def _babel_domains(modules: Modules, project: Modules, apps: list[object]) -> Iterator[Any]:
    """The Flask-Babel domains whose caches hold catalogs: each app's default domain
    (once built) and the domains at module level of the project's modules."""
    for config in _babel_configs(modules, project, apps):
        built = namespace_of(getattr(config, "instance", None)).get("domain_instance")
        if built is not None:
            yield built
    domain_cls = getattr(modules.get("flask_babel"), "Domain", None)
    if isinstance(domain_cls, type):
        yield from module_globals(project, domain_cls)
