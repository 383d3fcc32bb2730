"""What do frameworks cache across an in-process reload? Django: settings, URLs, templates,
translation catalogs.

An in-process reload drops the project's modules and runs the script again, but keeps
the framework's own modules, and with them what they cached from the old project:
Django's settings object holds the old settings module's values, its URL resolver the
old URLconf and views, its template engines the old cached templates, its translation
module the catalogs as they were. `reset()` empties those caches, so the re-executed
script and the next requests read the project anew.
Flask and Pyramid keep such state on the app object, which the script builds anew.

What no reset fixes is said once at startup (`caveat()`): Django's app registry is
populated once per process, so changes to models or `INSTALLED_APPS` need a restart.

>>> reset({})          # nothing loaded: nothing to do
>>> caveat({}) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import django_templates, translations

Modules = Mapping[str, Any]


def reset(modules: Modules) -> None:
    """Empty the caches Django's modules hold of the project (those loaded only)."""
    conf = modules.get("django.conf")
    settings = getattr(conf, "settings", None)
    if conf is None or settings is None or not getattr(settings, "configured", False):
        return
    if isinstance(settings._wrapped, conf.Settings):
        # Read again from DJANGO_SETTINGS_MODULE on the next access (not settings given
        # to settings.configure(), which have no module to read again).
        settings._wrapped = conf.empty
    translations.reset(modules, {}, [])  # the catalogs, read again from the files
    urls = modules.get("django.urls")
    if urls is not None:
        urls.clear_url_caches()  # the resolver holds the old URLconf and its views
    template = modules.get("django.template")
    handler = getattr(template, "engines", None)
    if handler is not None:
        reset_engines(handler)


def reset_engines(handler: Any) -> None:
    """Forget the template engines built (and `TEMPLATES` as read): rebuilt on next use,
    as the app would build them. Their cached loaders are reset first, for whoever still
    holds an engine (Django's autoreloader does the same)."""
    django_templates.empty(handler)
    handler._engines.clear()
    vars(handler).pop("templates", None)  # a cached_property over settings.TEMPLATES


def caveat(modules: Modules) -> str | None:
    """What an in-process reload cannot pick up in the frameworks loaded, or None."""
    if "django.apps" not in modules:
        return None
    return ("Django: an in-process reload picks up views, URLconfs, settings values, "
            "templates and translations, not models or INSTALLED_APPS (the app registry is "
            "populated once per process): for those, run under mod_wsgi daemon mode or set "
            "mode=restart")
