"""Real uWSGI, a master and 2 workers: preforked, --lazy-apps and the older --lazy."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from apache import free_port, wait_for
from procs import fetch, make_project, running
from support import require

pytestmark = pytest.mark.integration

UWSGI = shutil.which("uwsgi", path=os.path.dirname(sys.executable)) or shutil.which("uwsgi")
MODES = {"preforked": [], "lazy-apps": ["--lazy-apps"], "lazy": ["--lazy"]}
# What uWSGI's master logs: a graceful reload of the instance, a worker started again.
INSTANCE_RELOAD = "...gracefully killing workers..."
WORKER_RESPAWN = "Respawned uWSGI worker"
NOT_LOADED = "new code not loaded"  # the middleware keeps the old code: a failed preflight


def uwsgi(port: int, mode: str, processes: int = 2, master: bool = True) -> list[str]:
    require(None if UWSGI else "uwsgi is not installed (pip install uwsgi)")
    assert UWSGI is not None
    return [UWSGI, "--http-socket", f"127.0.0.1:{port}", "--processes", str(processes),
            "--wsgi-file", "app.py", "--callable", "application", "--need-app",
            "--die-on-term", "--enable-threads", "--disable-logging",
            *(["--master"] if master else []), *MODES[mode]]


def written_before_start(project: Path) -> None:
    """Wait until the project's files are older than a server started now can tell.

    A process's start time is known to a clock tick (10 ms) and file times lag the clock
    by one: a file written in the same tick counts as changed after the start, and the
    first request would reload once more. A server started after a checkout never sees it.
    """
    newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in project.rglob("*"))
    wait_for(lambda: time.time_ns() > newest + 50_000_000, 5, "the clock past the files")


def version(port: int) -> object:
    status, body, _ = fetch(port)
    assert status == 200, body
    return json.loads(body)["version"]


@pytest.mark.parametrize("mode", ["preforked", "lazy-apps"])
def test_edit_is_served_after_one_reload(project: Path, mode: str) -> None:
    """An edit is served after one restart: of the instance (preforked), of each worker
    on its own (lazy-apps); no request fails."""
    port = free_port()
    written_before_start(project)
    with running(uwsgi(port, mode), project, port) as printed:
        assert all(version(port) == "1" for _ in range(10))
        (project / "webapp" / "views.py").write_text("VERSION = '2'\n")
        wait_for(lambda: version(port) == "2", 20, "the edit being served")
        assert all(version(port) == "2" for _ in range(20))
    log = printed[0]
    assert 1 <= log.count("changed: restart-uwsgi") <= 2  # each worker that got a request acts
    if mode == "preforked":
        assert log.count(INSTANCE_RELOAD) == 1
    else:
        assert log.count(INSTANCE_RELOAD) == 0
        assert 1 <= log.count(WORKER_RESPAWN) <= 2


def test_os_variables_configure_it(project: Path) -> None:
    """uWSGI cannot set environ keys: RELOAD_MIDDLEWARE_TRIGGER makes only a touch count."""
    port = free_port()
    written_before_start(project)
    argv = uwsgi(port, "lazy-apps")
    with running(argv, project, port, {"trigger": "reload.stamp"}) as printed:
        assert version(port) == "1"
        (project / "webapp" / "views.py").write_text("VERSION = '2'\n")
        assert all(version(port) == "1" for _ in range(10))  # edits alone do nothing
        (project / "reload.stamp").touch()
        wait_for(lambda: version(port) == "2", 20, "the touch reloading the instance")
    assert 1 <= printed[0].count("changed: restart-uwsgi") <= 2


def test_without_a_master_it_reloads_in_process(project: Path) -> None:
    """No master to start a fresh worker: the worker reloads the app in-process."""
    port = free_port()
    written_before_start(project)
    with running(uwsgi(port, "preforked", processes=1, master=False), project, port) as printed:
        status, body, _ = fetch(port)
        pid = json.loads(body)["pid"]
        (project / "webapp" / "views.py").write_text("VERSION = '2'\n")
        wait_for(lambda: version(port) == "2", 20, "the edit being served")
        status, body, hops = fetch(port)
        assert (status, json.loads(body)["pid"], hops) == (200, pid, 0)
    assert "changed: restart-uwsgi" in printed[0]
    assert "reloaded in" in printed[0]


# The schedule of the "never silently stale" rule: saves about 1.7 s apart while two
# clients send GETs all along, following redirects as a browser does.
SAVES = 5
GAP = 1.7
GRACE = 0.25  # from a save to the moment every worker has seen its events
BROWSER_HOPS = 20  # browsers give up after 20 redirects
# A reset connection as http.client reports it. uWSGI's graceful reload under
# --http-socket resets a just-accepted connection about once in 60 reloads with no
# middleware at all; a browser retries such a GET once.
RESET = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


@dataclass
class Outcome:
    started: float
    version: int | None = None
    hops: int = 0
    resets: int = 0
    error: str | None = None


def browse(port: int) -> Outcome:
    """One GET as a browser makes it: 307s followed, a reset connection retried once."""
    outcome = Outcome(time.monotonic())
    for _ in range(2):
        try:
            status, body, outcome.hops = fetch(port, hops=BROWSER_HOPS, timeout=60)
        except RESET as exc:
            outcome.resets += 1
            outcome.error = repr(exc)
            continue
        except (OSError, AssertionError, http.client.HTTPException) as exc:
            outcome.error = repr(exc)
        else:
            outcome.error = None if status == 200 else f"{status} {body[:200]}"
            if status == 200:
                outcome.version = int(json.loads(body)["version"])
        return outcome
    return outcome


def within(seconds: float, predicate: Callable[[], bool]) -> bool:
    """Whether `predicate` comes true within `seconds`, polled as wait_for polls."""
    try:
        wait_for(predicate, seconds, "")
    except AssertionError:
        return False
    return True


def stale(outcomes: list[Outcome], saves: list[float]) -> list[Outcome]:
    """Answers older than the newest save made at least GRACE before the request started."""
    due = [1 + sum(o.started >= s + GRACE for s in saves) for o in outcomes]
    return [o for o, d in zip(outcomes, due, strict=True) if o.version and o.version < d]


@dataclass
class Run:
    """What the clients saw while the saves landed."""

    outcomes: list[Outcome]
    saves: list[float]
    served: bool  # the last save's version was served in the end

    def summary(self, log: str) -> str:
        old, hops = stale(self.outcomes, self.saves), Counter(o.hops for o in self.outcomes)
        failed = [o for o in self.outcomes if o.error is not None]
        return (f"{len(self.outcomes)} GETs, {len(old)} stale, {len(failed)} failed, last save "
                f"{'served' if self.served else 'NEVER served'}, "
                f"{sum(o.resets for o in self.outcomes)} resets retried, "
                f"hops {dict(sorted(hops.items()))}; {len(self.saves)} saves: "
                f"{log.count('changed: restart-uwsgi')} actions, "
                f"{log.count(INSTANCE_RELOAD)} instance reloads, "
                f"{log.count(WORKER_RESPAWN)} worker restarts, "
                f"{log.count(NOT_LOADED)} '{NOT_LOADED}' lines")


def browse_while_saving(port: int, edits: Sequence[Callable[[int], object]], clients: int = 2
                        ) -> Run:
    """`clients` threads browse while each edit lands GAP after the one before; edit n
    (from 0) makes the app answer version n + 2. Waits until the last version is served."""
    outcomes: list[Outcome] = []
    saves: list[float] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            outcomes.append(browse(port))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        for n, edit in enumerate(edits):
            threading.Event().wait(GAP)  # the schedule itself, not a synchronisation
            edit(n + 2)
            saves.append(time.monotonic())
        last = 1 + len(edits)
        served = within(30, lambda: any(o.version == last for o in list(outcomes)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(130)
    return Run(outcomes, saves, served)


def check(run: Run, log: str, workers: int = 2) -> None:
    """No GET that started GRACE after a save got older code, none failed, the last save
    was served, no redirect loop, and no more than one action per worker per save (two
    when a save lands while the next code is being imported)."""
    old = stale(run.outcomes, run.saves)
    failed = [o for o in run.outcomes if o.error is not None]
    hops = [o.hops for o in run.outcomes if o.version is not None]
    assert run.served, "the last save was never served: a reload was lost"
    assert not old, [(round(o.started - run.saves[0], 3), o.version) for o in old]
    assert not failed, [o.error for o in failed]
    assert max(hops) < BROWSER_HOPS
    assert 1 <= log.count("changed: restart-uwsgi") <= 2 * workers * len(run.saves)


@pytest.mark.parametrize("mode", list(MODES))
def test_no_get_after_a_save_gets_old_code(project: Path, mode: str) -> None:
    """Two clients browse while 5 saves land 1.7 s apart, bytecode written as usual: no
    GET that starts after a save has been seen gets older code, none fails, no save is
    lost, and nothing restarts in a loop."""
    port = free_port()
    views = project / "webapp" / "views.py"
    written_before_start(project)
    with running(uwsgi(port, mode), project, port, bytecode=True) as printed:
        wait_for(lambda: version(port) == "1", 20, "the first version served")
        # Every version the same length: the .pyc check cannot tell by size.
        run = browse_while_saving(
            port, [lambda n: views.write_text(f"VERSION = '{n}'\n")] * SAVES)
    print(f"\nuWSGI {mode}: {run.summary(printed[0])}")
    check(run, printed[0])


# The script of a mod_wsgi site, served by uWSGI as many do: a `.wsgi` file outside the
# working directory, which puts its own directory on sys.path; or a module of the
# project's package, loaded by name. A save of the script adds one to the version.
SITE_SCRIPT = """\
import json, os, sys
{setup}
from webapp import views
from reload_middleware import ReloadMiddleware

