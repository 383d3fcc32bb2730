"""In-process reloads through real HTTP servers in subprocesses: waitress and `serve`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from apache import free_port, wait_for
from procs import answer, get, running

pytestmark = pytest.mark.integration


def reload_cycle(project: Path, port: int) -> None:
    """Edit -> new code in the same process; broken edit -> debug 500; fix -> new code."""
    pid = answer(port)["pid"]
    (project / "webapp" / "views.py").write_text("VERSION = '2'\n")
    wait_for(lambda: answer(port)["version"] == "2", 10, "the edit being served")
    assert answer(port)["pid"] == pid
    (project / "webapp" / "views.py").write_text("VERSION = (\n")
    wait_for(lambda: get(port)[0] == 500, 10, "the debug page for the broken edit")
    assert "views.py:1" in get(port)[1]
    (project / "webapp" / "views.py").write_text("VERSION = '3'\n")
    wait_for(lambda: get(port)[0] == 200 and answer(port)["version"] == "3", 10, "the fix")
    assert answer(port)["pid"] == pid


def test_waitress_reloads_in_process(project: Path) -> None:
    """Under waitress an edit is served by the same process on the next requests."""
    port = free_port()
    with running([sys.executable, "run_waitress.py", str(port)], project, port):
        reload_cycle(project, port)


def test_serve_command_reloads(project: Path) -> None:
    """`reload-middleware serve` picks up an edit to the app on the next requests."""
    port = free_port()
    argv = [sys.executable, "-m", "reload_middleware", "serve", "app.py", "--port", str(port)]
    with running(argv, project, port) as printed:
        reload_cycle(project, port)
    output = printed[0]
    assert f"http://127.0.0.1:{port}/" in output
    assert "watching for code changes" in output
    assert "views.py (1 file) changed: reload" in output
