"""Which module built the middleware? The script, as the server named it, and the hook
mod_wsgi asks of it.

    script = find_script()  # in ReloadMiddleware.__init__: the module that called it
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    """The module that built the middleware: its name in sys.modules and its file as the
    server named it, through any release symlink (`/srv/current/app.wsgi`)."""

    name: str
    given: str

    @property
    def path(self) -> str:
        """The real file now: after a release switch, the new release's."""
        return os.path.realpath(self.given)

    @property
    def directory(self) -> str:
        return os.path.dirname(self.given)


def find_script(depth: int = 2) -> Script | None:
    """The first caller outside this package that is a module with a file."""
    frame = sys._getframe(depth)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        path = frame.f_globals.get("__file__")
        if not name.startswith("reload_middleware") and isinstance(path, str):
            return Script(name, os.path.abspath(path))
        frame = frame.f_back  # type: ignore[assignment]
    return None


def offer_hook(script: Script | None, hook: Callable[[str], bool]) -> None:
    """Give a mod_wsgi script module `hook` as its `reload_required`, unless it defines
    its own (the module is in sys.modules while it executes)."""
    if script is None or not script.name.startswith("_mod_wsgi_"):
        return
    module = sys.modules.get(script.name)
    if module is not None:
        vars(module).setdefault("reload_required", hook)
