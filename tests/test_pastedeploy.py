"""The PasteDeploy filter: real `loadapp` on real ini files, real files edited."""

from __future__ import annotations

import os
import sys
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from paste.deploy import loadapp

from helpers import DAY, Until, call, save
from reload_middleware import ReloadMiddleware
from reload_middleware.acting import entry, preflight
from reload_middleware.integrations.pastedeploy import ini_options
from reload_middleware.watching import watcher

PACKAGE = """\
import os

from . import views


def make_app(global_conf, greeting="hello"):
    with open(os.path.join(global_conf["here"], "data", "motto.txt")) as motto:
        text = motto.read().strip()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{greeting} {views.TEXT} {text}".encode()]

    return app
"""

INI = """\
[app:myapp]
use = call:{package}:make_app
greeting = {greeting}

[filter:reload]
use = egg:reload-middleware
settle = {settle}
watch = data

[pipeline:main]
pipeline = reload myapp
"""


class PasteProject:
    """A package with `make_app`, its views, a data file and an ini file; a day old."""

    def __init__(self, root: Path) -> None:
        self.package = f"pkg_{uuid.uuid4().hex[:8]}"
        self.root = root
        self.ini = root / "development.ini"
        self.views = root / self.package / "views.py"
        self.motto = root / "data" / "motto.txt"
        self.views.parent.mkdir()
        self.motto.parent.mkdir()
        files = {
            self.views.parent / "__init__.py": PACKAGE,
            self.views: "TEXT = 'old'\n",
            self.motto: "calm\n",
            self.ini: self.ini_text(),
        }
        old = time.time_ns() - DAY
        for path, text in files.items():
            path.write_text(text)
            os.utime(path, ns=(old, old))

    def ini_text(self, greeting: str = "hello", settle: str = "0.01") -> str:
        return INI.format(package=self.package, greeting=greeting, settle=settle)


@pytest.fixture
def paste(
    fresh_process: watcher.Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> PasteProject:
    root = tmp_path.resolve()
    monkeypatch.syspath_prepend(str(root))
    return PasteProject(root)


def body(app: object) -> str:
    return call(app).body.decode()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("local_conf", "expected"),
    [
        ({"settle": "0.2"}, {"settle": "0.2"}),
        ({"watch": "templates"}, {"watch": ("/srv/app/templates",)}),
        ({"watch": f"a{os.pathsep}/b"}, {"watch": ("/srv/app/a", "/b")}),
        ({"watch": "a\n  b\n\n"}, {"watch": ("/srv/app/a", "/srv/app/b")}),
        ({"exclude": "*.log, *.tmp\n*.bak"}, {"exclude": ("*.log", "*.tmp", "*.bak")}),
        ({"trigger": "deploy.stamp"}, {"trigger": "/srv/app/deploy.stamp"}),
        ({"trigger": "/var/stamp"}, {"trigger": "/var/stamp"}),
        ({"enabled": "off", "mode": "reload"}, {"enabled": "off", "mode": "reload"}),
    ],
    ids=["number", "relative", "pathsep", "lines", "patterns", "trigger", "absolute", "words"],
)
def test_ini_options(local_conf: dict[str, str], expected: dict[str, object]) -> None:
    """Lists split on their separator and on newlines; paths made absolute against here."""
    assert ini_options(local_conf, here="/srv/app") == expected


def test_loadapp_builds_the_middleware_from_the_ini(paste: PasteProject) -> None:
    """`use = egg:reload-middleware` gives a ReloadMiddleware in front of the app."""
    app = loadapp(f"config:{paste.ini}")
    assert isinstance(app, ReloadMiddleware)
    assert body(app) == "hello old calm"


SAVES = [  # (file of PasteProject, its new text, the page then)
    ("views", lambda paste: "TEXT = 'new'\n", "hello new calm"),
    ("ini", lambda paste: paste.ini_text(greeting="hi"), "hi old calm"),
    ("motto", lambda paste: "bold\n", "hello old bold"),
]


@pytest.mark.parametrize(("name", "text", "page"), SAVES,
                         ids=["a-view-edit", "the-ini-itself", "relative-watch-beside-the-ini"])
def test_a_save_is_served_on_the_next_request(
    paste: PasteProject, until: Until, name: str, text: Callable[[PasteProject], str], page: str
) -> None:
    """An edited module, a changed setting in the ini file (tracked itself) and a file
    under `watch = data` (relative to the ini): each is served on the next request, the
    ini loaded again by loadapp."""
    app = loadapp(f"config:{paste.ini}")
    assert body(app) == "hello old calm"
    save(getattr(paste, name), text(paste))
    until(lambda: body(app) == page)


def test_a_named_app_is_loaded_again_by_its_name(paste: PasteProject, until: Until) -> None:
    """The reload asks loadapp for what the first call asked: `#name`, `global_conf`."""
    paste.ini.write_text(paste.ini.read_text().replace("[pipeline:main]", "[pipeline:site]"))
    app = loadapp(f"config:{paste.ini}#site", global_conf={"greeting": "unused"})
    save(paste.views, "TEXT = 'new'\n")
    until(lambda: body(app) == "hello new calm")


def test_a_bad_value_raises_at_load(paste: PasteProject) -> None:
    """A bad value fails loadapp with the message a keyword gets."""
    paste.ini.write_text(paste.ini_text(settle="soon"))
    with pytest.raises(ValueError, match="option 'settle' got 'soon'; accepted: a number"):
        loadapp(f"config:{paste.ini}")


def test_an_unknown_option_raises_at_load(paste: PasteProject) -> None:
    """A misspelt option name fails loadapp, naming the known ones."""
    paste.ini.write_text(paste.ini_text().replace("settle =", "setle ="))
    with pytest.raises(TypeError, match=r"unknown option.*setle"):
        loadapp(f"config:{paste.ini}")


def test_a_mod_wsgi_script_is_the_script(paste: PasteProject, until: Until) -> None:
    """Built by loadapp in a mod_wsgi script, the middleware gives that script its hook,
    and an in-process reload executes the script again."""
    script = paste.root / "app.wsgi"
    script.write_text(
        "from paste.deploy import loadapp\n"
        f"application = loadapp('config:{paste.ini}')\n"
    )
    name = f"_mod_wsgi_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    module.__file__ = str(script)
    sys.modules[name] = module
    try:
        exec(compile(script.read_text(), str(script), "exec"), vars(module))
        app = module.application
        assert module.reload_required == app.reload_required
        save(paste.views, "TEXT = 'new'\n")
        until(lambda: body(app) == "hello new calm")
        assert sys.modules[name].application is app
    finally:
        sys.modules.pop(name, None)


def test_the_import_preflight_loads_the_ini(paste: PasteProject) -> None:
    """Before a restart that needs it (gunicorn --paste), the ini's app is loaded in a
    fresh process: an error at import names its file and line."""
    ini = entry.of("_reload_middleware_ini_0123", str(paste.ini))  # ini_script's name
    assert ini == entry.Entry("ini", str(paste.ini))
    assert preflight.import_app(ini, str(paste.ini)) is None
    paste.views.write_text("TEXT = 'new'\nBROKEN = undefined_name\n")
    failure = preflight.import_app(ini, str(paste.ini))
    assert failure is not None
    assert (failure.file, failure.line) == (str(paste.views), 2)
    assert "NameError" in failure.message
