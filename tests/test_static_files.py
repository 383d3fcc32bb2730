"""Static files under live reload: which directories, and what a save there does.

A stylesheet saved needs only the open pages' stylesheets swapped, any other static
file a page reload: neither restarts or reloads anything (docs/live-reload.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import pytest
from flask import Blueprint, Flask

from helpers import CONTROL, DAY, HTML_SCRIPT, MakeProject, Until, call, save, status
from reload_middleware.integrations import static_files, templates

ROOT = "/srv/app"
EVENTS = "/__reload_middleware__/events"
DIRS = [f"{ROOT}/assets", f"{ROOT}/shared"]  # STATICFILES_DIRS, as found


def django(installed: list[str], dirs: list[Any]) -> dict[str, Any]:
    settings = NS(configured=True, INSTALLED_APPS=installed, STATICFILES_DIRS=dirs,
                  USE_I18N=False, TEMPLATES=[])
    configs = [NS(path=f"{ROOT}/polls")]
    registry = NS(apps_ready=True, get_app_configs=lambda: configs)
    return {"django.conf": NS(settings=settings), "django.apps": NS(apps=registry)}


@pytest.mark.parametrize(("installed", "expected"), [
    (["polls", static_files.STATICFILES], [*DIRS, f"{ROOT}/polls/static"]),
    (["polls"], DIRS),
], ids=["staticfiles-app", "no-staticfiles-app"])  # fmt: skip
def test_django_static_directories_with_live_on(installed: list[str], expected: list[str]
                                                ) -> None:
    """STATICFILES_DIRS (plain, or with a prefix), and apps' `static/` where Django's
    staticfiles app finds them; none of them with live off."""
    modules = django(installed, [f"{ROOT}/assets", ("shared", f"{ROOT}/shared")])
    found = templates.find(modules, None, isdir=lambda path: True, live=True)
    assert list(found.static) == list(found.resettable) == expected
    assert found.describe() == "none; static " + ", ".join(expected)
    assert templates.find(modules, None, isdir=lambda path: True).dirs == ()


def test_flask_static_folders_of_the_app_and_its_blueprints(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    for d in ("shop/static", "pages/static"):
        (root / d).mkdir(parents=True)
    app = Flask("shop", root_path=str(root / "shop"))
    app.register_blueprint(Blueprint("pages", "pages", root_path=str(root / "pages"),
                                     static_folder="static"))
    found = templates.find({"flask": __import__("flask")}, app.wsgi_app, live=True)
    assert set(found.static) == {str(root / "shop/static"), str(root / "pages/static")}


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    """static/site.css and static/app.js, older than the process."""
    static = tmp_path.resolve() / "static"
    static.mkdir()
    old = time.time_ns() - DAY
    for name, text in (("site.css", "body {}"), ("app.js", "1")):
        (static / name).write_text(text)
        os.utime(static / name, ns=(old, old))
    return static


def events(app: Any, version: int) -> dict[str, Any]:
    response = call(app, path=EVENTS, extra={"QUERY_STRING": f"v={version}&c=t"},
                    environ={"wsgi.multithread": False})
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def test_a_stylesheet_save_is_announced_as_styles_and_restarts_nothing(
    project: MakeProject, assets: Path, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """The `static` option's directory is watched with live on. A stylesheet saved: the
    events answer is newer and says `styles`, the next request is served by the same app
    with one log line. Another static file: newer, no `styles` (the page reloads), still
    nothing reloaded. A module saved with a stylesheet: no `styles`, and a reload."""
    caplog.set_level(logging.INFO, "reload_middleware")
    made = project(HTML_SCRIPT, live=True, static=["static"], **CONTROL)
    app, served = made.application, made.application.app
    page = call(app).body
    version = int(page.split(b"live.js?v=")[1].split(b'"')[0])
    assert status(app)["templates"] == [str(assets)]
    assert f"; static {assets}" in caplog.text

    save(assets / "site.css", "body { color: red }")
    until(lambda: events(app, version)["version"] > version)
    answer = events(app, version)
    assert answer["styles"] is True
    assert call(app).status.startswith("200") and app.app is served
    assert f"{assets / 'site.css'} (1 file) changed: static files, nothing to reload" in (
        caplog.text)

    version = answer["version"]
    save(assets / "app.js", "2")
    until(lambda: events(app, version)["version"] > version)
    assert "styles" not in events(app, version)
    assert call(app).status.startswith("200") and app.app is served

    version = events(app, 0)["version"]
    save(assets / "site.css", "body { color: blue }")
    made.save_views("TEXT = 'new'\n")
    until(lambda: events(app, version)["version"] > version and len(app.pending) == 2)
    assert "styles" not in events(app, version)
    until(lambda: b"new" in call(app).body)
    assert app.app is not served


def test_static_directories_are_not_watched_with_live_off(
    project: MakeProject, assets: Path
) -> None:
    app = project(HTML_SCRIPT, static=["static"], **CONTROL).application
    call(app)
    assert status(app)["templates"] == []
