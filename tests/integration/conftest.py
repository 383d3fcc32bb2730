"""Fixtures for the real-server tests: Apache with mod_wsgi and a generated app."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from apache import DEFAULT_VENV, Apache, ApacheSite, apache_available, prepare_run_dir
from procs import make_project
from schedules import SUMMARIES
from support import APP, PROBE, Site, require


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The schedule checker's numbers, one line per run, also when every run passed."""
    if SUMMARIES:
        terminalreporter.section("schedules")
        for line in SUMMARIES:
            terminalreporter.write_line(line)


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

    def start_apache(site: ApacheSite, **kw: Any) -> Apache:
        probe = site.root / "probe" / "probe.wsgi"
        group = "" if kw.get("mode") == "embedded" else " process-group=site"
        aliases = f"WSGIScriptAlias /probe {probe}{group} application-group=%{{GLOBAL}}"
        server = Apache(
            DEFAULT_VENV,
            prepare_run_dir(),
            script=site.script,
            python_path=site.root,
            aliases=aliases,
            **kw,
        )
        servers.append(server)
        server.start()
        return server

    yield start_apache
    for server in servers:
        server.stop()
        shutil.rmtree(server.run_dir, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project for servers run as this user (waitress, gunicorn, uWSGI, serve)."""
    return make_project(tmp_path)
