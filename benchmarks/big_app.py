"""Figure 11: big apps: what the middleware adds to a start, a save and a process, at 3,000 modules.

    python benchmarks/big_app.py [--runs 5] [--saves 10] [--later-saves 20] [--apache-saves 10]
                                 [--redirect-saves 10] [--no-apache]

The app: 3,000 generated modules in 30 top-level packages (a monorepo's shape:
`benchlib.generate_app` with `tops`), compiled and a day old, and two scripts that
import every package and answer with the VERSION of one module: `bare.py`, the app
alone, and `wrapped.py`, the app in `ReloadMiddleware(app)` with default options. One
run measures the two side by side, in turn (the order swapped every round):

1. Start to the first 200 answer, median of `--runs`: gunicorn (sync, 1 worker) from
   the launch of the gunicorn process, and Apache/mod_wsgi daemon mode (1 process, the
   script preloaded) from the launch of apache2: a cold start, as a graceful restart
   would add Apache's own one-second tick. Requests are tried every 5 ms, each on a
   new connection. One untimed round first, so that no variant pays for cold caches.
2. After that first answer: VmRSS (/proc/PID/status) and threads (/proc/PID/task) of
   the gunicorn worker and of the daemon process, medians of the same starts.
3. Save to new code under gunicorn (sync, 1 worker), `--saves` each: a random pause of
   0 to 1 s, the module the app answers from rewritten with a new VERSION, then
   requests back to back from the save's close() to the first 200 with it, 307s
   followed by hand on new connections. Two servers on two copies of the app, saved in
   turn: `preflight` at its default (the app imported in a separate process before the
   restart) and `RELOAD_MIDDLEWARE_PREFLIGHT=compile`. Then `--later-saves` more each
   with the first request 1 s after the save, as a person turns to the browser: the
   import preflight, run as soon as the save settles, has had its time. Its target:
   from that request to the new code, import no slower than compile beyond the noise
   (the median absolute deviation of compile's times).
   3c. Under Apache daemon mode (1 preloaded process), `--apache-saves` each, the same
   way: the wrapped script on one copy, and on the other the bare script with
   mod_wsgi's own script reloading, the module saved and then the script touched (the
   floor: Apache's tick and the app's load in a new daemon, with no middleware).
   Target: the app's start under Apache + Apache's one-second tick.
4. Redirects under gunicorn (sync, `--workers` 8), gunicorn gthread (3 workers of 8
   threads) and uWSGI (4 workers, the app loaded in the master; where uwsgi is
   installed): after each of `--redirect-saves` saves, one client sends requests back
   to back (307s followed by hand, new connections) until one answers with the new
   VERSION; the most 307s a request met. Before each save every worker has loaded the
   app (none uses CPU any more).
5. Where the middleware's part of a start goes, in fresh interpreters (median of `--runs`):
   the app's packages, the standard library modules reload_middleware needs (the
   generated app imports none, an app on a framework most), reload_middleware itself,
   the script (building the middleware) and the first request, one after the other,
   each timed and followed by a look at VmRSS; and the import preflight alone, as the
   middleware runs it before a restart.

reload_middleware's own bytecode is compiled first where this interpreter imports it
from (see package_bytecode), as the app's is.

Needs gunicorn (the `test` extra); the Apache rows need what the Apache integration
tests need (apache2, the Apache test venv), and are left out, saying why, without them.
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import importlib.metadata
import importlib.util
import json
import os
import py_compile
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

import benchlib
from apache import APACHE, DEFAULT_VENV, Apache, apache_available, prepare_run_dir
from procs import UWSGI as UWSGI_BINARY
from procs import get, gunicorn, uwsgi

MODULES = 3_000
TOPS = 30
START_SHARE, START_FLOOR = 0.10, 0.050  # the middleware adds at most 10 % or 50 ms to a start
RSS_TARGET_MB = 5.0
SAVE_MARGIN = 0.3  # s beyond the app's own start, for a save to reach the answer
TICK = 1.0  # s: Apache's parent starts a new daemon process at its next maintenance tick
LATER = 1.0  # s from a save to the first request, as a person turns to the browser
REDIRECT_TARGET = 2
DISPATCHER = 1  # the thread watchdog 7.1.1 starts for its inotify instance
POLL = 0.005  # s between attempts while a server starts
PAUSE = threading.Event()

# The scripts the servers load.
BARE = '''\
"""The big app{what}: {n} modules in {tops} top-level packages."""
import {packages}
from {first} import m01 as target


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [target.VERSION.encode()]


application = app
'''
WRAPPED = BARE + '''
from reload_middleware import ReloadMiddleware

application = ReloadMiddleware(app)
'''
SCRIPTS = {"bare": ("", BARE), "wrapped": (" in ReloadMiddleware", WRAPPED)}
VARIANTS = ("bare", "wrapped")

# Part 5, in a fresh interpreter: the steps of a start one by one, each timed and
# followed by a look at VmRSS: the app's packages; for the wrapped one the standard
# library modules reload_middleware needs (an app that uses a framework has most of
# them already, this one none), then reload_middleware itself; the script (for the
# wrapped one that is building the middleware: its imports are done) and the first
# request; then, for the wrapped one, the import preflight as the middleware runs it
# before a restart, and the floors: what a start with the middleware cannot skip
# beyond importing it (watchdog's import is a step of its own), timed alone after the
# rest: one lstat of each tracked file (a start makes two: the baseline at
# construction, and the look once the watches are live) and watchdog's schedule of
# the same roots in an observer of its own.
PROFILE = r'''
import importlib, json, os, re, sys, threading, time, wsgiref.util
root, name, tops, stdlib = sys.argv[1:5]
sys.path.insert(0, root)
steps = {}
began = time.perf_counter()


def mark(step):
    global began
    elapsed = time.perf_counter() - began
    status = open("/proc/self/status").read()
    steps[step] = [elapsed, int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)[1]) / 1024]
    began = time.perf_counter()


mark("interpreter")
for top in tops.split(","):
    importlib.import_module(top)
mark("app")
if name == "wrapped":
    for module in stdlib.split(","):
        importlib.import_module(module)
    mark("stdlib")
    import watchdog.events, watchdog.observers
    mark("watchdog")
    import reload_middleware
    mark("import")
script = importlib.import_module(name)
mark("script")
environ = {}
wsgiref.util.setup_testing_defaults(environ)
began = time.perf_counter()
body = b"".join(script.application(environ, lambda status, headers, exc_info=None: None))
mark("request")
result = {"steps": steps, "body": body.decode(), "threads": threading.active_count()}
if name == "wrapped":
    result["roots"] = len(script.application._tracking.place.watcher.directories)
if name == "wrapped":
    from reload_middleware.acting import entry, preflight
    began = time.perf_counter()
    failure = preflight.import_app(entry.Entry("name", name), script.__file__)
    result["preflight"] = time.perf_counter() - began
    result["failure"] = failure.summary if failure else None
    tracking = script.application._tracking
    began = time.perf_counter()
    for path in tracking.changes.known:
        try:
            os.lstat(path)
        except OSError:
            pass
    result["lstat"] = time.perf_counter() - began
    observer = watchdog.observers.Observer()
    began = time.perf_counter()
    observer.start()
    for directory, recursive in tracking.place.watcher.directories.items():
        observer.schedule(watchdog.events.FileSystemEventHandler(), directory,
                          recursive=recursive)
    result["schedule"] = time.perf_counter() - began
    observer.stop()
    observer.join()
print(json.dumps(result))
'''


def add_scripts(app: benchlib.App) -> None:
    """bare.py and wrapped.py next to the packages, dated and compiled like the generated
    files: a gunicorn worker imports them by name, from valid bytecode."""
    stamp = app.script.stat().st_mtime_ns
    for name, (what, text) in SCRIPTS.items():
        path = app.root / f"{name}.py"
        path.write_text(text.format(what=what, n=f"{app.n:,}", tops=len(app.top),
                                    packages=", ".join(app.top), first=app.packages[0]))
        os.utime(path, ns=(stamp, stamp))
        py_compile.compile(str(path), doraise=True)  # after dating: the .pyc holds the mtime


def package_bytecode() -> None:
    """Compile reload_middleware where this interpreter imports it from, as pip does when
    it installs a package. From an editable checkout under PYTHONDONTWRITEBYTECODE (as
    every process here runs), each start would compile its sources again, about 90 ms
    here: a cost of the checkout, not of the middleware. The Apache venv installs it."""
    spec = importlib.util.find_spec("reload_middleware")
    for location in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(location, quiet=2)


def readable(root: Path) -> None:
    """Apache's daemons run as www-data: every directory 0755, every file 0644."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def copy_app(app: benchlib.App, root: Path) -> benchlib.App:
    """A second copy, its files and bytecode as valid as the first's (mtimes kept)."""
    shutil.copytree(app.root, root, copy_function=shutil.copy2)
    return benchlib.App(root, app.n, app.packages, app.top)


