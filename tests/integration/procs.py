"""Servers in subprocesses for the real-server tests, and an HTTP client for them."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from apache import wait_for

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
# uWSGI comes with the test extra, next to this interpreter; a system one also serves.
UWSGI = shutil.which("uwsgi", path=os.path.dirname(sys.executable)) or shutil.which("uwsgi")
GUNICORN_KINDS = {
    "sync": ["-k", "sync", "--threads", "1"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "preload": ["-k", "sync", "--preload"],
}
WAITRESS = """\
import sys
import waitress
from app import application
waitress.serve(application, host="127.0.0.1", port=int(sys.argv[1]), threads=4)
"""


def gunicorn(
    port: int, kind: str, workers: int = 2, threads: int | None = None,
    *, app: str = "app:application", options: Sequence[str] = (),
) -> list[str]:
    """gunicorn with `workers` workers of `kind` (a GUNICORN_KINDS key) serving `app`;
    `threads` for each instead of the kind's, and any other `options`."""
    more = ["--threads", str(threads)] if threads else []  # the last one given counts
    return [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--no-control-socket", "--graceful-timeout", "5", *GUNICORN_KINDS[kind], *more,
            *options, app]


def uwsgi(port: int, lazy: bool, processes: int = 2, script: str = "app.py") -> list[str]:
    """uWSGI, a master and `processes` workers serving `script`'s application, --lazy-apps
    or not."""
    assert UWSGI is not None
    return [UWSGI, "--http-socket", f"127.0.0.1:{port}", "--master", "--processes", str(processes),
            "--wsgi-file", script, "--callable", "application", "--need-app",
            "--die-on-term", "--enable-threads", "--disable-logging",
            *(["--lazy-apps"] if lazy else [])]


def get(
    port: int, path: str = "/", method: str = "GET", timeout: float = 10
) -> tuple[int, str]:
    """One request on a new connection: (status, body); redirects are not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read().decode()
        if response.status == 307:
            return 307, response.getheader("Location", "")
        return response.status, body
    finally:
        conn.close()


def fetch(
    port: int, method: str = "GET", hops: int = 8, timeout: float = 10
) -> tuple[int, str, int]:
    """One request, following 307s to the same URL as a browser would: (status, body, hops)."""
    for hop in range(hops):
        status, body = get(port, "/", method, timeout)
        if status != 307:
            return status, body, hop
        assert body == "/", body
    raise AssertionError(f"more than {hops} redirects")


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


def make_project(tmp_path: Path) -> Path:
    """A project directory: webapp/views.py with VERSION, app.py, run_waitress.py."""
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "__init__.py").write_text("")
    (tmp_path / "webapp" / "views.py").write_text("VERSION = '1'\n")
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "run_waitress.py").write_text(WAITRESS)
    return tmp_path


@contextmanager
def running(
    argv: list[str],
    cwd: Path,
    port: int,
    options: dict[str, str] | None = None,
    *,
    bytecode: bool = False,
    live: list[str] | None = None,
) -> Iterator[list[str]]:
    """Run a server until the block ends; yields a list that then holds its output.

    `options` become RELOAD_MIDDLEWARE_* variables; none leak in from this environment.
    `bytecode` lets the server write .pyc files, which quick same-size edits can leave
    stale; off, it writes none. `live` gets each line of output as it comes, for tests
    that read the log while the server runs.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update({f"RELOAD_MIDDLEWARE_{k.upper()}": v for k, v in (options or {}).items()})
    output: list[str] = []
    chunks: list[bytes] = []
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        # Read as it comes: a server that fills the pipe blocks on its next log line.
        stdout = proc.stdout
        assert stdout is not None

        def read() -> None:
            for line in iter(stdout.readline, b""):
                chunks.append(line)
                if live is not None:
                    live.append(line.decode(errors="replace"))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            wait_for(lambda: proc.poll() is None and up(port), 15, f"{argv[1:3]} answering")
            yield output
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(10)
            output.append(b"".join(chunks).decode())
