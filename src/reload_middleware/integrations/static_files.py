"""Which directories hold the app's static files? Watched for live reload only.

A saved stylesheet needs no restart, only the open pages' stylesheets swapped; any other
static file needs the pages reloaded, and nothing of the server. So with `live` on, the
directories the frameworks serve static files from are watched (docs/live-reload.md,
"Stylesheets"): Django's `STATICFILES_DIRS` and, with `django.contrib.staticfiles`
installed, each app's `static/`; each Flask app's and blueprint's `static_folder`.
Like templates.py, this reads objects that already exist.

>>> list(find({}, {}, [], isdir=lambda path: True))
[]
>>> stylesheet("/srv/app/static/site.css"), stylesheet("/srv/app/static/app.js")
(True, False)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .app_objects import flask_apps

Modules = Mapping[str, Any]
Findings = Iterator[tuple[list[str], str]]  # (directories, note) per framework
STATICFILES = "django.contrib.staticfiles"


def stylesheet(path: str) -> bool:
    """Whether a static file is a stylesheet, which open pages swap in place."""
    return path.lower().endswith(".css")


def find(modules: Modules, project: Modules, apps: list[object],
         isdir: Callable[[str], bool]) -> Findings:
    """The static directories of Django and of the Flask apps, where loaded."""
    yield from _django(modules, isdir)
    for app in flask_apps(modules, project, apps):
        dirs = [getattr(app, "static_folder", None)]
        dirs += [getattr(b, "static_folder", None) for b in list(app.blueprints.values())]
        yield [d for d in dirs if isinstance(d, str)], f"flask app {app.name!r}: static"


def _django(modules: Modules, isdir: Callable[[str], bool]) -> Findings:
    conf = modules.get("django.conf")
    if conf is None or not getattr(conf.settings, "configured", False):
        return  # settings not read yet: reading them now would configure Django
    settings = conf.settings
    # An entry is a directory, or (prefix, directory).
    dirs = [os.fspath(d[1] if isinstance(d, list | tuple) else d)
            for d in getattr(settings, "STATICFILES_DIRS", None) or []]
    registry = getattr(modules.get("django.apps"), "apps", None)
    if (STATICFILES in (getattr(settings, "INSTALLED_APPS", None) or ())
            and registry is not None and getattr(registry, "apps_ready", False)):
        dirs += [d for d in (os.path.join(c.path, "static")
                             for c in registry.get_app_configs() if c.path) if isdir(d)]
    yield dirs, "django: static"
