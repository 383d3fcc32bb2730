"""Fixtures for the real-server tests: Apache with mod_wsgi and a generated app."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from apache import DEFAULT_VENV, Apache, ApacheSite, apache_available, prepare_run_dir  # noqa: E402

APP = """\
import json, os
from webapp import views
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    body = json.dumps({{"pid": os.getpid(), "version": views.VERSION,
                       "method": environ["REQUEST_METHOD"]}}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app, **{options})
"""


# Served by the same daemon processes as the app, without going through the middleware:
# tells which paths the middleware of this process has seen change (`.pending`).
PROBE = """\
import json, os, sys

def application(environ, start_response):
    pending = set()
    for module in list(sys.modules.values()):
        app = getattr(module, "application", None)
        if type(app).__name__ == "ReloadMiddleware":
            pending |= app.pending
    body = json.dumps({"pid": os.getpid(), "pending": sorted(pending)}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def require(reason: str | None) -> None:
    """Skip with the reason here; in CI a skipped server test is a failure."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"server test cannot run in CI: {reason}")
    pytest.skip(reason)


class Site(ApacheSite):
    """The test app: webapp/views.py holds VERSION; app.wsgi wraps it in the middleware."""

    def set_version(self, version: str, module: str = "webapp/views.py") -> Path:
        return self.write(module, f"VERSION = {version!r}\n")


@pytest.fixture
def site() -> Iterator[Callable[..., Site]]:
    """make_site(**options): a fresh app directory under /tmp that www-data can read."""
    made: list[Path] = []

    def make_site(**options: object) -> Site:
        root = prepare_run_dir()
        made.append(root)
        site = Site(root)
        site.write("webapp/__init__.py", "")
        site.set_version("1")
        site.write("app.wsgi", APP.format(options=repr({"settle": 0.05, **options})))
        site.write("probe/probe.wsgi", PROBE)
        return site

    yield make_site
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def apache() -> Iterator[Callable[..., Apache]]:
    """start_apache(site, **kw): a started Apache serving `site`, stopped after the test."""
    require(apache_available(DEFAULT_VENV))
    servers: list[Apache] = []

    def start_apache(site: ApacheSite, **kw: object) -> Apache:
        probe = site.root / "probe" / "probe.wsgi"
        group = "" if kw.get("mode") == "embedded" else " process-group=site"
        aliases = f"WSGIScriptAlias /probe {probe}{group} application-group=%{{GLOBAL}}"
        server = Apache(DEFAULT_VENV, prepare_run_dir(), script=site.script,
                        python_path=site.root, aliases=aliases, **kw)  # type: ignore[arg-type]
        servers.append(server)
        server.start()
        return server

    yield start_apache
    for server in servers:
        server.stop()
        shutil.rmtree(server.run_dir, ignore_errors=True)
