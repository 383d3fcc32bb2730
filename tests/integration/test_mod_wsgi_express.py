"""Real mod_wsgi-express: the daemon preloads the script, and express's own handler script
owns mod_wsgi's `reload_required` hook, so a change restarts the daemon through the
middleware's SIGINT to itself, after a 307 that the new process answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apache import DEFAULT_VENV, apache_available, free_port, prepare_run_dir, wait_for
from procs import fetch, up
from support import Site, holds, require

pytestmark = pytest.mark.integration

EXPRESS = DEFAULT_VENV / "bin" / "mod_wsgi-express"


class Express:
    """`mod_wsgi-express start-server` in a session of its own; its log goes to a file."""

    def __init__(
        self, site: Site, server_root: Path, processes: int | None = None, *options: str
    ) -> None:
        self.site, self.server_root, self.processes = site, server_root, processes
        self.options = list(options)
        self.port = free_port()
        self.log_path = server_root / "terminal.log"  # --log-to-terminal: Apache's stderr
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [str(EXPRESS), "start-server", str(self.site.script), "--host", "127.0.0.1",
                "--port", str(self.port), "--server-root", str(self.server_root),
                "--log-to-terminal", "--startup-log", "--locale", "C.UTF-8"]
        if os.getuid() == 0:  # Apache started as root must run its children as someone else
            argv += ["--user", "www-data", "--group", "www-data"]
        if self.processes is not None:
            argv += ["--processes", str(self.processes)]
        return argv + self.options

    def start(self, timeout: float = 30) -> None:
        """Start it and wait for an answer; another port if the one picked was taken."""
        for attempt in range(3):
            if self._start_once(timeout):
                return
            if attempt == 2 or "Address already in use" not in self.log():
                raise AssertionError(f"mod_wsgi-express exited\n{self.log()}")
            self.port = free_port()

    def _start_once(self, timeout: float) -> bool:
        """True once it answers; False if it exited first (stopped either way)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        with open(self.log_path, "wb") as log:
            process = self.process = subprocess.Popen(
                self.argv(), cwd=self.site.root, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_for(lambda: process.poll() is not None or up(self.port), timeout,
                     f"mod_wsgi-express answering on {self.port}")
        except AssertionError:
            self.stop()
            raise AssertionError(f"no answer in {timeout} s\n{self.log()}") from None
        if process.poll() is None:
            return True
        self.stop()
        return False

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the whole process group, then SIGKILL what is left after `timeout`."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            wait_for(lambda: not self._group(process.pid), timeout, "mod_wsgi-express to exit")
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
        wait_for(lambda: not self._group(process.pid), 5, "its processes to exit")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def daemon_pids(self) -> set[int]:
        """The mod_wsgi daemon processes of this server, from /proc (no request). A child
        a daemon forks (the import preflight, before its exec) bears the daemon's name
        for a moment: a daemon's parent is Apache's, never another daemon."""
        if self.process is None:
            return set()
        named = {pid: parent for pid, name, parent in self._group(self.process.pid)
                 if name.startswith("(wsgi:")}
        return {pid for pid, parent in named.items() if parent not in named}

    @staticmethod
    def _group(pgid: int) -> list[tuple[int, str, int]]:
        """(pid, process name, parent pid) of the live processes in group `pgid` (zombies
        excluded)."""
        found = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError):
                text = stat_file.read_text()
                state, parent, group = text.rpartition(")")[2].split()[:3]
                if int(group) == pgid and state not in "ZX":
                    name = (stat_file.parent / "cmdline").read_bytes().split(b"\0")[0]
                    found.append((int(stat_file.parent.name), name.decode(errors="replace"),
                                  int(parent)))
        return found


@pytest.fixture
def express() -> Iterator[Callable[..., Express]]:
    """start_express(site, processes=None, *options): a started mod_wsgi-express, stopped
    after the test."""
    require(apache_available(DEFAULT_VENV))
    servers: list[Express] = []

    def start_express(site: Site, processes: int | None = None, *options: str) -> Express:
        server = Express(site, prepare_run_dir(), processes, *options)
        servers.append(server)
        server.start()
        return server

    yield start_express
    for server in servers:
        server.stop()
        shutil.rmtree(server.server_root, ignore_errors=True)