def server_env(options: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without RELOAD_MIDDLEWARE_* variables, plus `options`. No process
    writes bytecode, so every start reads the same files: the saved module's .pyc goes
    stale, and each process compiles that one module."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(options or {})
    return env


def first_answer(port: int, running: Callable[[], bool], what: str,
                 timeout: float = 120) -> str:
    """The body of the first 200 answer, trying every POLL s on a new connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = get(port, timeout=timeout)
            if status == 200:
                return body
        except (OSError, http.client.HTTPException):
            pass  # nothing listens yet, or it went away: try again
        if not running():
            raise RuntimeError(f"{what} exited before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} gave no 200 answer in {timeout} s")
        PAUSE.wait(POLL)


def children(pid: int) -> set[int]:
    """The child processes of `pid` (a gunicorn arbiter's are its workers)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def footprint(pid: int) -> tuple[float, int]:
    """(VmRSS in MB, threads) of a process."""
    found = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if found is None:
        raise RuntimeError(f"no VmRSS for {pid}")
    return int(found[1]) / 1024, len(list(Path(f"/proc/{pid}/task").iterdir()))


def cpu_ticks(pid: int) -> int:
    """User and system CPU time of a process, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


class Gunicorn:
    """gunicorn serving one of the scripts of an app, its output in a file."""

    def __init__(self, app: benchlib.App, script: str, workers: int = 1,
                 options: Mapping[str, str] | None = None, kind: str = "sync",
                 threads: int | None = None) -> None:
        self.app, self.script, self.workers = app, script, workers
        self.kind, self.threads = kind, threads
        self.options = dict(options or {})
        self.port = benchlib.free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # Read for errors, before it stops: a file, as a pipe nobody reads fills up.
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115

    def start(self) -> float:
        """Launch it; seconds from the launch to the first 200 answer."""
        started = time.perf_counter()
        self.process = subprocess.Popen(self.argv(), cwd=self.app.root,
                                        env=server_env(self.options),
                                        stdout=self.log, stderr=subprocess.STDOUT)
        process = self.process
        first_answer(self.port, lambda: process.poll() is None,
                     f"{type(self).__name__.lower()} ({self.script})")
        return time.perf_counter() - started

    def argv(self) -> list[str]:
        return gunicorn(self.port, self.kind, self.workers, self.threads,
                        app=f"{self.script}:application")

    def pids(self) -> set[int]:
        """Its workers: the arbiter's children."""
        assert self.process is not None
        return children(self.process.pid)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGINT)  # a quick shutdown: nothing to finish here
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.log.close()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


class UWSGI(Gunicorn):
    """uWSGI (a master and its workers, the app loaded in the master and forked) serving
    one of the scripts by path, as `--wsgi-file`."""

    def argv(self) -> list[str]:
        return [*uwsgi(self.port, False, self.workers, f"{self.script}.py"),
                "--pythonpath", str(self.app.root)]


def apache_start(server: Apache) -> float:
    """Launch apache2 as `Apache.start` does, but timed: seconds from the launch to the
    first 200 answer (`start` waits for any answer, trying every 20 ms)."""
    conf = server.run_dir / "httpd.conf"
    conf.write_text(server.config())
    conf.chmod(0o644)
    server.log_path.unlink(missing_ok=True)
    with open(server.stderr_path, "wb") as err:
        started = time.perf_counter()
        server.process = process = subprocess.Popen(
            [str(APACHE), "-f", str(conf), "-DFOREGROUND"], env=server_env(),
            stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
            start_new_session=True)  # stop() kills the whole group
    try:
        first_answer(server.port, lambda: process.poll() is None, "Apache")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{server.error_log()[-3000:]}") from None
    return time.perf_counter() - started


@dataclass
class Start:
    """One start: to the first 200 answer, and the serving process after it."""

    seconds: float
    rss_mb: float
    threads: int


def start_gunicorn(app: benchlib.App, script: str) -> Start:
    server = Gunicorn(app, script)
    try:
        seconds = server.start()
        (worker,) = server.pids()
        return Start(seconds, *footprint(worker))
    finally:
        server.stop()


def start_apache(app: benchlib.App, script: str) -> Start:
    server = Apache(DEFAULT_VENV, prepare_run_dir(), script=app.root / f"{script}.py",
                    python_path=app.root, processes=1)
    try:
        seconds = apache_start(server)
        (daemon,) = server.daemon_pids()
        return Start(seconds, *footprint(daemon))
    finally:
        server.stop()
        shutil.rmtree(server.run_dir, ignore_errors=True)


def starts(app: benchlib.App, runs: int, apache: bool) -> dict[tuple[str, str], list[Start]]:
    """(server, variant) -> its starts; the variants in turn, the order swapped each round."""
    kinds = {"gunicorn": start_gunicorn, **({"apache": start_apache} if apache else {})}
    results: dict[tuple[str, str], list[Start]] = {(k, v): [] for k in kinds for v in VARIANTS}
    for round_ in range(runs + 1):
        for variant in VARIANTS if round_ % 2 else VARIANTS[::-1]:
            for kind, start in kinds.items():
                measured = start(app, variant)
                if round_:  # round 0 warms the caches of both interpreters, untimed
                    results[kind, variant].append(measured)
    return results


@dataclass
class Save:
    """One save, as the client saw it."""

    seconds: float  # close() to the first 200 with the new VERSION
    redirected: float | None  # close() to the first 307
    hops: int  # the most 307s one request met
    requests: int
    asked: float = 0.0  # close() to the first request: the person's turn to the browser

    @property
    def waited(self) -> float:
        """The first request to the first 200 with the new VERSION."""
        return self.seconds - self.asked


def save(target: Path, version: str, port: int, timeout: float = 60, pause: float = 0.0,
         touch: Path | None = None) -> Save:
    """Rewrite `target` with VERSION `version` (and then `touch` the script, as mod_wsgi's
    own reloading asks), then, `pause` seconds later, ask until the answer is that."""
    text = re.sub(r'VERSION = "[^"]*"', f'VERSION = "{version}"', target.read_text())
    with open(target, "w") as source:
        source.write(text)
    closed = time.perf_counter()
    if touch is not None:
        os.utime(touch)
    PAUSE.wait(pause)
    redirected: float | None = None
    most = requests = 0
    while True:
        hops = 0
        while True:
            status, body = get(port, timeout=timeout)
            if status != 307:
                break
            redirected = redirected or time.perf_counter() - closed
            hops += 1
            if hops > 10:
                raise RuntimeError("more than 10 redirects for one request")
        requests += 1
        most = max(most, hops)
        if status != 200:
            raise RuntimeError(f"{status} after the save: {body[:500]}")
        if body == version:
            return Save(time.perf_counter() - closed, redirected, most, requests, pause)
        if time.perf_counter() - closed > timeout:
            raise RuntimeError(f"no answer with {version} {timeout} s after the save")


def in_turn(names: Sequence[str], rounds: int, seed: int) -> Iterator[tuple[int, str]]:
    """(round, name) for `rounds` rounds of `names` (from 1), the order swapped every
    round, after a random pause of 0 to 1 s before each: saves at any phase of a tick."""
    rng = random.Random(seed)
    for n in range(1, rounds + 1):
        for name in names if n % 2 else names[::-1]:
            PAUSE.wait(rng.uniform(0, 1))
            yield n, name


def saves(apps: Mapping[str, benchlib.App], count: int, ahead: int
          ) -> dict[str, list[Save]]:
    """"preflight name" and "preflight name, later" -> its saves: one gunicorn (sync, 1
    worker) per copy of the app, saved in turn, the order swapped every round: `count`
    saves with requests from the save on, then `ahead` with the first request
    `LATER` s after the save."""
    options = {"import": {}, "compile": {"RELOAD_MIDDLEWARE_PREFLIGHT": "compile"}}
    servers = {name: Gunicorn(app, "wrapped", options=options[name]) for name, app in apps.items()}
    results: dict[str, list[Save]] = {f"{n}{w}": [] for n in apps for w in ("", ", later")}
    try:
        for server in servers.values():
            server.start()
        for n, name in in_turn(list(apps), count + ahead, seed=11):
            pause, which = (0.0, "") if n <= count else (LATER, ", later")
            results[name + which].append(
                save(apps[name].target, f"v{n}", servers[name].port, pause=pause))
    except RuntimeError as exc:
        logs = "\n".join(f"--- {name}:\n{s.output()[-3000:]}" for name, s in servers.items())
        raise RuntimeError(f"{exc}\n{logs}") from None
    finally:
        for server in servers.values():
            server.stop()
    return results


def apache_saves(apps: Mapping[str, benchlib.App], count: int) -> dict[str, list[Save]]:
    """Part 3c: "middleware" and "touch" -> their saves under Apache daemon mode (1
    preloaded process, mod_wsgi's script reloading on, as by default): the wrapped script
    with default options on one copy, and on the other the bare script, its module saved
    and then the script touched, mod_wsgi's own way to restart a daemon. In turn, the
    order swapped every round, a random pause of 0 to 1 s before each save."""
    scripts = {"middleware": "wrapped", "touch": "bare"}
    servers = {name: Apache(DEFAULT_VENV, prepare_run_dir(), processes=1,
                            script=app.root / f"{scripts[name]}.py", python_path=app.root)
               for name, app in apps.items()}
    results: dict[str, list[Save]] = {name: [] for name in apps}
    try:
        for server in servers.values():
            apache_start(server)
        for n, name in in_turn(list(apps), count, seed=17):
            script = apps[name].root / "bare.py" if name == "touch" else None
            results[name].append(save(apps[name].target, f"a{n}", servers[name].port,
                                      touch=script))
    except RuntimeError as exc:
        logs = "\n".join(f"--- {name}:\n{s.error_log()[-3000:]}" for name, s in servers.items())
        raise RuntimeError(f"{exc}\n{logs}") from None
    finally:
        for server in servers.values():
            server.stop()
            shutil.rmtree(server.run_dir, ignore_errors=True)
    return results


def settled(server: Gunicorn, count: int, old: set[int], timeout: float = 120) -> set[int]:
    """Wait until `count` workers run, none of them one of `old`, and none has used CPU
    for 0.3 s: each has loaded the app. A booting worker shares 2 cores with the
    others and still gets several ticks in that time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = server.pids()
        if len(pids) == count and not pids & old:
            before = {pid: cpu_ticks(pid) for pid in pids}
            PAUSE.wait(0.3)
            if server.pids() == pids and all(cpu_ticks(p) - before[p] <= 1 for p in pids):
                return pids
        else:
            PAUSE.wait(0.05)
    raise RuntimeError(f"{count} workers never settled:\n{server.output()[-3000:]}")


def redirects(server: Gunicorn, count: int) -> list[Save]:
    """Part 4 on `server` (not started yet): `count` saves, every worker done loading
    the app before each."""
    app, workers = server.app, server.workers
    rng = random.Random(13)
    results = []
    try:
        server.start()
        pids = settled(server, workers, set())
        for n in range(1, count + 1):
            PAUSE.wait(rng.uniform(0, 1))
            results.append(save(app.target, f"r{n}", server.port))
            pids = settled(server, workers, pids)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{server.output()[-3000:]}") from None
    finally:
        server.stop()
    return results


def stdlib_needed() -> list[str]:
    """The standard library modules that importing reload_middleware loads, in a fresh
    interpreter, in the order it loads them."""
    code = ("import sys; before = set(sys.modules); import reload_middleware; "
            "print(','.join(m for m in sys.modules if m not in before "
            "and m.partition('.')[0] in sys.stdlib_module_names))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=server_env())
    return done.stdout.strip().split(",")


def profile(app: benchlib.App, runs: int) -> dict[str, dict[str, list[float]]]:
    """Part 5: script -> step -> [ms, MB of VmRSS after it], medians of `runs` fresh
    interpreters for each script, in turn; "preflight" is [ms]."""
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    stdlib = ",".join(stdlib_needed())
    for _ in range(runs):
        for name in VARIANTS:
            done = subprocess.run(
                [sys.executable, "-c", PROFILE, str(app.root), name, ",".join(app.top), stdlib],
                capture_output=True, text=True, check=False, env=server_env(), cwd=app.root,
                timeout=300)
            if done.returncode or not done.stdout.strip():
                raise RuntimeError(f"profile of {name} failed:\n{done.stderr[-3000:]}")
            found[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    failures = {r["failure"] for r in found["wrapped"]} - {None}
    if failures:
        raise RuntimeError(f"the import preflight failed: {failures}")
    steps: dict[str, dict[str, list[float]]] = {}
    for name, results in found.items():
        steps[name] = {
            step: [benchlib.median(r["steps"][step][0] * 1e3 for r in results),
                   benchlib.median(r["steps"][step][1] for r in results)]
            for step in results[0]["steps"]
        }
        steps[name]["threads"] = [benchlib.median(r["threads"] for r in results)]
    for alone in ("preflight", "lstat", "schedule", "roots"):
        scale = 1 if alone == "roots" else 1e3  # a count; the others are seconds
        steps["wrapped"][alone] = [benchlib.median(r[alone] * scale for r in found["wrapped"])]
    return steps


def spread(values: Sequence[float], unit: float = 1.0, digits: int = 3) -> str:
    """Median (min - max), in `unit`s."""
    v = [x / unit for x in values]
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f} - {max(v):.{digits}f})"


def grid(title: str, rows: list[list[str]]) -> None:
    """A table: the first column to the left, the others to the right."""
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(len(rows[0]))]
    print(f"\n{title}")
    for row in rows:
        print("".join(text.ljust(w) if i == 0 else text.rjust(w)
                      for i, (text, w) in enumerate(zip(row, widths, strict=True))).rstrip())


def versions(apache: bool) -> str:
    """gunicorn, and Apache with mod_wsgi and its Python: the line after the first."""
    line = f"gunicorn {importlib.metadata.version('gunicorn')}"
    if apache:
        code = ("import importlib.metadata as m, platform; "
                "print(m.version('mod_wsgi'), platform.python_version())")
        out = subprocess.run([str(DEFAULT_VENV / "bin" / "python"), "-c", code],
                             capture_output=True, text=True, check=True).stdout.split()
        httpd = subprocess.run([str(APACHE), "-v"], capture_output=True, text=True, check=False)
        found = re.search(r"Apache/([\d.]+)", httpd.stdout)
        line += (f"; Apache {found[1] if found else '?'}, mod_wsgi {out[0]} on Python {out[1]}"
                 " (daemon mode)")
    return line


def report_starts(found: dict[tuple[str, str], list[Start]]) -> dict[str, float]:
    """Print parts 1 and 2 with their verdicts; "server variant" -> its median start, s."""
    names = {"gunicorn": "gunicorn sync, 1 worker", "apache": "Apache daemon, 1 process"}
    servers = list(dict.fromkeys(kind for kind, _ in found))
    runs = len(found[servers[0], "bare"])

    def med(kind: str, variant: str, field: str) -> float:
        return float(statistics.median(getattr(s, field) for s in found[kind, variant]))

    rows = [["", "bare", "with middleware", "difference", "ratio"]]
    for kind in servers:
        bare, wrapped = med(kind, "bare", "seconds"), med(kind, "wrapped", "seconds")
        rows.append([names[kind], spread([s.seconds for s in found[kind, "bare"]]),
                     spread([s.seconds for s in found[kind, "wrapped"]]),
                     f"{wrapped - bare:+.3f}", f"{wrapped / bare:.2f}"])
    grid(f"1. start to the first answer, s, median (min - max) of {runs}:", rows)
    for kind in servers:
        bare, wrapped = med(kind, "bare", "seconds"), med(kind, "wrapped", "seconds")
        allowed = max(START_SHARE * bare, START_FLOOR)
        benchlib.verdict(wrapped - bare <= allowed,
                         f"{names[kind]}: the middleware adds at most 10 % or 50 ms to a start",
                         f"{(wrapped - bare) * 1e3:+.0f} ms, allowed {allowed * 1e3:.0f} ms")
    rows = [["", "bare", "with middleware", "difference"]]
    what = {"gunicorn": "gunicorn worker", "apache": "Apache daemon process"}
    for kind in servers:
        rss = med(kind, "bare", "rss_mb"), med(kind, "wrapped", "rss_mb")
        threads = med(kind, "bare", "threads"), med(kind, "wrapped", "threads")
        rows.append([f"{what[kind]}: VmRSS, MB", f"{rss[0]:.1f}", f"{rss[1]:.1f}",
                     f"{rss[1] - rss[0]:+.1f}"])
        rows.append([f"{what[kind]}: threads", f"{threads[0]:.0f}", f"{threads[1]:.0f}",
                     f"{threads[1] - threads[0]:+.0f}"])
    grid(f"2. after the first answer, median of {runs}:", rows)
    for kind in servers:
        added = med(kind, "wrapped", "rss_mb") - med(kind, "bare", "rss_mb")
        benchlib.verdict(added <= RSS_TARGET_MB,
                         f"{what[kind]}: the middleware adds at most {RSS_TARGET_MB:g} MB",
                         f"{added:+.1f} MB")
    return {f"{kind} {variant}": med(kind, variant, "seconds")
            for kind in servers for variant in VARIANTS}


def report_profile(steps: dict[str, dict[str, list[float]]], runs: int) -> None:
    bare, wrapped = steps["bare"], steps["wrapped"]
    labels = {"app": "the app's packages imported",
              "stdlib": "the stdlib modules reload_middleware needs",
              "watchdog": "import watchdog (its events and observers)",
              "import": "import reload_middleware",
              "script": "the script: ReloadMiddleware(app)", "request": "the first request"}
    rows = [["", "bare: ms", "RSS MB", "middleware: ms", "RSS MB", "added ms", "RSS diff"]]
    for step, label in labels.items():
        mine = wrapped[step]
        # Where the bare app has no such step, its time is none and its RSS the app's;
        # the RSS difference is the one after the step (what the middleware holds so far).
        theirs = bare.get(step, [0.0, bare["app"][1]])
        rows.append([label, f"{bare[step][0]:.1f}" if step in bare else "-",
                     f"{bare[step][1]:.1f}" if step in bare else "-",
                     f"{mine[0]:.1f}", f"{mine[1]:.1f}", f"{mine[0] - theirs[0]:+.1f}",
                     f"{mine[1] - theirs[1]:+.1f}"])
    added = sum(wrapped[step][0] - bare.get(step, [0.0])[0] for step in labels if step != "app")
    rows.append(["added by the middleware (after the app)", "", "", "", "",
                 f"{added:+.1f}", f"{wrapped['request'][1] - bare['request'][1]:+.1f}"])
    rows.append(["threads after the first request", f"{bare['threads'][0]:.0f}", "",
                 f"{wrapped['threads'][0]:.0f}", "", "", ""])
    rows.append(["the import preflight (a separate process)", "", "",
                 f"{wrapped['preflight'][0]:.1f}", "", "", ""])
    floor = wrapped["watchdog"][0] + 2 * wrapped["lstat"][0] + wrapped["schedule"][0]
    rows += [["floor: one lstat of each tracked file", "", "", f"{wrapped['lstat'][0]:.1f}",
              "", "", ""],
             ["floor: watchdog's schedule of the same roots", "", "",
              f"{wrapped['schedule'][0]:.1f}", "", "", ""],
             ["floor, whole: watchdog's import + 2 x lstat + schedule", "", "", f"{floor:.1f}",
              "", "", ""]]
    grid(f"5. where a start goes, in fresh interpreters, median of {runs} (RSS: VmRSS after "
         "the step):", rows)
    roots = wrapped["roots"][0]
    threads = wrapped["threads"][0] - bare["threads"][0]
    counted = 4 + roots - 1 + DISPATCHER
    benchlib.verdict(threads <= counted, "threads: 4 for one watched root and one per further "
                     "root, and watchdog's dispatcher",
                     f"{threads:.0f} added for {roots:.0f} roots: {counted:.0f} by that count")
    own = added - wrapped["stdlib"][0]
    print(f"  added beyond the standard library: {own:+.1f} ms, of which the floor "
          f"{floor:.1f} ms and {own - floor:.1f} ms above it; a start may gain "
          f"{START_FLOOR * 1e3:.0f} ms (or 10 %)")


def report_saves(found: dict[str, list[Save]], gunicorn_starts: dict[str, float]) -> None:
    count, later = len(found["import"]), len(found["import, later"])
    app_start = gunicorn_starts["gunicorn bare"]
    rows = [["", "save -> new code", "save -> 307", "307 -> new code"]]
    for name, label in (("import", "preflight=import (the default)"),
                        ("compile", "preflight=compile")):
        times = [s.seconds for s in found[name]]
        redirected = [s.redirected for s in found[name] if s.redirected is not None]
        after = [s.seconds - s.redirected for s in found[name] if s.redirected is not None]
        rows.append([label, spread(times), spread(redirected) if redirected else "-",
                     spread(after) if after else "-"])
    rows.append(["the app's start (gunicorn, bare, part 1)", f"{app_start:.3f}", "", ""])
    rows.append(["  with the middleware (part 1)", f"{gunicorn_starts['gunicorn wrapped']:.3f}",
                 "", ""])
    grid(f"3. save to new code under gunicorn (sync, 1 worker), s, median (min - max) "
         f"of {count}, requests from the save on:", rows)
    for name in ("import", "compile"):
        median = statistics.median(s.seconds for s in found[name])
        allowed = app_start + SAVE_MARGIN
        benchlib.verdict(median <= allowed, f"preflight={name}: save to new code at most the "
                         f"app's start + {SAVE_MARGIN:g} s",
                         f"{median:.3f} s, allowed {allowed:.3f} s")
    rows = [["", "first request -> new code", "save -> new code"]]
    for name, label in (("import", "preflight=import (the default)"),
                        ("compile", "preflight=compile")):
        runs = found[f"{name}, later"]
        rows.append([label, spread([s.waited for s in runs]), spread([s.seconds for s in runs])])
    grid(f"3b. the same, the first request {LATER:g} s after the save (the import preflight "
         f"runs ahead of it), s, median (min - max) of {later}:", rows)
    waits = {name: [s.waited for s in found[f"{name}, later"]] for name in ("import", "compile")}
    noise = benchlib.median(abs(w - benchlib.median(waits["compile"])) for w in waits["compile"])
    excess = benchlib.median(waits["import"]) - benchlib.median(waits["compile"])
    benchlib.verdict(excess <= noise, "the import preflight adds nothing measurable when the "
                     f"request comes {LATER:g} s after the save",
                     f"import - compile: {excess * 1e3:+.0f} ms, noise (median absolute "
                     f"deviation of compile) {noise * 1e3:.0f} ms")


def report_apache_saves(found: dict[str, list[Save]], app_start: float) -> None:
    """Part 3c, against the app's own start under Apache plus Apache's one-second tick
    (the parent's maintenance loop, which starts a new daemon process)."""
    rows = [["", "save -> new code"],
            ["with the middleware (default options)",
             spread([s.seconds for s in found["middleware"]])],
            ["bare, mod_wsgi's script reloading (module saved, script touched)",
             spread([s.seconds for s in found["touch"]])],
            ["the app's start (Apache, bare, part 1)", f"{app_start:.3f}"]]
    grid(f"3c. save to new code under Apache daemon mode (1 preloaded process), s, median "
         f"(min - max) of {len(found['middleware'])}, requests from the save on:", rows)
    median = statistics.median(s.seconds for s in found["middleware"])
    floor = statistics.median(s.seconds for s in found["touch"])
    benchlib.verdict(median <= app_start + TICK, "Apache: save to new code at most the "
                     f"app's start + Apache's tick ({TICK:g} s)",
                     f"{median:.3f} s, allowed {app_start + TICK:.3f} s; mod_wsgi's own "
                     f"reloading {floor:.3f} s, {median - floor:+.3f} s from it")


def redirect_servers(app: benchlib.App, workers: int) -> dict[str, Gunicorn]:
    """Part 4's servers, by label: gunicorn sync with `workers` workers, gthread with 3
    workers of 8 threads, and uWSGI with 4 workers where it is installed."""
    servers = {f"gunicorn (sync, {workers} workers)": Gunicorn(app, "wrapped", workers),
               "gunicorn (gthread, 3 workers x 8 threads)": Gunicorn(
                   app, "wrapped", 3, kind="gthread", threads=8)}
    if UWSGI_BINARY is not None:
        servers["uWSGI (4 workers, the app loaded in the master)"] = UWSGI(app, "wrapped", 4)
    return servers


def report_redirects(found: list[Save], server: str) -> None:
    hops = [s.hops for s in found]
    times = [s.seconds for s in found]
    print(f"\n4. redirects per request under {server}, {len(found)} saves:")
    print(f"  the most 307s one request met, per save: max {max(hops)}, median "
          f"{statistics.median(hops):g} ({', '.join(map(str, hops))})")
    print(f"  requests until the new VERSION, per save: "
          f"{', '.join(str(s.requests) for s in found)}")
    print(f"  save -> new code: {spread(times)} s")
    benchlib.verdict(max(hops) <= REDIRECT_TARGET,
                     f"{server}: at most {REDIRECT_TARGET} redirects for one request",
                     f"max {max(hops)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts of each variant")
    parser.add_argument("--saves", type=int, default=10, help="saves of each preflight")
    parser.add_argument("--later-saves", type=int, default=20,
                        help=f"saves of each preflight with the first request {LATER:g} s later")
    parser.add_argument("--apache-saves", type=int, default=10,
                        help="saves under Apache daemon mode, with the middleware and with "
                        "mod_wsgi's own script reloading")
    parser.add_argument("--redirect-saves", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8, help="for the redirect count")
    parser.add_argument("--modules", type=int, default=MODULES)
    parser.add_argument("--tops", type=int, default=TOPS, help="top-level packages")
    parser.add_argument("--no-apache", action="store_true", help="gunicorn only")
    args = parser.parse_args()
    reason = "--no-apache" if args.no_apache else apache_available(DEFAULT_VENV)
    began = time.monotonic()
    print(f"Figure 11: big apps, {args.modules:,} modules in {args.tops} top-level packages "
          f"({benchlib.machine()})")
    print(versions(reason is None))
    if reason:
        print(f"no Apache rows: {reason}")
    # Under a directory www-data can reach: Apache's daemons load the same files.
    base = prepare_run_dir()
    try:
        app = benchlib.generate_app(base / "a", args.modules, tops=args.tops)
        add_scripts(app)
        other = copy_app(app, base / "b")
        readable(base)
        package_bytecode()
        app_starts = report_starts(starts(app, args.runs, reason is None))
        steps = profile(app, args.runs)  # while no module has been saved: all bytecode valid
        found = saves({"import": app, "compile": other}, args.saves, args.later_saves)
        report_saves(found, app_starts)
        if reason is None and args.apache_saves:
            report_apache_saves(apache_saves({"middleware": app, "touch": other},
                                             args.apache_saves), app_starts["apache bare"])
        for label, server in redirect_servers(app, args.workers).items():
            report_redirects(redirects(server, args.redirect_saves), label)
        if UWSGI_BINARY is None:
            print("\nno uWSGI row: uwsgi is not installed")
        report_profile(steps, args.runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n({time.monotonic() - began:.0f} s in all)")


if __name__ == "__main__":
    main()
