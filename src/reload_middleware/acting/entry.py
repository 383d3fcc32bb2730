"""How the import preflight loads the application: the way the server itself did.

A fresh interpreter can import a module by name only when the server imported it by
name. mod_wsgi and uWSGI's `--wsgi-file` execute a file under a name they make up, which
no finder knows; so do `python app.py`, `reload-middleware serve` and PasteDeploy's
stand-in for an ini file. One rule, for the runtime's preflight and for `doctor`:

| the server loaded the app                  | its module is named       | the preflight      |
|--------------------------------------------|---------------------------|--------------------|
| mod_wsgi, a script of any suffix           | `_mod_wsgi_<md5 of path>` | runs the file      |
| uWSGI `--wsgi-file`                        | `uwsgi_file_<path>`       | runs the file      |
| uWSGI `--module`, gunicorn `module:app`    | the module's own name     | imports the name   |
| PasteDeploy (`pserve`, `gunicorn --paste`) | a stand-in for the ini    | `loadapp` the ini  |
| `python app.py`, `reload-middleware serve` | `__main__`, a made-up one | runs the file      |

The modules imported after the app (changed ones the app imports only on a request,
as Django does its views) are only those importable by name in the same sense.

>>> of("_mod_wsgi_5d41402abc4b2a76", "/srv/app/app.wsgi")
Entry(how='path', target='/srv/app/app.wsgi')
>>> of("myproject.wsgi", "/srv/myproject/wsgi.py", find=lambda top: top == "myproject")
Entry(how='name', target='myproject.wsgi')
>>> after(Entry("path", "/srv/app/app.wsgi"), ["uwsgi_file__srv_app_app_wsgi", "myproject.views"],
...       find=lambda top: True)
['myproject.views']
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

How = Literal["path", "name", "ini"]

# Prefixes of the names given to a file executed as a module: mod_wsgi's scripts,
# uWSGI's --wsgi-file, this package's `serve`/`doctor` and ini stand-ins, and dunder
# names (`__main__`). No finder of a fresh interpreter knows them.
MADE_UP = ("_mod_wsgi_", "uwsgi_file_", "_reload_middleware_", "__")
# On sys.meta_path, but not what a fresh interpreter would find a project module with:
# the built-ins of the embedding server (uWSGI's `uwsgi`) and frozen modules.
_NOT_FRESH = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter)


@dataclass(frozen=True)
class Entry:
    """How to load the app: run a file (`path`), import a module (`name`), or load a
    PasteDeploy file's main application (`ini`); `target` is the file or the name."""

    how: How
    target: str

    def __str__(self) -> str:
        """For the log and `doctor`: `runs /srv/app/app.wsgi by path`."""
        if self.how == "name":
            return f"imports {self.target} by name"
        if self.how == "ini":
            return f"loads {self.target} with PasteDeploy"
        return f"runs {self.target} by path"


def findable(top: str) -> bool:
    """Whether a fresh interpreter with this sys.path finds the top-level module `top`.

    Asks the finders on sys.meta_path (the path finder, and those that `.pth` files of
    editable installs add), never sys.modules: that holds the names servers made up.
    Ours is skipped: it only asks the others, and would note the lookup as an import.
    """
    for finder in sys.meta_path:
        if finder in _NOT_FRESH or type(finder).__module__.startswith("reload_middleware."):
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None and find_spec(top, None) is not None:
            return True
    return False


def importable(name: str, find: Callable[[str], bool] = findable) -> bool:
    """Whether a fresh interpreter can import the module `name` by name.

    >>> importable("uwsgi_file__srv_app_app_wsgi", find=lambda top: True)
    False
    """
    if not name or name.startswith(MADE_UP):
        return False
    return find(name.partition(".")[0])


def of(name: str, path: str, find: Callable[[str], bool] = findable) -> Entry:
    """How the server loaded the app whose script module is `name`, from the file `path`."""
    if importable(name, find):
        return Entry("name", name)
    if path.endswith(".ini"):  # PasteDeploy's stand-in module for an ini file
        return Entry("ini", path)
    return Entry("path", path)


def after(entry: Entry, names: Iterable[str], find: Callable[[str], bool] = findable
          ) -> list[str]:
    """Of the module `names`, those to import after loading the app by `entry`: the ones
    importable by name, other than the app's own module."""
    return [n for n in names if n != entry.target and importable(n, find)]
