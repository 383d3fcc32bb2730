"""Template directories: which frameworks cache templates, and where (templates.py).

The decisions are tested on stand-in objects shaped like each framework's; the real
Django, Flask and Jinja2 are then run in a child interpreter (Django's settings are
once per process), which also shows nothing is built or imported that was not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any, ClassVar

import pytest

from reload_middleware.integrations import templates

ROOT = "/srv/app"
DIRS = {f"{ROOT}/templates", f"{ROOT}/polls/templates", f"{ROOT}/polls/jinja2",
        "/venv/site-packages/django/contrib/admin/templates"}
CACHED = [("django.template.loaders.cached.Loader", ["x.Loader"])]


def django(templates_setting: list[dict[str, Any]], *, debug: bool = False,
           engines: dict[str, Any] | None = None, configured: bool = True) -> dict[str, Any]:
    settings = NS(configured=configured, TEMPLATES=templates_setting, DEBUG=debug)
    configs = [NS(path=f"{ROOT}/polls"), NS(path="/venv/site-packages/django/contrib/admin")]
    registry = NS(apps_ready=True, get_app_configs=lambda: configs)
    return {
        "django.conf": NS(settings=settings),
        "django.template": NS(engines=NS(_engines=engines or {})),
        "django.apps": NS(apps=registry),
    }


DJANGO = "django.template.backends.django.DjangoTemplates"
JINJA = "django.template.backends.jinja2.Jinja2"


class Flask:  # stands in for flask.Flask
    def __init__(self, debug: bool = False, auto: bool | None = None) -> None:
        self.name, self.debug = "app", debug
        self.jinja_options: dict[str, Any] = {}
        self.config = {"TEMPLATES_AUTO_RELOAD": auto}
        self.root_path, self.template_folder = ROOT, "templates"
        self.blueprint = NS(root_path=f"{ROOT}/polls", template_folder="templates")

    def iter_blueprints(self) -> list[Any]:
        return [self.blueprint]


class Environment:  # stands in for jinja2.Environment
    def __init__(self, auto_reload: bool, paths: list[str]) -> None:
        self.auto_reload = auto_reload
        self.loader = NS(loaders=[NS(searchpath=paths, get_source=None)])


class Lookup:  # stands in for mako.lookup.TemplateLookup
    def __init__(self, checks: bool) -> None:
        self.filesystem_checks, self.directories = checks, [f"{ROOT}/templates"]


class Router:  # stands in for pyramid.router.Router
    def __init__(self, reload: str) -> None:
        self.registry = NS(settings={"pyramid.reload_templates": reload})


def project(**names: Any) -> dict[str, Any]:
    """A project module holding `names` at module level."""
    return {"myproject": NS(__file__=f"{ROOT}/myproject.py", **names)}


app_flask = Flask()
CASES: list[tuple[str, dict[str, Any], object, set[str]]] = [
    ("nothing-loaded", {}, None, set()),
    ("django-settings-not-read", django([{"BACKEND": DJANGO}], configured=False), None,
     set()),
    ("django-default-loaders-are-cached", django(
        [{"BACKEND": DJANGO, "DIRS": [f"{ROOT}/templates"], "APP_DIRS": True}]), None,
     {f"{ROOT}/templates", f"{ROOT}/polls/templates"}),
    ("django-loaders-without-cache", django(
        [{"BACKEND": DJANGO, "DIRS": [f"{ROOT}/templates"],
          "OPTIONS": {"loaders": ["django.template.loaders.filesystem.Loader"]}}]), None,
     set()),
    ("django-explicit-cached-loader", django(
        [{"BACKEND": DJANGO, "DIRS": [f"{ROOT}/templates"], "OPTIONS": {"loaders": CACHED}}]),
     None, {f"{ROOT}/templates"}),
    ("django-jinja2-debug-reloads", django([{"BACKEND": JINJA, "APP_DIRS": True}], debug=True),
     None, set()),
    ("django-jinja2-no-debug", django([{"BACKEND": JINJA, "APP_DIRS": True}]), None,
     {f"{ROOT}/polls/jinja2"}),
    ("django-built-engines-win", django(
        [{"BACKEND": DJANGO, "DIRS": ["/elsewhere"]}],
        engines={"django": NS(engine=NS(loaders=CACHED), template_dirs=[f"{ROOT}/templates"])}),
     None, {f"{ROOT}/templates"}),
    ("flask-debug-off", {"flask": NS(Flask=Flask)}, app_flask,
     {f"{ROOT}/templates", f"{ROOT}/polls/templates"}),
    ("flask-wrapped-method", {"flask": NS(Flask=Flask)}, NS(app=NS(__self__=app_flask)),
     {f"{ROOT}/templates", f"{ROOT}/polls/templates"}),
    ("flask-at-module-level", {"flask": NS(Flask=Flask), **project(app=Flask())}, None,
     {f"{ROOT}/templates", f"{ROOT}/polls/templates"}),
    ("flask-debug-on", {"flask": NS(Flask=Flask)}, Flask(debug=True), set()),
    ("flask-auto-reload-config", {"flask": NS(Flask=Flask)}, Flask(auto=True), set()),
    ("jinja2-auto-reload-default", {"jinja2": NS(Environment=Environment),
                                    **project(env=Environment(True, [f"{ROOT}/templates"]))},
     None, set()),
    ("jinja2-auto-reload-off", {"jinja2": NS(Environment=Environment),
                                **project(env=Environment(False, [f"{ROOT}/templates"]))},
     None, {f"{ROOT}/templates"}),
    ("mako-filesystem-checks", {"mako.lookup": NS(TemplateLookup=Lookup),
                                **project(lookup=Lookup(True))}, None, set()),
    ("mako-no-filesystem-checks", {"mako.lookup": NS(TemplateLookup=Lookup),
                                   **project(lookup=Lookup(False))}, None,
     {f"{ROOT}/templates"}),
    ("pyramid-reload-templates", {"pyramid.router": NS(Router=Router)}, Router("true"), set()),
]


@pytest.mark.parametrize(("modules", "app", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_directories_watched_by_framework_and_setting(
    modules: dict[str, Any], app: object, expected: set[str]
) -> None:
    """Only frameworks that cache templates get their directories watched; installed
    packages' directories (Django admin's) are left out."""
    found = templates.find(modules, app, library=lambda p: "site-packages" in p,
                           isdir=lambda p: p in DIRS or p == "/elsewhere")
    assert set(found.dirs) == expected


def test_only_directories_whose_engines_reset_can_empty_are_resettable() -> None:
    """A directory a Jinja2 environment or a Mako lookup reads is resettable; the same
    directory also read by Pyramid's renderers (whose caches reset() does not reach)
    is not."""
    jinja = {"jinja2": NS(Environment=Environment), "mako.lookup": NS(TemplateLookup=Lookup),
             **project(env=Environment(False, [f"{ROOT}/templates"]), lookup=Lookup(False))}
    found = templates.find(jinja, None, isdir=lambda p: p in DIRS)
    assert found.resettable == (f"{ROOT}/templates",)
    both = {**jinja, "pyramid.router": NS(Router=Router)}
    both["myproject"].__path__ = [ROOT]  # a package: its templates/ is Pyramid's
    both["myproject"].__file__ = f"{ROOT}/__init__.py"
    found = templates.find(both, Router("false"), isdir=lambda p: p in DIRS)
    assert found.dirs == (f"{ROOT}/templates",) and found.resettable == ()


def test_a_flask_module_without_an_app_says_so() -> None:
    found = templates.find({"flask": NS(Flask=Flask)}, app=None)
    assert found.dirs == () and "no Flask app found" in found.describe()


def test_the_option_off_watches_nothing() -> None:
    assert templates.watched("off", app_flask, ()).dirs == ()


REAL = """
import json, os, sys
root = sys.argv[1]
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["polls", "django.contrib.admin", "django.contrib.auth",
                    "django.contrib.contenttypes"],
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [os.path.join(root, "templates")], "APP_DIRS": True}],
)
import django
django.setup()
from flask import Flask, Blueprint
app = Flask("shop", root_path=os.path.join(root, "shop"))
app.register_blueprint(Blueprint("pages", "pages", root_path=os.path.join(root, "pages"),
                                 template_folder="templates"))
