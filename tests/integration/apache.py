"""A real Apache httpd with mod_wsgi for integration tests.

Everything one server needs (config, logs, pid file, daemon sockets) lives in its run
directory, so nothing under /etc/apache2 is used and servers never share state.
Apache starts as root and runs its children as www-data: every path they touch must be
reachable by others (directories 0755, files 0644).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
# A venv on Debian's /usr/bin/python3: a pyenv interpreter under /root (0700) is unreadable
# for www-data, and the daemons then crash-loop while every request waits for a 503.
DEFAULT_VENV = Path(os.environ.get("APACHE_TEST_VENV", "/tmp/reload-middleware-apache-venv"))

COMMON = """\
ServerRoot "{run}"
DefaultRuntimeDir "{run}"
PidFile "{run}/httpd.pid"
ErrorLog "{run}/error.log"
LogLevel info
ServerName localhost
Listen 127.0.0.1:{port}
User www-data
Group www-data
LoadModule mpm_event_module "{modules}/mod_mpm_event.so"
LoadModule authz_core_module "{modules}/mod_authz_core.so"
LoadModule env_module "{modules}/mod_env.so"
LoadModule wsgi_module "{wsgi_so}"
WSGIPythonHome "{venv}"
WSGISocketPrefix "{run}/wsgi"
"""
DAEMON = """\
WSGIRestrictEmbedded On
WSGIDaemonProcess site processes={processes} threads={threads} display-name=%{{GROUP}} \\
    python-home="{venv}" python-path="{python_path}" {daemon_options}
{aliases}
# Both options on the alias make each daemon load the script at start, before any request.
WSGIScriptAlias / "{script}" process-group=site application-group=%{{GLOBAL}}
"""
# The directives instead of the alias's options, as most sites write it: a daemon loads the
# script on its first request for it, not at start.
DAEMON_ON_DEMAND = """\
WSGIRestrictEmbedded On
WSGIDaemonProcess site processes={processes} threads={threads} display-name=%{{GROUP}} \\
    python-home="{venv}" python-path="{python_path}" {daemon_options}
WSGIProcessGroup site
WSGIApplicationGroup %{{GLOBAL}}
{aliases}
WSGIScriptAlias / "{script}"
"""
# Exactly one Apache child, so tests can assert that one pid serves every request.
EMBEDDED = """\
StartServers 1
ServerLimit 1
ThreadLimit {threads}
ThreadsPerChild {threads}
MinSpareThreads 1
MaxSpareThreads {threads}
MaxRequestWorkers {threads}
WSGIPythonPath "{python_path}"
WSGIApplicationGroup %{{GLOBAL}}
{aliases}
WSGIScriptAlias / "{script}"
"""
SITE = """\
<Directory "{script_dir}">
    Require all granted
