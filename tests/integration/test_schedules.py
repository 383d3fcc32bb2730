"""The schedule checker against real servers: saves under load are never silently stale.

Each configuration runs seeded random schedules (see schedules.py); the seed is printed
with a summary line per run, and RM_SCHEDULE_SEED=<seed> replays a failing one. The
servers write bytecode, as they do on a developer's machine.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from apache import Apache, ApacheSite, free_port, older_than, prepare_run_dir, wait_for
from procs import UWSGI, gunicorn, running, uwsgi
from schedules import (
    ACTION,
    GRACE,
    HOLD,
    LOADED,
    LOST,
    MODULES,
    SCRIPT,
    SEEDS,
    SUMMARIES,
    TEMPLATE,
    WEIGHTS,
    Outcome,
    Save,
    aged,
    count_lines,
    hand_over,
    make_app,
    plan,
    run,
    steps,
    write,
)
from support import FORCED, PROBE, file_clock_after, require

from reload_middleware.tracking import YOUNG_NS

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Config:
    """A server configuration: how it starts, how many processes serve, how many clients."""

    name: str
    server: str  # "apache", "gunicorn" or "uwsgi"
    processes: int
    clients: int = 8
    options: dict[str, Any] = field(default_factory=dict)  # Apache(...) keywords
    lazy_apps: bool = False
    # uWSGI serves a mod_wsgi site's script (SCRIPT) by its absolute path, from a working
    # directory that is not the app's (docs/getting-started.md, uWSGI).
    wsgi_script: bool = False
    # The files a schedule saves and how often a single save picks each (see `plan()`).
    files: tuple[str, ...] = MODULES
    weights: tuple[int, ...] = WEIGHTS

    @property
    def started(self) -> str:
        """The server's log line for each process it starts ('' when none is replaced)."""
        if self.server == "apache":
            return "" if self.options.get("mode") == "embedded" else DAEMON_STARTED
        return "Booting worker with pid" if self.server == "gunicorn" else "spawned uWSGI worker"


# mod_wsgi's line for each daemon process it starts: "Starting daemon process" (4.9, 6.x)
# or "Starting process" (5.0).
DAEMON_STARTED = "Starting (?:daemon )?process '"


CONFIGS = [
    Config("daemon-preloaded", "apache", 2),
    Config("daemon-on-demand", "apache", 2, options={"preload": False}),
    Config("embedded", "apache", 1, options={"mode": "embedded"}),
    Config("gunicorn-sync", "gunicorn", 2),
    # Two clients: a uWSGI worker serves one request at a time.
    Config("uwsgi-preforked", "uwsgi", 2, clients=2),
    Config("uwsgi-lazy-apps", "uwsgi", 2, clients=2, lazy_apps=True),
    # Preforked: the master runs the script again at each graceful reload, a save of the
    # script included; the preflight runs it by path (uWSGI names it uwsgi_file_...).
    Config("uwsgi-wsgi-script", "uwsgi", 2, clients=2, wsgi_script=True,
           files=(*MODULES, SCRIPT), weights=(*WEIGHTS, 2)),
]


@dataclass
class Served:
    """A running server: where it listens and what it logged."""

    port: int
    log: Callable[[], str]  # what it logged so far; complete once it has stopped


@pytest.fixture
def app_dir() -> Iterator[Callable[[], Path]]:
    """make(): a fresh directory under /tmp that www-data can reach, removed after the test."""
    made: list[Path] = []

    def make() -> Path:
        made.append(prepare_run_dir())
        return made[-1]

    yield make
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


def apache_site(root: Path) -> ApacheSite:
    """The app as an Apache site, with the probe script, owned by www-data (for .pyc files)."""
    site = ApacheSite(root)
    make_app(root, site.script_name)
    site.write("probe/probe.wsgi", PROBE)
    hand_over(root)
    aged(root)
    return site