from reload_middleware.integrations import templates
from reload_middleware.watching import project_modules
found = templates.watched("auto", app.wsgi_app, project_modules.library_roots())
from django.template import engines
print(json.dumps({"dirs": found.dirs, "notes": found.notes,
                  "engines_built": bool(engines._engines),
                  "django_jinja2_backend": "django.template.backends.jinja2" in sys.modules}))
"""


def test_real_django_and_flask_found_without_building_anything(tmp_path: Path) -> None:
    """Real Django and Flask in one child: the project's directories, not Django admin's,
    and no template engine built, no backend imported that the app did not import."""
    for d in ("templates", "polls/templates", "shop/templates", "pages/templates"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "polls/__init__.py").write_text("")
    done = subprocess.run(
        [sys.executable, "-c", REAL, str(tmp_path)], capture_output=True, text=True,
        check=False, env={"PYTHONPATH": str(tmp_path)}, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    root = str(tmp_path.resolve())
    assert set(result["dirs"]) == {f"{root}/{d}" for d in (
        "templates", "polls/templates", "shop/templates", "pages/templates")}
    assert not result["engines_built"] and not result["django_jinja2_backend"]


RESET = """
import os, sys
root = sys.argv[1]
sys.path.insert(0, root)
os.environ["DJANGO_SETTINGS_MODULE"] = "site_settings"
import django
django.setup()
from django.conf import settings
from django.template.loader import render_to_string
from reload_middleware.integrations import framework_caches
page = os.path.join(root, "templates", "page.html")
first = render_to_string("page.html") + settings.GREETING
with open(page, "w") as f:
    f.write("two")
