"""Real uWSGI, 2 processes, with and without --lazy-apps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apache import free_port, wait_for
from procs import UWSGI, fetch, running, uwsgi
from support import require

pytestmark = pytest.mark.integration


def version(port: int) -> object:
    status, body, _ = fetch(port)
    assert status == 200, body
    return json.loads(body)["version"]


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked", "lazy-apps"])
def test_edit_reloads_the_instance_once(project: Path, lazy: bool) -> None:
    """An edit is served after one graceful reload of the instance; no request fails."""
    require(None if UWSGI else "uwsgi is not installed (pip install uwsgi)")
    port = free_port()
    with running(uwsgi(port, lazy), project, port) as printed:
        assert all(version(port) == "1" for _ in range(10))
        (project / "webapp" / "views.py").write_text("VERSION = '2'\n")
        wait_for(lambda: version(port) == "2", 20, "the edit being served")
        assert all(version(port) == "2" for _ in range(20))
    assert printed[0].count("changed: uwsgi") == 1


def test_os_variables_configure_it(project: Path) -> None:
    """uWSGI cannot set environ keys: RELOAD_MIDDLEWARE_TRIGGER makes only a touch count."""
    require(None if UWSGI else "uwsgi is not installed (pip install uwsgi)")
    port = free_port()
    with running(uwsgi(port, True), project, port, {"trigger": "reload.stamp"}) as printed:
        assert version(port) == "1"
        (project / "webapp" / "views.py").write_text("VERSION = '2'\n")
        assert all(version(port) == "1" for _ in range(10))  # edits alone do nothing
        (project / "reload.stamp").touch()
        wait_for(lambda: version(port) == "2", 20, "the touch reloading the instance")
    assert printed[0].count("changed: uwsgi") == 1