@contextmanager
def serving(config: Config, root: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    """The app under `root`, served by `config`'s server, which writes bytecode."""
    if config.server == "apache":
        start_apache: Callable[..., Apache] = request.getfixturevalue("apache")
        with start_apache(apache_site(root), bytecode=True, **config.options) as server:
            yield Served(server.port, server.error_log)
        return
    port = free_port()
    script = make_app(root, SCRIPT if config.wsgi_script else "app.py")
    aged(root)
    live: list[str] = []
    with tempfile.TemporaryDirectory() as elsewhere:
        argv, cwd = command(config, port, script, Path(elsewhere))
        with running(argv, cwd, port, bytecode=True, live=live):
            yield Served(port, lambda: "".join(live))


def command(config: Config, port: int, script: Path, elsewhere: Path) -> tuple[list[str], Path]:
    """gunicorn's or uWSGI's command line and working directory: the app's directory, but
    `elsewhere` (empty) where uWSGI serves the script by its absolute path, as a service
    does: the script alone makes the app's modules importable."""
    if config.server == "gunicorn":
        return gunicorn(port, "sync"), script.parent
    if config.wsgi_script:
        return uwsgi(port, False, script=str(script)), elsewhere
    return uwsgi(port, config.lazy_apps), script.parent


def tally(outcome: Outcome, log: str, started: str, began: float) -> None:
    """Fill in what the server's log tells about the run, and print its summary line."""
    outcome.seconds = time.monotonic() - began
    if started:
        outcome.restarts = count_lines(log, started) - outcome.processes
    outcome.actions = count_lines(log, ACTION)
    outcome.lost, outcome.holds = count_lines(log, LOST), count_lines(log, HOLD)
    notable = (ACTION, LOST, HOLD, "no file event told of it", "new code not loaded")
    outcome.log_lines = [line for line in log.splitlines()
                         if any(n in line for n in notable)
                         or (started and re.search(started, line))]
    SUMMARIES.append(outcome.summary())
    print(outcome.summary())


@pytest.mark.parametrize("config", CONFIGS, ids=[config.name for config in CONFIGS])
def test_no_request_is_silently_stale(
    config: Config, request: pytest.FixtureRequest, app_dir: Callable[[], Path]
) -> None:
    """Every GET starting 0.25 s after a save (5.25 s after a save whose events were lost)
    gets code that new; none fails; restarts bounded; a no-op chmod causes no action."""
    if config.server == "uwsgi":
        require(None if UWSGI else "uwsgi is not installed (pip install uwsgi)")
    outcomes = []
    for seed in SEEDS:
        saves = plan(seed, steps(), config.files, config.weights)
        root = app_dir()
        began = time.monotonic()
        with serving(config, root, request) as served:
            outcome = run(config.name, seed, served.port, root, saves,
                          processes=config.processes, clients=config.clients,
                          # uWSGI's graceful reload under --http-socket resets a just-accepted
                          # connection now and then, with no middleware at all.
                          retry_reset=config.server == "uwsgi", log=served.log)
        tally(outcome, served.log(), config.started, began)
        outcomes.append(outcome)
    failing = [outcome.details() for outcome in outcomes if outcome.problems()]
    assert not failing, "\n\n".join(failing)


def first_answers(
    name: str, server: Apache, root: Path, save: Save, began: float
) -> Outcome:
    """Save, wait out the grace, then 8 clients for 2.5 s: the first answers are judged too."""
    saved = write(root, save)
    threading.Event().wait(GRACE)
    outcome = run(name, None, server.port, root, (), processes=2, clients=8, lead=0, tail=2.5,
                  prior=[saved])
    server.stop()
    tally(outcome, server.error_log(), DAEMON_STARTED, began)
    return outcome


@pytest.mark.parametrize("young", [True, False], ids=["young", "older"])
def test_setenv_watch_path_saved_before_the_first_request(
    young: bool, apache: Callable[..., Apache], app_dir: Callable[[], Path]
) -> None:
    """A template in a SetEnv watch path, saved once preloaded daemons read it, is new at
    once, also where the daemons are past the 2 s in which a first request decides."""
    root = app_dir()
    began = time.monotonic()
    server = apache(apache_site(root), bytecode=True, ready_path="/probe",
                    location_config=f"SetEnv reload_middleware.watch {root / 'templates'}")
    server.wait_for_log(LOADED, count=2)
    # Both middlewares are built: a save stamped from now on is one they must serve.
    built = time.time_ns()
    wait_for(lambda: file_clock_after(built), 5, "the file clock")
    if not young:
        older_than(server, YOUNG_NS / 1e9)
    name = "setenv-watch" if young else "setenv-watch-older"
    outcome = first_answers(name, server, root, Save(1, (TEMPLATE,), False, 0), began)
    assert not outcome.problems(), outcome.details()


def test_on_demand_daemons_load_a_save_made_before_their_first_request(
    apache: Callable[..., Apache], app_dir: Callable[[], Path]
) -> None:
    """Daemons that load the script on demand serve a save made before it: no 307, no restart."""
    root = app_dir()
    began = time.monotonic()
    server = apache(apache_site(root), bytecode=True, preload=False, ready_path="/probe")
    # The probe script is preloaded: both daemons have started and run Python.
    server.wait_for_log("probe/probe.wsgi'", count=2)  # its load, in every version's words
    assert LOADED not in server.error_log()
    outcome = first_answers("on-demand-first", server, root, Save(1, MODULES, False, 0), began)
    problems = outcome.problems()
    if outcome.verdict.redirects:
        problems.append(f"{outcome.verdict.redirects} redirects")
    forced = len(re.findall(FORCED, server.error_log()))
    if outcome.restarts or outcome.actions or forced:
        problems.append(f"{outcome.restarts} restarts, {outcome.actions} actions, "
                        f"{forced} forced restarts from mod_wsgi")
    assert not problems, f"{'; '.join(problems)}\n{outcome.details()}"


# Many workers, many clients (docs/getting-started.md, gunicorn and uWSGI): (name, argv
# for a port, processes, clients).
CHAINS = [
    ("gunicorn-sync-8", lambda port: gunicorn(port, "sync", workers=8), 8, 24),
    ("gunicorn-gthread-3x8", lambda port: gunicorn(port, "gthread", workers=3, threads=8), 3, 24),
    ("uwsgi-4", lambda port: uwsgi(port, False, processes=4), 4, 8),
    ("uwsgi-4-lazy-apps", lambda port: uwsgi(port, True, processes=4), 4, 8),
]


@pytest.mark.parametrize(("name", "argv", "processes", "clients"), CHAINS,
                         ids=[chain[0] for chain in CHAINS])
def test_a_get_meets_at_most_two_redirects(
    name: str, argv: Callable[[int], list[str]], processes: int, clients: int,
    app_dir: Callable[[], Path],
) -> None:
    """Four saves 2 s apart under many workers and clients: no stale answer, and no GET
    bounced more than twice for a change, as the worker that acts replaces its siblings
    older than the change before it sends its 307 (before, each worker bounced it once).
    gthread workers excepted: one notices SIGTERM only when its poll wakes (up to 1 s
    later; it does not watch gunicorn's signal pipe) and takes new connections till
    then, so a redirected GET may still meet each of them once."""
    if name.startswith("uwsgi"):
        require(None if UWSGI else "uwsgi is not installed (pip install uwsgi)")
    root = app_dir()
    make_app(root, "app.py")
    aged(root)
    saves = [Save(index, ("webapp/views.py",), False, 2.0) for index in range(1, 5)]
    port, live = free_port(), list[str]()
    began = time.monotonic()
    with running(argv(port), root, port, bytecode=True, live=live):
        # At most 2 redirects for each change (a save during a GET is one more).
        hops = processes if "gthread" in name else 2
        outcome = run(name, None, port, root, saves, processes=processes, clients=clients,
                      retry_reset=name.startswith("uwsgi"), hops=hops, log=lambda: "".join(live))
    started = "spawned uWSGI worker" if name.startswith("uwsgi") else "Booting worker with pid"
    tally(outcome, "".join(live), started, began)
    assert not outcome.problems(), outcome.details()