def browse(port: int) -> dict[str, Any]:
    """GET / as a browser would (following 307s); any answer but a 200 fails the test.

    The answer's JSON, with the number of redirects followed under "hops".
    """
    status, body, hops = fetch(port, hops=20)  # a browser's limit
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return {**result, "hops": hops}


def answering(server: Express, count: int, version: str) -> set[int]:
    """Requests until `count` daemon processes have answered with `version`; their pids."""
    seen: set[int] = set()

    def enough() -> bool:
        result = browse(server.port)
        assert result["version"] == version, result
        seen.add(result["pid"])
        return len(seen) == count

    wait_for(enough, 20, f"{count} daemon processes answering version {version}")
    return seen


@pytest.mark.parametrize("processes", [None, 2], ids=["default-one-process", "processes-2"])
def test_a_change_is_served_by_a_new_daemon(
    site: Callable[..., Site], express: Callable[..., Express], processes: int | None
) -> None:
    """Edits alone restart nothing; the next GET is redirected (about once per old daemon)
    and answered with the new code by a new process; no request fails."""
    count = processes or 1
    app = site()
    server = express(app, processes)
    old = answering(server, count, "1")
    assert server.daemon_pids() == old
    assert "watching for code changes: mode auto, server mod_wsgi-daemon" in server.log()

    # No request, no restart (mod_wsgi-express --reload-on-changes would restart here).
    app.set_version("unseen")
    holds(lambda: server.daemon_pids() == old, 1.5, "a daemon restarted with no request")
    assert "changed:" not in server.log()

    app.set_version("2")
    served: list[dict[str, Any]] = []

    def new_code() -> bool:
        served.append(browse(server.port))
        return bool(served[-1]["version"] == "2")

    wait_for(new_code, 20, "the edit being served")
    assert served[-1]["pid"] not in old
    # Not through the hook (that would answer with no redirect): the middleware's own 307,
    # about once per old process (one may answer another 307 while its SIGINT lands).
    assert served[-1]["hops"] >= 1
    assert all(result["version"] == "1" for result in served[:-1])
    new = answering(server, count, "2")
    assert not new & old
    assert all(browse(server.port)["version"] == "2" for _ in range(10))
    views = app.root / "webapp" / "views.py"
    log = server.log()
    assert log.count("changed: restart-by-sigint (mod_wsgi-daemon)") == count, log
    assert f"{views} (1 file) changed: restart-by-sigint (mod_wsgi-daemon)" in log


def test_embedded_mode_reloads_in_process(
    site: Callable[..., Site], express: Callable[..., Express]
) -> None:
    """--embedded-mode: no daemon, so the Apache child reloads in-process, no redirect."""
    app = site()
    server = express(app, None, "--embedded-mode")
    assert browse(server.port)["version"] == "1"
    app.set_version("2")
    served: list[dict[str, Any]] = []

    def new_code() -> bool:
        served.append(browse(server.port))
        return bool(served[-1]["version"] == "2")

    wait_for(new_code, 20, "the edit being served")
    assert all(result["hops"] == 0 for result in served)
    assert all(browse(server.port)["version"] == "2" for _ in range(10))
    log = server.log()
    assert "changed: reload (mod_wsgi-embedded)" in log and "changed: restart-by-sigint" not in log


def test_a_broken_save_restarts_nothing(
    site: Callable[..., Site], express: Callable[..., Express]
) -> None:
    """A syntax error keeps the daemon and its old code; saving the fix is the change."""
    app = site()
    server = express(app)
    old = answering(server, 1, "1")
    app.write("webapp/views.py", "VERSION = (\n")
    server_log = "new code not loaded, old code still serving"
    wait_for(lambda: browse(server.port)["version"] == "1" and server_log in server.log(), 10,
             "the broken save being refused")
    assert server.daemon_pids() == old
    app.set_version("fixed")
    wait_for(lambda: browse(server.port)["version"] == "fixed", 20, "the fix being served")
    assert browse(server.port)["pid"] not in old