with open(os.path.join(root, "site_settings.py"), "a") as f:
    f.write("GREETING = 'salut'\\n")
del sys.modules["site_settings"]  # as an in-process reload drops project modules
cached = render_to_string("page.html") + settings.GREETING
framework_caches.reset(sys.modules)
print(first, cached, render_to_string("page.html") + settings.GREETING)
"""


def test_a_django_reset_reads_templates_and_settings_anew(tmp_path: Path) -> None:
    """What an in-process reload relies on: Django's cached template and settings are
    stale until `framework_caches.reset()`, and new after it."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/page.html").write_text("one")
    (tmp_path / "site_settings.py").write_text(textwrap.dedent(f"""\
        TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates",
                      "DIRS": [{str(tmp_path / "templates")!r}]}}]
        GREETING = "hello"
        """))
    done = subprocess.run(
        [sys.executable, "-c", RESET, str(tmp_path)], capture_output=True, text=True,
        check=False, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onehello", "onehello", "twosalut"]


TEMPLATE_RESET = """
import os, sys, types
root = sys.argv[1]
sys.path.insert(0, root)
os.environ["DJANGO_SETTINGS_MODULE"] = "site_settings"
import django
django.setup()
import jinja2
from django.template import engines
from django.template.loader import render_to_string
from reload_middleware.integrations import templates
views = types.ModuleType("views")  # a project module holding a Jinja2 environment
views.__file__ = os.path.join(root, "views.py")
views.env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(root, "templates")),
                               auto_reload=False)
sys.modules["views"] = views
engine = engines["django"]
def both():
    return render_to_string("page.html") + views.env.get_template("page.html").render()
first = both()
with open(os.path.join(root, "templates", "page.html"), "w") as f:
    f.write("two")
cached = both()
templates.reset(None, ())
print(first, cached, both(), engines["django"] is engine)
"""


def test_a_template_reset_reads_templates_anew_and_keeps_the_engines(tmp_path: Path) -> None:
    """What a template save relies on: Django's cached loader and a Jinja2 environment
    with auto_reload off serve the old template until `templates.reset()`, the new one
    after it, from the same engine objects."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/page.html").write_text("one")
    (tmp_path / "site_settings.py").write_text(textwrap.dedent(f"""\
        TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates",
                      "DIRS": [{str(tmp_path / "templates")!r}]}}]
        """))
    done = subprocess.run(
        [sys.executable, "-c", TEMPLATE_RESET, str(tmp_path)], capture_output=True, text=True,
        check=False, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["oneone", "oneone", "twotwo", "True"]


class Lazy:
    """Built by any look at its class or attributes (as Django's LazyObject is)."""

    built: ClassVar[list[str]] = []

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        Lazy.built.append("__class__")
        return Flask

    def __getattr__(self, name: str) -> Any:
        Lazy.built.append(name)
        raise AttributeError(name)


def test_lazy_objects_are_not_built_by_looking() -> None:
    """A lazy object wrapped or at module level is neither built nor taken for an app;
    a bound method of the app leads to it."""
    found = templates.find({"flask": NS(Flask=Flask), **project(lazy=Lazy())},
                           app=NS(app=Lazy(), wsgi_app=app_flask.iter_blueprints),
                           isdir=lambda p: p in DIRS)
    assert Lazy.built == []
    assert set(found.dirs) == {f"{ROOT}/templates", f"{ROOT}/polls/templates"}