EDITION = {edition}

def app(environ, start_response):
    version = str(int(views.VERSION) + EDITION)
    body = json.dumps({{"pid": os.getpid(), "version": version}}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app, settle=0.02)
"""
ON_PATH = "sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))"


@dataclass
class Site:
    """A project in `root` with its script at `script`; uWSGI runs in another directory,
    `cwd`, as a server started from anywhere does."""

    root: Path
    script: Path
    setup: str  # the script's lines before it imports the app

    @property
    def cwd(self) -> Path:
        return self.root.parent / "elsewhere"

    def write_script(self, edition: int) -> None:
        self.script.write_text(SITE_SCRIPT.format(setup=self.setup, edition=edition))

    def save_version(self, n: int) -> None:
        (self.root / "webapp" / "views.py").write_text(f"VERSION = '{n}'\n")

    def uwsgi(self, port: int, load: list[str]) -> list[str]:
        """uWSGI as the user ran it: a master, 2 processes, the app loaded by `load`."""
        require(None if UWSGI else "uwsgi is not installed (pip install uwsgi)")
        assert UWSGI is not None
        return [UWSGI, "--master", "--processes", "2", "--http-socket", f"127.0.0.1:{port}",
                *load, "--disable-logging"]


def make_site(tmp_path: Path, script: str, setup: str) -> Site:
    """The test project under tmp_path/site, its script at `script` (edition 0)."""
    site = Site(tmp_path / "site", tmp_path / "site" / script, setup)
    site.root.mkdir()
    site.cwd.mkdir()
    make_project(site.root)
    site.write_script(0)
    return site


# How uWSGI is told to load the script: (the script in the site, its lines before the
# app's import, uWSGI's options for it).
LOADS: dict[str, tuple[str, str, Callable[[Path], list[str]]]] = {
    "wsgi-file": ("app.wsgi", ON_PATH, lambda root: ["--wsgi-file", str(root / "app.wsgi")]),
    "module": ("webapp/wsgi.py", "", lambda root: ["--pythonpath", str(root), "--module",
                                                    "webapp.wsgi"]),
}


@pytest.mark.parametrize("load", list(LOADS))
def test_a_script_outside_the_working_directory_reloads(tmp_path: Path, load: str) -> None:
    """uWSGI run as a user runs it for a mod_wsgi site's script, 2 processes, from
    another directory: 5 saves of a module, then one of the script, are each served to
    the 2 clients (no stale answer), and no preflight keeps the old code."""
    script, setup, options = LOADS[load]
    site = make_site(tmp_path, script, setup)
    port = free_port()
    edits: list[Callable[[int], object]] = [site.save_version] * SAVES
    edits.append(lambda n: site.write_script(1))
    with running(site.uwsgi(port, options(site.root)), site.cwd, port) as printed:
        wait_for(lambda: version(port) == "1", 20, "the first version served")
        run = browse_while_saving(port, edits)
    log = printed[0]
    print(f"\nuWSGI --{load} {script} outside the working directory: {run.summary(log)}")
    assert NOT_LOADED not in log, log
    check(run, log)


def test_an_app_that_imports_uwsgi_reloads_and_says_the_preflight_could_not_tell(
    tmp_path: Path,
) -> None:
    """An app that imports uWSGI's own module (for `uwsgi.opt`, or its decorators) cannot
    be imported in a plain interpreter: the import preflight fails for a reason of its
    own, so every save goes ahead on the compile check, and the log says so each time."""
    site = make_site(tmp_path, "app.wsgi", f"{ON_PATH}\nimport uwsgi")
    port = free_port()
    with running(site.uwsgi(port, ["--wsgi-file", str(site.script)]), site.cwd,
                 port) as printed:
        wait_for(lambda: version(port) == "1", 20, "the first version served")
        run = browse_while_saving(port, [site.save_version] * 3)
    log = printed[0]
    print(f"\nuWSGI, an app importing uwsgi: {run.summary(log)}")
    assert NOT_LOADED not in log, log
    own = log.count("import preflight failed for a reason of its own, not the app's (the "
                    "server has uwsgi with no file")
    # Said by the process that ran the preflight, once per change; the others take its
    # result (docs/how-it-works.md, "The preflight, ahead of the request").
    assert len(run.saves) <= own <= log.count("changed: restart-uwsgi"), log
    check(run, log)
