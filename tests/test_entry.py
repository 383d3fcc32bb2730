"""How the preflight loads the app: as each server did, by path, by name, or the ini."""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from pathlib import Path

import pytest

from reload_middleware.acting import entry
from reload_middleware.acting.entry import Entry

# Top-level names a fresh interpreter finds in these tables (the project's packages and
# modules on sys.path); anything else it does not.
ON_PATH = {"myproject", "app", "wsgi"}


def find(top: str) -> bool:
    return top in ON_PATH


def mod_wsgi(path: str) -> str:
    """The name mod_wsgi gives a script module: its own, from an md5 of the path."""
    return "_mod_wsgi_" + hashlib.md5(path.encode()).hexdigest()


def uwsgi_file(path: str) -> str:
    """The name uWSGI's --wsgi-file gives a file: the path with / and . as _, no .py."""
    name = "uwsgi_file_" + path.replace("/", "_").replace(".", "_")
    return name.removesuffix("_py")


SERVERS = [
    ("mod_wsgi-daemon-wsgi-script", mod_wsgi("/srv/app/app.wsgi"), "/srv/app/app.wsgi",
     Entry("path", "/srv/app/app.wsgi")),
    ("mod_wsgi-script-named-py", mod_wsgi("/srv/app/wsgi.py"), "/srv/app/wsgi.py",
     Entry("path", "/srv/app/wsgi.py")),
    ("mod_wsgi-express-handler", mod_wsgi("/tmp/express/handler.wsgi"),
     "/tmp/express/handler.wsgi", Entry("path", "/tmp/express/handler.wsgi")),
    ("uwsgi-wsgi-file-wsgi", uwsgi_file("/srv/app/app.wsgi"), "/srv/app/app.wsgi",
     Entry("path", "/srv/app/app.wsgi")),
    ("uwsgi-wsgi-file-py-in-cwd", uwsgi_file("app.py"), "/srv/app/app.py",
     Entry("path", "/srv/app/app.py")),
    ("uwsgi-module", "myproject.wsgi", "/srv/myproject/wsgi.py",
     Entry("name", "myproject.wsgi")),
    ("gunicorn-module-app", "app", "/srv/app/app.py", Entry("name", "app")),
    ("gunicorn-dotted-module", "myproject.wsgi", "/srv/myproject/wsgi.py",
     Entry("name", "myproject.wsgi")),
    ("pastedeploy-ini", "_reload_middleware_ini_0a1b", "/srv/app/development.ini",
     Entry("ini", "/srv/app/development.ini")),
    ("pastedeploy-in-a-mod_wsgi-script", mod_wsgi("/srv/app/app.wsgi"),
     "/srv/app/app.wsgi", Entry("path", "/srv/app/app.wsgi")),
    ("python-app-py", "__main__", "/srv/app/app.py", Entry("path", "/srv/app/app.py")),
    ("serve-command", "_reload_middleware_serve_0a1b2c", "/srv/app/app.wsgi",
     Entry("path", "/srv/app/app.wsgi")),
    ("module-off-the-path", "lost.wsgi", "/elsewhere/lost/wsgi.py",
     Entry("path", "/elsewhere/lost/wsgi.py")),
]


@pytest.mark.parametrize(("name", "path", "expected"), [s[1:] for s in SERVERS],
                         ids=[s[0] for s in SERVERS])
def test_the_app_is_loaded_as_its_server_loaded_it(name: str, path: str, expected: Entry) -> None:
    """By path where the server executed a file under a name it made up; by name where
    it imported a module; the ini where PasteDeploy loaded one."""
    assert entry.of(name, path, find) == expected


AFTER = [
    ("modules-of-the-project", ["myproject.views", "myproject.models"],
     ["myproject.views", "myproject.models"]),
    ("uwsgi-script-name", [uwsgi_file("/srv/app/app.wsgi"), "myproject.views"],
     ["myproject.views"]),
    ("mod_wsgi-script-name", [mod_wsgi("/srv/app/app.wsgi")], []),
    ("main-and-dunders", ["__main__", "__reload_middleware_main__"], []),
    ("top-level-not-found", ["lost.views", "myproject.views"], ["myproject.views"]),
    ("the-app-itself", ["myproject.wsgi", "myproject.views"], ["myproject.views"]),
    ("empty-name", [""], []),
]


@pytest.mark.parametrize(("names", "expected"), [a[1:] for a in AFTER], ids=[a[0] for a in AFTER])
def test_only_names_a_fresh_interpreter_can_import_come_after(
    names: list[str], expected: list[str]
) -> None:
    """The changed modules imported after the app: never a made-up name, nor one whose
    top level no finder finds, nor the app's own module again."""
    assert entry.after(Entry("name", "myproject.wsgi"), names, find) == expected


@pytest.mark.parametrize(
    ("start", "text"),
    [(Entry("path", "/srv/app/app.wsgi"), "runs /srv/app/app.wsgi by path"),
     (Entry("name", "myproject.wsgi"), "imports myproject.wsgi by name"),
     (Entry("ini", "/srv/app/development.ini"), "loads /srv/app/development.ini with PasteDeploy")],
    ids=["path", "name", "ini"],
)
def test_entry_says_what_it_does(start: Entry, text: str) -> None:
    """The log line and doctor say how the app was loaded."""
    assert str(start) == text


def test_findable_asks_the_finders_not_sys_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module on sys.path is found; a name only sys.modules holds (as a server's script
    module, or its built-in module) is not."""
    (tmp_path / "entry_probe_on_path.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setitem(sys.modules, "entry_probe_loaded_only",
                        types.ModuleType("entry_probe_loaded_only"))
    assert entry.findable("entry_probe_on_path")
    assert not entry.findable("entry_probe_loaded_only")
    assert not entry.findable("sys")  # built into this interpreter: no project module
