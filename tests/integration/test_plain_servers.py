"""In-process reloads through real HTTP servers in subprocesses: waitress and `serve`."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from apache import free_port, wait_for

pytestmark = pytest.mark.integration

APP = """\
import json, os
from webapp import views
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "version": views.VERSION}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app, settle=0.02, debug=True)
"""
WAITRESS = """\
import sys
import waitress
from app import application
waitress.serve(application, host="127.0.0.1", port=int(sys.argv[1]), threads=4)
"""


def get(port: int, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def answer(port: int) -> dict[str, Any]:
    status, text = get(port)
    assert status == 200, text
    result: dict[str, Any] = json.loads(text)
    return result


def up(port: int) -> bool:
    try:
        get(port)
    except OSError:
        return False
    return True


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "__init__.py").write_text("")
    (tmp_path / "webapp" / "views.py").write_text("VERSION = '1'\n")
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "run_waitress.py").write_text(WAITRESS)
    return tmp_path


@contextmanager
def running(argv: list[str], cwd: Path, port: int) -> Iterator[list[str]]:
    """Run a server until the block ends; yields a list that then holds its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    output: list[str] = []
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        try:
            wait_for(lambda: proc.poll() is None and up(port), 15, f"{argv[1:3]} answering")
            yield output
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            output.append(out.decode())


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