</Directory>
<Location />
{location_config}
</Location>
{extra_config}
"""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until true; raise AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _world_reachable(path: Path) -> bool:
    """Whether another user (www-data) can reach `path`: o+x on each dir, o+r on it."""
    path = path.resolve()
    wanted = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
    if not path.exists() or path.stat().st_mode & wanted != wanted:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def prepare_run_dir(base: Path = Path("/tmp")) -> Path:
    """Make a fresh 0755 directory in `base` (default /tmp) that www-data can traverse."""
    if not _world_reachable(base):
        # pytest's tmp_path and mkdtemp() are 0700: every request would be a 503.
        raise ValueError(f"{base} is not traversable by www-data; use a dir under /tmp")
    run_dir = Path(tempfile.mkdtemp(prefix="rm-apache-", dir=base))
    run_dir.chmod(0o755)
    return run_dir


# A distribution's packaged mod_wsgi instead of the one pip built into the venv (Debian's
# libapache2-mod-wsgi-py3, with a venv on the distribution's own Python: .ci/trixie).
MOD_WSGI = os.environ.get("APACHE_TEST_MOD_WSGI")


@functools.cache
def module_location(venv: Path) -> Path:
    """The mod_wsgi .so built into `venv`, or APACHE_TEST_MOD_WSGI's."""
    if MOD_WSGI:
        return Path(MOD_WSGI)
    express = str(venv / "bin" / "mod_wsgi-express")
    out = subprocess.run([express, "module-location"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def apache_available(venv: Path = DEFAULT_VENV) -> str | None:
    """None if Apache + mod_wsgi can run here, else the reason why not."""
    if not APACHE.exists():
        return f"no {APACHE} (apt-get install apache2 apache2-dev)"
    if not (venv / "bin" / "python").exists():
        return f"no venv at {venv}"
    if not MOD_WSGI and not (venv / "bin" / "mod_wsgi-express").exists():
        return f"no mod_wsgi in {venv}"
    try:
        module_location(venv).stat()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"no mod_wsgi module for {venv}: {exc}"
    if not (_world_reachable(venv / "bin" / "python") and _world_reachable(venv)):
        return f"the interpreter of {venv} is not readable by www-data"
    return None


def process_resources(pid: int) -> tuple[int, int, int]:
    """(threads, inotify instances, inotify watches) of a process, read from /proc."""
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    instances = watches = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if "inotify" in str(fd.readlink()):
                instances += 1
                watches += (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().count("inotify wd:")
    return threads, instances, watches


def process_age(pid: int) -> float:
    """How long process `pid` has been running, in seconds (from /proc)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")


def older_than(server: Apache, seconds: float) -> None:
    """Wait until every daemon process of `server` has run for `seconds`."""
    wait_for(lambda: min(map(process_age, server.daemon_pids())) > seconds, seconds + 10,
             f"the daemon processes to be {seconds} s old")


@dataclass
class Response:
    """One HTTP answer; header names are lower-case, repeated headers joined by ', '."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ApacheSite:
    """An app directory readable by www-data: the python-path, holding the WSGI script."""

    root: Path
    script_name: str = "app.wsgi"

    @property
    def script(self) -> Path:
        return self.root / self.script_name

    def write(self, relpath: str, text: str) -> Path:
        """Write a file under the root, world-readable, with 0755 parent dirs."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        # Set modes explicitly: the caller's umask may be stricter than 022.
        for rel in path.relative_to(self.root).parents:
            (self.root / rel).chmod(0o755)
        path.write_text(text)
        path.chmod(0o644)
        return path


class Apache:
    """A real Apache httpd with mod_wsgi, self-contained in a run directory."""

    def __init__(
        self,
        venv: Path,
        run_dir: Path,
        *,
        mode: str = "daemon",
        processes: int = 2,
        threads: int = 5,
        script: Path,
        python_path: Path,
        extra_config: str = "",
        location_config: str = "",
        aliases: str = "",
        script_reloading: bool = True,
        preload: bool = True,
        bytecode: bool = False,
        ready_path: str = "/",
        daemon_options: str = "",
        port: int | None = None,
    ) -> None:
        if mode not in ("daemon", "embedded"):
            raise ValueError(f"mode must be 'daemon' or 'embedded', not {mode!r}")
        self.venv, self.run_dir, self.mode = venv.absolute(), run_dir.absolute(), mode
        self.processes, self.threads = processes, threads
        self.script, self.python_path = script.absolute(), python_path.absolute()
        self.extra_config, self.location_config = extra_config, location_config
        self.aliases = aliases  # more specific aliases, placed before the one for "/"
        self.script_reloading = script_reloading
        if not preload and mode != "daemon":
            raise ValueError("preload=False is a daemon mode setting")
        self.preload = preload
        # Off by default: quick edits within one second can leave a stale .pyc that Python
        # trusts. On, the daemons write __pycache__ where www-data may (as real sites do).
        self.bytecode = bytecode
        # What start() asks for to know the server is up: another script than the app's
        # leaves the app without a request until the test sends one.
        self.ready_path = ready_path
        self.daemon_options = daemon_options  # more WSGIDaemonProcess options
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.log_path = self.run_dir / "error.log"
        # Config errors go to stderr before the error log is open.
        self.stderr_path = self.run_dir / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """The text of httpd.conf."""
        values = dict(
            vars(self), run=self.run_dir, modules=MODULES, wsgi_so=module_location(self.venv)
        )
        values["script_dir"] = self.script.parent
        if self.mode == "embedded":
            text = COMMON + EMBEDDED
        else:
            text = COMMON + (DAEMON if self.preload else DAEMON_ON_DEMAND)
        if not self.bytecode:
            text += "WSGIDontWriteBytecode On\n"
        if not self.script_reloading:
            text += "WSGIScriptReloading Off\n"
        return (text + SITE).format(**values)

    def start(self, timeout: float = 15) -> None:
        """Start Apache and wait until it gives any HTTP answer to GET /."""
        if self.process is not None:
            raise RuntimeError("Apache is already running")
        for path in (self.run_dir, self.script, self.python_path):
            if not _world_reachable(path):
                raise RuntimeError(f"{path} is missing or unreachable for www-data (503s)")
        # A file written within a clock tick of a process start counts as changed (the
        # start is known to 10 ms): a server started right after a checkout would restart
        # once on its first request, and tests that count restarts would see it.
        written = newest_change(self.python_path)
        wait_for(lambda: time.time_ns() > written + 50_000_000, 1, "the app's files to age")
        # A port from free_port() can be taken before Apache binds it: retry on another.
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except RuntimeError:
                in_use = "already in use" in _read(self.stderr_path)
                if attempt == 2 or self._fixed_port or not in_use:
                    raise
                self.port = free_port()

    def _start_once(self, timeout: float) -> None:
        conf = self.run_dir / "httpd.conf"
        conf.write_text(self.config())
        conf.chmod(0o644)
        # Each start has its own log, so wait_for_log() counts only this run.
        self.log_path.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if not self.bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        with open(self.stderr_path, "wb") as err:
            # A session of its own lets stop() find and kill stray children by group.
            self.process = subprocess.Popen(
                [str(APACHE), "-f", str(conf), "-DFOREGROUND"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while (remaining := deadline - time.monotonic()) > 0:
            if (code := self.process.poll()) is not None:
                self.stop()
                raise RuntimeError(f"apache2 exited with {code}\n{self._tails()}")
            try:
                # Short probes, so that an Apache that exits (port taken) is noticed.
                self.get(self.ready_path, timeout=min(remaining, 2))
                return
            except (OSError, http.client.HTTPException):
                pause.wait(0.02)
        self.stop()
        raise RuntimeError(f"no HTTP answer from {self.url} in {timeout} s\n{self._tails()}")

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM Apache, wait up to `timeout` s, then SIGKILL what is left; idempotent."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        # A request in flight holds Apache's shutdown for about 14 s (the client is cut at
        # once anyway), and a parent may exit before its children: kill the whole group.
        if _group_alive(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not _group_alive(proc.pid), 5, "Apache's processes to exit")

    def __enter__(self) -> Apache:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def daemon_pids(self) -> set[int]:
        """Pids of this server's mod_wsgi daemon processes, read from /proc (no request)."""
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = (entry / "cmdline").read_bytes()
                    if cmdline.startswith(b"(wsgi:site)") and self._ours(int(entry.name)):
                        found.add(int(entry.name))
        return found

    def _ours(self, pid: int) -> bool:
        with contextlib.suppress(OSError):
            stat_line = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat_line.rsplit(")", 1)[1].split()[1])
            return self.process is not None and parent == self.process.pid
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        """The text of the error log ('' before Apache opened it)."""
        return _read(self.log_path)

    def wait_for_log(self, needle: str, timeout: float = 10, count: int = 1) -> str:
        """Wait until the error log holds `needle` at least `count` times; return the log."""
        seen = [""]

        def found() -> bool:
            seen[0] = self.error_log()
            return seen[0].count(needle) >= count

        try:
            wait_for(found, timeout, f"{needle!r} x{count} in the error log")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self._tails()}") from None
        return seen[0]

    def get(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 20,
    ) -> Response:
        """One request on a new connection; redirects are returned, not followed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            merged: dict[str, str] = {}
            for name, value in resp.getheaders():
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            return Response(resp.status, merged, data)
        finally:
            conn.close()

    def _tails(self, lines: int = 30) -> str:
        log = "\n".join(self.error_log().splitlines()[-lines:])
        stderr = _read(self.stderr_path)[-3000:]
        return f"--- apache2 stderr:\n{stderr}\n--- error log tail:\n{log}"


def newest_change(root: Path) -> int:
    """The latest mtime or ctime (ns) of the files below `root`."""
    newest = 0
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(directory, name))
                newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return newest


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in process group `pgid`."""
    # Orphaned children are zombies until init reaps them (1.5 s here, maybe never in
    # a container without an init), and kill(0) still finds zombies: read /proc instead.
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            state, _ppid, pgrp = stat_file.read_text().rpartition(")")[2].split()[:3]
            if pgrp == str(pgid) and state not in "ZX":
                return True
    return False
