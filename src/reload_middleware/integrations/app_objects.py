"""Finding the framework objects an app has built, without building any.

Template engines and translation catalogs hang off objects the app made: the WSGI app
it hands over (through the wrappers middlewares commonly add) and objects at module
level of the project's own modules. Everything here reads namespaces as they are:
never a property or `__getattr__`, since a lazy object would be built by looking.

>>> class App: pass
>>> outer = App(); outer.wsgi_app = inner = App()
>>> [a is inner for a in unwrapped(outer)]
[False, True]
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Modules = Mapping[str, Any]
_UNWRAP = ("app", "application", "wsgi_app", "__self__", "__wrapped__")  # common WSGI wrappers


def project(modules: Modules, library: Callable[[str], bool]) -> Modules:
    """The modules outside installed code: module-level objects are looked for in
    these only (a few, not thousands)."""
    return {name: m for name, m in list(modules.items())
            if isinstance(getattr(m, "__file__", None), str) and not library(m.__file__)}


def unwrapped(app: object, depth: int = 4) -> Iterator[object]:
    """The app and what it wraps, through the attributes middlewares commonly use.

    Read from the instance's own namespace (and a bound method's `__self__`).
    """
    seen: set[int] = set()
    todo = [(app, 0)]
    while todo:
        obj, level = todo.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if level < depth:
            namespace = namespace_of(obj)
            if type(obj) is types.MethodType:
                namespace = {**namespace, "__self__": obj.__self__}
            todo += [(namespace.get(a), level + 1) for a in _UNWRAP]


def is_a(value: object, cls: type) -> bool:
    """isinstance() by the real type: a lazy object's `__class__` would build it."""
    return issubclass(type(value), cls)


def namespace_of(obj: object) -> dict[str, Any]:
    """The instance's own `__dict__`, or {} (read past any `__getattr__`)."""
    try:
        found = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return {}
    return found if isinstance(found, dict) else {}


def module_globals(modules: Modules, cls: type) -> Iterator[Any]:
    """Instances of `cls` at module level of `modules` (each once)."""
    seen: set[int] = set()
    for module in list(modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for value in list(namespace.values()):
            if is_a(value, cls) and id(value) not in seen:
                seen.add(id(value))
                yield value


def flask_apps(modules: Modules, project: Modules, apps: list[object]) -> list[Any]:
    """The Flask apps: those among `apps` (the wrapped app unwrapped), then those at
    module level of the `project` modules; [] where Flask is not loaded."""
    cls = getattr(modules.get("flask"), "Flask", None)
    if not isinstance(cls, type):
        return []
    found: list[Any] = [a for a in apps if is_a(a, cls)]
    return found + [a for a in module_globals(project, cls) if all(a is not f for f in found)]
