"""Template directories as the middleware watches them: a real Flask app, in process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from helpers import DAY, MakeProject, Until, call, save
from reload_middleware import ReloadMiddleware

SECRET = "s3cret-token-0123456789"
# Debug off: Flask keeps compiled templates, so the folder must be watched.
FLASK = """\
from flask import Flask, render_template
from reload_middleware import ReloadMiddleware

app = Flask(__name__)


@app.route("/")
def index():
    return render_template("page.html")


application = ReloadMiddleware(app, **{options!r})
"""


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path.resolve() / "templates" / "page.html"
    path.parent.mkdir()
    path.write_text("one")
    old = time.time_ns() - DAY
    os.utime(path, ns=(old, old))
    return path


def status(app: ReloadMiddleware) -> dict[str, object]:
    response = call(app, path="/__reload__", extra={"HTTP_AUTHORIZATION": f"Bearer {SECRET}"})
    report: dict[str, object] = json.loads(response.body)
    return report


def test_a_flask_template_edit_is_served_on_the_next_request(
    project: MakeProject, page: Path, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """No `watch=`: the app's template folder is found, named in the start line and the
    status, and an edit is served on the next request: Flask's template cache is
    emptied, with no reload of the script (the same app object serves)."""
    made = project(FLASK, control="/__reload__", secret=SECRET)
    app, served = made.application, made.application.app
    assert call(app).body == b"one"
    assert status(app)["templates"] == [str(page.parent)]
    assert f"templates {page.parent}" in caplog.text
    save(page, "two")
    until(lambda: call(app).body == b"two")
    assert app.app is served
    assert f"{page} (1 file) changed: template caches emptied" in caplog.text
    assert "changed: reload" not in caplog.text
    assert status(app)["last_action"]["action"] == "reset-templates"  # type: ignore[index]
    save(page, "three")  # and again: the template's new state is the baseline
    until(lambda: call(app).body == b"three")
    assert app.app is served


def test_templates_off_watches_no_template_directory(
    project: MakeProject, page: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = project(FLASK, control="/__reload__", secret=SECRET, templates="off").application
    assert call(app).body == b"one"
    assert status(app)["templates"] == []
    assert "templates none (templates off)" in caplog.text


MAKO = """\
import os
from mako.lookup import TemplateLookup
from reload_middleware import ReloadMiddleware

HERE = os.path.dirname(os.path.abspath(__file__))
lookup = TemplateLookup(directories=[os.path.join(HERE, "templates")], filesystem_checks=False)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [lookup.get_template("page.html").render().encode()]


application = ReloadMiddleware(app, **{options!r})
"""


def test_a_mako_template_edit_is_served_without_a_reload(
    project: MakeProject, page: Path, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """A module-level Mako lookup with `filesystem_checks` off: its directory is watched
    and a save empties its collection; the same app serves the new template."""
    made = project(MAKO)
    app, served = made.application, made.application.app
    assert call(app).body == b"one"
    save(page, "two")
    until(lambda: call(app).body == b"two")
    assert app.app is served
    assert f"{page} (1 file) changed: template caches emptied" in caplog.text


PYRAMID = """\
import os
from pyramid.config import Configurator
from {package} import views
from reload_middleware import ReloadMiddleware

HERE = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(HERE, "{package}", "templates"), exist_ok=True)


def hello(request):
    return views.TEXT


with Configurator(settings={{"pyramid.reload_templates": "false"}}) as config:
    config.add_route("home", "/")
    config.add_view(hello, route_name="home", renderer="string")

application = ReloadMiddleware(config.make_wsgi_app(), **{options!r})
"""


# Pyramid 2 imports pkg_resources, which setuptools 81 and later warn about on import,
# and with it PasteDeploy's namespace declaration.
@pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")
@pytest.mark.filterwarnings("ignore:Deprecated call to `pkg_resources.declare_namespace:"
                            "DeprecationWarning")
def test_a_pyramid_template_save_is_acted_on_as_code_and_says_why_once(
    project: MakeProject, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """Pyramid's renderers keep compiled templates out of reach: a save in a package's
    `templates/` reloads like code, and the log says why, once per process."""
    made = project(PYRAMID)
    app, served = made.application, made.application.app
    assert call(app).body == b"old"
    page = made.views.parent / "templates" / "page.pt"
    for n in range(2):
        save(page, f"<p>{n}</p>")
        until(lambda: call(app).body == b"old" and app.app is not served)  # noqa: B023
        served = app.app
    assert caplog.text.count("Pyramid's renderers keep compiled templates") == 1
    assert f"{page} (1 file): Pyramid's renderers" in caplog.text
