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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from apache import free_port, wait_for
from procs import fetch, running
from support import require

pytestmark = pytest.mark.integration

UWSGI = shutil.which("uwsgi", path=os.path.dirname(sys.executable)) or shutil.which("uwsgi")
MODES = {"preforked": [], "lazy-apps": ["--lazy-apps"], "lazy": ["--lazy"]}
# What uWSGI's master logs: a graceful reload of the instance, a worker started again.
INSTANCE_RELOAD = "...gracefully killing workers..."
WORKER_RESPAWN = "Respawned uWSGI worker"


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


@pytest.mark.parametrize("mode", list(MODES))
def test_no_get_after_a_save_gets_old_code(project: Path, mode: str) -> None:
    """Two clients browse while 5 saves land 1.7 s apart, bytecode written as usual: no
    GET that starts after a save has been seen gets older code, none fails, no save is
    lost, and nothing restarts in a loop."""
    port = free_port()
    views = project / "webapp" / "views.py"
    saves: list[float] = []
    outcomes: list[Outcome] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            outcomes.append(browse(port))

    written_before_start(project)
    with running(uwsgi(port, mode), project, port, bytecode=True) as printed:
        wait_for(lambda: version(port) == "1", 20, "the first version served")
        clients = [threading.Thread(target=client) for _ in range(2)]
        for thread in clients:
            thread.start()
        try:
            for n in range(2, 2 + SAVES):
                threading.Event().wait(GAP)  # the schedule itself, not a synchronisation
                views.write_text(f"VERSION = '{n}'\n")  # every version the same length
                saves.append(time.monotonic())
            served = within(30, lambda: any(o.version == 1 + SAVES for o in list(outcomes)))
        finally:
            stop.set()
            for thread in clients:
                thread.join(130)
    log = printed[0]
    old = stale(outcomes, saves)
    failed = [o for o in outcomes if o.error is not None]
    hops = Counter(o.hops for o in outcomes if o.version is not None)
    actions = log.count("changed: restart-uwsgi")
    print(f"\nuWSGI {mode}: {len(outcomes)} GETs, {len(old)} stale, {len(failed)} failed, "
          f"last save {'served' if served else 'NEVER served'}, "
          f"{sum(o.resets for o in outcomes)} resets retried, hops {dict(sorted(hops.items()))}; "
          f"{SAVES} saves: {actions} actions, {log.count(INSTANCE_RELOAD)} instance reloads, "
          f"{log.count(WORKER_RESPAWN)} worker restarts")
    assert served, "the last save was never served: a reload was lost"
    assert not old, [(round(o.started - saves[0], 3), o.version) for o in old]
    assert not failed, [o.error for o in failed]
    assert max(hops) < BROWSER_HOPS
    # Each of the 2 workers acts at most once per save, and once more when a save lands
    # while the next code is being imported: more would be a loop.
    assert 1 <= actions <= 2 * 2 * SAVES
