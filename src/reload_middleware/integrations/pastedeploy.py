"""PasteDeploy (and Pyramid's `pserve`): the middleware as a filter of an ini file.

PasteDeploy finds `filter_app_factory` through the `paste.filter_app_factory` entry point
`main`, for `use = egg:reload-middleware`, and calls it with the app it wraps, the
file's defaults (`here`, `__file__`) and the section's values, all strings::

    [filter:reload]
    use = egg:reload-middleware
    watch = templates
    settle = 0.2

    [pipeline:main]
    pipeline = reload myapp

Options take their text forms (docs/configuration.md); a list is split on newlines as
well, so one path a line reads as ini files usually do:

>>> ini_options({"watch": "templates\\n/srv/shared", "settle": "0.2"}, here="/srv/app")
{'watch': ('/srv/app/templates', '/srv/shared'), 'settle': '0.2'}

The script, whose re-execution is an in-process reload, is the mod_wsgi script that
called `loadapp` when there is one, else the ini file itself, loaded again by `loadapp`
with the arguments of the first call. Either way the ini file is tracked.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import config, interpreter
from ..digest import sha256_hex
from ..middleware import ReloadMiddleware
from ..script import Script

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# Options that name files: a relative one is relative to the ini file's directory.
PATHS = frozenset({"watch", "trigger", "static"})
LOADWSGI = "paste.deploy.loadwsgi"


def filter_app_factory(
    app: WSGIApplication, global_conf: Mapping[str, str], **local_conf: str
) -> ReloadMiddleware:
    """The `paste.filter_app_factory` entry point: `app` wrapped, options from the ini.

    A bad value raises at load, with the message a keyword gets.
    """
    ini = global_conf.get("__file__")
    here = global_conf.get("here") or (os.path.dirname(ini) if ini else os.getcwd())
    options = ini_options(local_conf, here)
    frame = sys._getframe(1)
    script = wsgi_script(frame)
    if ini is not None:
        options["watch"] = (*options.get("watch", ()), os.path.abspath(ini))
        script = script or ini_script(os.path.abspath(ini), loader_call(frame))
    return ReloadMiddleware._for_script(app, script, options)


def ini_options(local_conf: Mapping[str, str], here: str) -> dict[str, Any]:
    """Keyword options from an ini section's values (pure): lists split, paths made
    absolute against `here`; other values stay text, for the keyword check to parse."""
    options: dict[str, Any] = {}
    for name, text in local_conf.items():
        value: Any = text
        if name in config.LISTS:
            value = tuple(
                item for line in text.splitlines() for item in config.PARSERS[name](line)
            )
        if name in PATHS:
            value = _under(here, value)
        options[name] = value
    return options


def _under(here: str, value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(os.path.join(here, os.path.expanduser(v)) for v in value)
    return os.path.join(here, os.path.expanduser(value.strip())) if value.strip() else value


def wsgi_script(frame: types.FrameType | None) -> Script | None:
    """The mod_wsgi script module being executed up the stack from `frame`, if any."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        path = frame.f_globals.get("__file__")
        if name.startswith("_mod_wsgi_") and isinstance(path, str):
            return Script(name, os.path.abspath(path))
        frame = frame.f_back
    return None


def loader_call(frame: types.FrameType | None) -> dict[str, Any] | None:
    """The arguments of the outermost PasteDeploy `loadobj` call up the stack: how the
    application was asked for (uri, name, relative_to, global_conf)."""
    found = None
    while frame is not None:
        if frame.f_globals.get("__name__") == LOADWSGI and frame.f_code.co_name == "loadobj":
            found = frame.f_locals
        frame = frame.f_back
    if found is None:
        return None
    keys = ("uri", "name", "relative_to", "global_conf")
    call = {key: found.get(key) for key in keys}
    call["global_conf"] = dict(call["global_conf"] or {})
    return call


def ini_script(ini: str, call: Mapping[str, Any] | None) -> Script:
    """The ini file as the script: a module standing for it, whose execution runs
    `loadapp` again as `call` did (by default: the file's `main`)."""
    name = "_reload_middleware_ini_" + sha256_hex(ini.encode())[:32]
    if not interpreter.current().reexecuting(ini):  # being executed now: leave it as it is
        load = dict(call) if call else {"uri": f"config:{ini}"}
        spec = importlib.machinery.ModuleSpec(name, _IniLoader(load), origin=ini)
        module = importlib.util.module_from_spec(spec)
        module.__file__ = ini
        sys.modules[name] = module
    return Script(name, ini)


class _IniLoader(importlib.abc.Loader):
    """Executes an ini file's stand-in module: `application` is what `loadapp` builds."""

    def __init__(self, call: Mapping[str, Any]) -> None:
        self._call = dict(call)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        vars(module)["application"] = load_app(self._call)


def load_app(call: Mapping[str, Any], load: Callable[..., Any] | None = None) -> Any:
    """`loadapp(**call)`, PasteDeploy's unless `load` is given."""
    if load is None:
        from paste.deploy import loadapp  # only ever reached through PasteDeploy

        load = loadapp
    arguments = {k: v for k, v in call.items() if v is not None or k == "uri"}
    return load(arguments.pop("uri"), **arguments)
