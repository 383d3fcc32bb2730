"""The in-process schedule checker: seeded random schedules against the real watcher.

A schedule (`plan()`) is drawn from a seed: saves of modules and data files (plain,
atomic, several at once, same-second same-size bursts, a `git checkout` of a package
directory, `touch`), modules imported for the first time by requests, a module that
does not compile and its fix, and new processes (the same files, a new middleware built
by executing the script again with the package's process state new), each with a data
directory named only by the environ of its requests. While the steps run, 3 to 8
threads send requests; the app reports the version of every file it serves code or data
from. Threads and inotify do not replay, but the same seed gives the same steps.

Each schedule also inflicts one of the `FAULTS` on the file events (by turns, so any 8
seeds in a row see all of them; longer schedules draw more): a save whose events are
lost (with watchdog's report of the loss, or with none), a lazily imported module
deleted and, after a request, created again, a save dated an hour ahead and one restored
with a time in the past, a writer that holds the file open, a no-op chmod, and an editor
that saves one file every second.

The rule (`Run.report()`): a request that starts `GRACE` seconds or more after a save
completed is served that save or a newer one (a file read while it was being saved in
place may be half written until then); no request fails; after the last change,
requests get the last save (no lost reload) and `QUIET_REQUESTS` more cause no action
(no loop); at most one extra action per change, and a change that does not compile is
attempted once (and one extra), not again on every import. Where the middleware bounds
a fault on purpose the save has a grace of its own (`Save.grace`, see the steps); a
no-op chmod causes no action at all, and no save dated ahead of the clock is taken for a
storm of changes.

    RM_SCHEDULE_SEED=7 pytest tests/test_inprocess.py        # schedule 7 again
    RM_SCHEDULE_SEEDS=200 RM_SCHEDULE_SECONDS=20 pytest tests/test_inprocess.py
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import random
import shutil
import stat
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from watchdog.events import EventsLostEvent

from helpers import DAY, call, new_process, save
from reload_middleware import ReloadMiddleware
from reload_middleware.watching import safety_net, settling
from reload_middleware.watching.watcher import Watcher

GRACE = 0.25  # seconds from a completed save to the requests that must have it
# Events lost: the safety net looks at every tracked file on the request after a report
# of lost events, and every net.PERIOD seconds whether or not one came (docs/promise.md): that
# look, not the events, serves the save, within the net's period and a request.
LOST_GRACE = safety_net.PERIOD + GRACE
# A writer that holds a file open is waited for this long at most from its first write
# (docs/how-it-works.md, step 2): until then the file is not settled, and no request may get it
# half written.
WRITER_BOUND = settling.CLOSE_WAIT
HOUR_NS = 3600 * 10**9
QUIET_REQUESTS = 24  # requests after quiet, none of which may act
STORM_CAP = 3  # saves per data file in one run, see plan()
LATER = tuple(f"mod{n}" for n in range(1, 9))  # on disk from the start, imported mid-run


def seeds() -> list[int]:
    """RM_SCHEDULE_SEED replays one seed; else seeds 1 to RM_SCHEDULE_SEEDS (1 here, so the
    unit suite stays under a minute; `make test` runs 5)."""
    one = os.environ.get("RM_SCHEDULE_SEED")
    if one:
        return [int(one)]
    return list(range(1, int(os.environ.get("RM_SCHEDULE_SEEDS", "1")) + 1))


def seconds() -> float:
    """About how long the steps of one schedule take: RM_SCHEDULE_SECONDS (6)."""
    return float(os.environ.get("RM_SCHEDULE_SECONDS", "6"))


# --- the project on disk ---------------------------------------------------------------------

SCRIPT = """\
import importlib
import os

from reload_middleware import ReloadMiddleware, track
from {package} import views
from {package}.sub import deep

HERE = os.path.dirname(os.path.abspath(__file__))


# A file saved in place is empty for a moment: read then, it is "torn", not an error.
def read(name):
    with open(os.path.join(HERE, name)) as source:
        return source.read().strip() or "torn"


def version(module):
    return getattr(module, "VERSION", "torn")


DATA = read("data/settings.txt")  # its directory is watched only through the environ
TRACKED = read("tracked.txt")
{before}

def app(environ, start_response):
    seen = {{"views": version(views), "deep": version(deep), "data": DATA, "tracked": TRACKED}}
    # Imported inside the request, as Django imports views: lazy always, others once named.
    for name in ["lazy", *filter(None, environ["schedule.imports"].split(","))]:
        seen[name] = version(importlib.import_module("{package}." + name))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [" ".join(f"{{name}}={{version}}" for name, version in seen.items()).encode()]


application = ReloadMiddleware(app)
{after}"""

TRACK = 'track(os.path.join(HERE, "tracked.txt"))  # the old recipe\'s monitor.track()\n'


class World:
    """The project: a package with modules, a data file, a `track()`ed file, the script.

    Every module says `VERSION = '0007'`: all versions of a file have the same size, so
    two saves within one second look alike to Python's bytecode cache.
    """

    def __init__(self, root: Path, track: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.root = root
        self.package = f"sched_{tag}"
        self.name = f"sched_app_{tag}"
        self.script = root / f"{self.name}.py"
        self.data = root / "data"
        package = root / self.package
        self.sub = package / "sub"
        self.files: dict[str, Path] = {
            "views": package / "views.py",
            "deep": self.sub / "deep.py",
            "lazy": package / "lazy.py",
            "data": self.data / "settings.txt",
            "tracked": root / "tracked.txt",
            **{name: package / f"{name}.py" for name in LATER},
        }
        self.versions = dict.fromkeys(self.files, 0)
        self.born = time.time_ns() - DAY  # a checkout older than the first process
        self.sub.mkdir(parents=True)
        self.data.mkdir()
        texts = {path: self.text(name, 0) for name, path in self.files.items()}
        texts[package / "__init__.py"] = texts[self.sub / "__init__.py"] = ""
        texts[self.script] = SCRIPT.format(
            package=self.package, before=TRACK if track == "before" else "",
            after=TRACK if track == "after" else "",
        )
        for path, text in texts.items():
            path.write_text(text)
            os.utime(path, ns=(self.born, self.born))

    def path(self, name: str) -> Path:
        return self.files.get(name) or self.files["views"].with_name(f"{name}.py")

    def text(self, name: str, version: int, *, broken: bool = False) -> str:
        if name in ("data", "tracked"):
            return f"{version:04d}\n"
        return f"VERSION = '{version:04d}'\n" + ("BROKEN = (\n" if broken else "")

    def write(
        self, name: str, version: int, how: str, *, broken: bool = False,
        hold: Callable[[], None] = lambda: None,
    ) -> None:
        """Save a version: `atomic` as most editors (temp file, rename), `plain` in place,
        `slow` in place by a writer that keeps the file open, empty, while `hold()` runs."""
        path, text = self.path(name), self.text(name, version, broken=broken)
        if how == "atomic":
            save(path, text)
            return
        with open(path, "w") as target:
            if how == "slow":
                hold()
            target.write(text)

    def checkout(self, version: int) -> None:
        """What `git checkout` does to a package directory: deleted, then written anew."""
        shutil.rmtree(self.sub)
        self.sub.mkdir()
        (self.sub / "__init__.py").write_text("")
        self.files["deep"].write_text(self.text("deep", version))

    def execute(self) -> ReloadMiddleware:
        """Load the script as a server does in a new process; its middleware."""
        for name in [n for n in sys.modules if n.split(".")[0] in (self.package, self.name)]:
            del sys.modules[name]  # a new process has none of the project's modules
        importlib.invalidate_caches()
        spec = importlib.util.spec_from_file_location(self.name, self.script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.name] = module
        spec.loader.exec_module(module)
        app = module.application
        assert isinstance(app, ReloadMiddleware)
        return app


# --- the schedule ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step: what it does (`kind`) after a pause of `gap` seconds."""

    gap: float
    kind: str  # save, multi, touch, burst, checkout, import, create, broken, restart, FAULTS
    files: tuple[str, ...] = ()  # what it saves, in order
    hows: tuple[str, ...] = ()  # "atomic", "plain" or "slow", one for each file
    variant: str = ""  # burst: same, during-reload, restart; restart: what changes when
    names: tuple[str, ...] = ()  # modules the requests import for the first time here
    hold: float = 0.0  # slow: seconds the writer keeps the file open
    count: int = 0  # autosave: how many saves, one a second

    def __str__(self) -> str:
        hows = [f"({how})" for how in self.hows] + [""] * len(self.files)
        parts = [self.kind, *(f + how for f, how in zip(self.files, hows, strict=False))]
        parts += [self.variant] if self.variant else []
        parts += [f"imports {','.join(self.names)}"] if self.names else []
        parts += [f"held open {self.hold:.2f}s"] if self.hold else []
        parts += [f"{self.count} times, one a second"] if self.count else []
        return f"+{self.gap:.2f}s " + " ".join(parts)


# Steps every schedule has, and the rough time each takes (for the length of a schedule).
MUST = ("burst", "burst", "restart", "import", "create", "checkout", "multi", "touch", "broken")
# Faults of the event stream and of the files' times; one of them in every schedule. The
# first five, cheap, are those of the seeds `make test` runs; the last take seconds.
FAULTS = ("lost", "recreate", "slow", "chmod", "future", "past", "autosave", "missed")
COST = {"save": 0.0, "multi": 0.0, "touch": 0.0, "burst": 1.0, "checkout": 0.0,
        "import": 0.0, "create": 0.0, "broken": 1.0, "restart": 1.2,
        "lost": 0.3, "recreate": 0.3, "slow": 0.65, "chmod": 0.5, "future": 0.0,
        "past": 0.0, "autosave": 7.5, "missed": 5.5}  # fmt: skip
WEIGHTS = {"save": 8, "multi": 3, "touch": 2, "burst": 2, "checkout": 1,
           "import": 1, "create": 1, "broken": 1, "restart": 1,
           **dict.fromkeys(FAULTS, 1)}  # fmt: skip


@dataclass(frozen=True)
class Schedule:
    seed: int
    track: str  # where the script calls track(): "before" or "after" the middleware, or ""
    steps: list[Step]

    def __str__(self) -> str:
        where = f"track() {self.track} the middleware" if self.track else "no track()"
        return "\n  ".join([f"schedule {self.seed}, {where}:", *map(str, self.steps)])


def plan(seed: int, length: float) -> Schedule:
    """The steps of schedule `seed`, about `length` seconds of them.

    A data file (not a module) saved right after each of 5 actions in a row is taken for
    a file the app writes itself and ignored for a while (the storm guard): no data file
    is saved more than STORM_CAP times in a run. Schedule `seed` has fault
    `FAULTS[(seed - 1) % 8]` among its steps, so the first 8 seeds have every fault.
    """
    rng = random.Random(seed)
    kinds = [*MUST, FAULTS[(seed - 1) % len(FAULTS)]]
    spent = sum(COST[k] + 0.25 for k in kinds)
    while spent < length:
        kind = rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        kinds.append(kind)
        spent += COST[kind] + 0.25
    rng.shuffle(kinds)
    track = ["", "before", "after"][seed % 3]
    return Schedule(seed, track, list(_Planner(rng, tracked=bool(track)).steps(kinds)))


class _Planner:
    """Chooses the files of each step from what the app has loaded by then."""

    def __init__(self, rng: random.Random, *, tracked: bool) -> None:
        self.rng = rng
        self.tracked = tracked
        self.loaded = ["views", "deep", "lazy"]  # modules the app has imported
        self.unloaded = list(LATER)
        rng.shuffle(self.unloaded)
        self.saved_unloaded: set[str] = set()  # saved before anything imported them
        self.created = 0
        # Without track() in the script, tracked.txt is data nobody watches: never saved.
        # One save of the data file is kept for the first new process (see restart()).
        self.data_saves = {"data": 1, "tracked": 0 if tracked else STORM_CAP}
        self.bursts = self.restarts = 0

    def steps(self, kinds: list[str]) -> Iterator[Step]:
        makers: dict[str, Callable[[float], Step]] = {
            "save": self.save, "multi": self.multi, "touch": self.touch, "burst": self.burst,
            "checkout": self.checkout, "import": self.import_, "create": self.create,
            "broken": self.broken, "restart": self.restart, "lost": self.lost,
            "recreate": self.recreate, "slow": self.slow, "chmod": self.chmod,
            "future": self.future, "past": self.past, "autosave": self.autosave,
            "missed": self.missed,
        }
        for kind in kinds:
            gap = self.rng.choice([(0.0, 0.05), (0.05, 0.3), (0.3, 0.8)])
            yield makers[kind](round(self.rng.uniform(*gap), 3))

    def how(self) -> str:
        return self.rng.choice(["atomic", "plain"])

    def module(self) -> str:
        return self.rng.choice(self.loaded)

    def any_file(self) -> str:
        choices = [*self.loaded, *self.loaded, *self.unloaded[:1]]
        choices += [name for name, n in self.data_saves.items() if n < STORM_CAP]
        name = self.rng.choice(choices)
        if name in self.unloaded:
            self.saved_unloaded.add(name)
        if name in self.data_saves:
            self.data_saves[name] += 1
        return name

    def save(self, gap: float) -> Step:
        return Step(gap, "save", (self.any_file(),), (self.how(),))

    def multi(self, gap: float) -> Step:
        files = tuple(dict.fromkeys(self.any_file() for _ in range(self.rng.randint(2, 4))))
        return Step(gap, "multi", files, tuple(self.how() for _ in files))

    def touch(self, gap: float) -> Step:
        return Step(gap, "touch", (self.any_file(),))

    def burst(self, gap: float) -> Step:
        # The first burst saves a module while another module's reload runs, the second
        # saves one again as a new process starts: either way, what is imported next must
        # not be the bytecode of the save before.
        variant = ["during-reload", "restart"][self.bursts] if self.bursts < 2 else (
            self.rng.choice(["same", "during-reload", "restart"])
        )
        self.bursts += 1
        first = self.module()
        second = self.rng.choice([m for m in self.loaded if m != first])
        return Step(gap, "burst", (first, second), (self.how(), self.how()), variant)

    def checkout(self, gap: float) -> Step:
        return Step(gap, "checkout", ("deep",), ("checkout",))

    def import_(self, gap: float) -> Step:
        if not self.unloaded:
            return self.create(gap)
        name = self.unloaded.pop()
        self.loaded.append(name)
        return Step(gap, "import", names=(name,))

    def create(self, gap: float) -> Step:
        self.created += 1
        name = f"new{self.created}"
        self.loaded.append(name)
        return Step(gap, "create", (name,), (self.how(),), names=(name,))

    def broken(self, gap: float) -> Step:
        # Imports while the tree is broken are no change: they must not retry it.
        # A module saved before its first import counts as changed then: that is a change.
        names = tuple([n for n in self.unloaded if n not in self.saved_unloaded][-2:])
        self.unloaded = [n for n in self.unloaded if n not in names]
        step = Step(gap, "broken", (self.module(),), (self.how(),), names=names)
        self.loaded.extend(names)
        return step

    def restart(self, gap: float) -> Step:
        # The first new process sees its data file saved between loading it and its first
        # request, where only the environ of that request says the file is watched.
        variants = ["views-before-load", "views", "lazy", "touch", "imported", "none"]
        variants += ["data"] if self.data_saves["data"] < STORM_CAP else []
        variant = "data" if not self.restarts else self.rng.choice(variants)
        if variant == "data" and self.restarts:
            self.data_saves["data"] += 1
        self.restarts += 1
        return Step(gap, "restart", variant=variant)

    def lost(self, gap: float) -> Step:
        return Step(gap, "lost", (self.any_file(),), (self.how(),))

    def missed(self, gap: float) -> Step:
        return Step(gap, "missed", (self.any_file(),), (self.how(),))

    def recreate(self, gap: float) -> Step:
        # Imported by the requests, not by the script: a module the app can lose and
        # still serve its old code from memory.
        name = self.rng.choice([m for m in self.loaded if m not in ("views", "deep")])
        return Step(gap, "recreate", (name,), (self.how(),))

    def slow(self, gap: float) -> Step:
        hold = round(self.rng.uniform(0.3, 1.0), 3)
        return Step(gap, "slow", (self.any_file(),), ("slow",), hold=hold)

    def chmod(self, gap: float) -> Step:
        tracked = ["data", *(["tracked"] if self.tracked else [])]
        return Step(gap, "chmod", (self.rng.choice([*self.loaded, *tracked]),))

    def future(self, gap: float) -> Step:
        return Step(gap, "future", (self.any_file(),), (self.how(),))

    def past(self, gap: float) -> Step:
        return Step(gap, "past", (self.any_file(),), (self.how(),))

    def autosave(self, gap: float) -> Step:
        # A module: a data file saved after every action is the storm guard's business.
        return Step(gap, "autosave", (self.module(),), (self.how(),),
                    count=self.rng.randint(5, 10))


# --- running it ------------------------------------------------------------------------------


@dataclass
class Request:
    process: int  # the index of the process (generation) it was sent to
    thread: str
    phase: str  # "run" while steps run, "quiet" after the last change
    start: float
    end: float = -1.0
    status: str = ""
    seen: dict[str, int] | None = None
    error: str = ""


@dataclass(frozen=True)
class Save:
    file: str
    version: int  # for a broken save, the version before it
    how: str  # atomic, plain, slow, checkout
    start: float
    end: float
    broken: bool = False  # does not compile
    grace: float = GRACE  # from `end` to the requests that must have it
    fault: str = ""  # the step that made it, when it is one of the FAULTS

    @property
    def due(self) -> float:
        """When a request that starts must be served this save (or a newer one)."""
        return self.end + self.grace


@dataclass(frozen=True)
class Broken:
    """A module that did not load (it did not compile, or it was deleted) from `start`
    until the fix was saved at `fixed`."""

    start: float
    saved: float  # the broken save completed
    fixed: float


@dataclass
class Process:
    """One process's middleware, the threads sending it requests, and its counts."""

    index: int
    app: ReloadMiddleware
    watcher: Watcher
    start: float
    actions_before: int
    changes_before: int  # starting is one change: files may have changed since it loaded them
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


class Log(logging.Handler):
    """The middleware's log lines, as they come: actions and failed attempts."""

    ACTION = "changed:"
    FAILED = "new code not loaded"
    HOLD = "changes keep coming"  # a storm: actions wait for it to end

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._came = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._came:
            self.records.append(record)
            self._came.notify_all()

    def count(self, marker: str) -> int:
        with self._came:
            return sum(marker in r.getMessage() for r in self.records)

    def attempts(self) -> int:
        """Actions and failed attempts so far."""
        return self.count(self.ACTION) + self.count(self.FAILED)

    def wait_action(self, after: int, timeout: float) -> bool:
        with self._came:
            return self._came.wait_for(lambda: self.count(self.ACTION) > after, timeout)

    @classmethod
    @contextmanager
    def attached(cls) -> Iterator[Log]:
        log = cls()
        logger = logging.getLogger("reload_middleware")
        logger.addHandler(log)
        try:
            yield log
        finally:
            logger.removeHandler(log)


TORN = -1  # the version of a file read while it was being saved in place


def parse(body: bytes) -> dict[str, int]:
    pairs = (item.split("=") for item in body.decode().split())
    return {name: TORN if value == "torn" else int(value) for name, value in pairs}


class Run:
    """Runs the steps of one schedule against `world`, and judges what the requests saw."""

    def __init__(
        self, seed: int, world: World, monkeypatch: pytest.MonkeyPatch, log: Log
    ) -> None:
        self.seed, self.world, self.monkeypatch, self.log = seed, world, monkeypatch, log
        self.rng = random.Random(seed)  # thread counts and request pacing
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.saves: list[Save] = []
        self.requests: list[Request] = []
        self.timeline: list[tuple[float, str]] = []
        self.problems: list[str] = []
        self.broken: list[Broken] = []
        self.announced: list[str] = []  # modules the requests import
        self.processes: list[Process] = []
        self.last_change = 0.0
        self.changes = 0  # saves, touches, checkouts, new processes
        self._pause = threading.Event()  # never set: the schedule's pace
        self.steps: dict[str, Callable[[Step], None]] = {
            "save": self.do_save, "multi": self.do_multi, "touch": self.do_touch,
            "burst": self.do_burst, "checkout": self.do_checkout, "import": self.do_import,
            "create": self.do_create, "broken": self.do_broken, "restart": self.do_restart,
            "lost": self.do_lost, "recreate": self.do_recreate, "slow": self.do_slow,
            "chmod": self.do_chmod, "future": self.do_future, "past": self.do_past,
            "autosave": self.do_autosave, "missed": self.do_lost,
        }

    def now(self) -> float:
        return time.monotonic() - self.t0

    def pause(self, seconds: float) -> None:
        self._pause.wait(seconds)

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait for `condition`, at most `timeout` s; whether it came."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self._pause.wait(0.005)
        return True

    def note(self, text: str, at: float | None = None) -> None:
        self.timeline.append((self.now() if at is None else at, text))

    # -- steps --

    def run(self, steps: list[Step]) -> None:
        # The checkout is older than the process by more than the file clock's tick, as
        # when a server starts: else every module would look changed since it was loaded.
        newest = max(p.stat().st_ctime_ns for p in self.world.root.rglob("*"))
        self.wait(lambda: time.time_ns() > newest + 100_000_000, 1.0)
        self.start_process("first")
        for step in steps:
            self.pause(step.gap)
            self.note(f"step {step}")
            self.steps[step.kind](step)
        self.end_process()

    def stop(self) -> None:
        """Whatever happened: no thread and no watcher left running."""
        for process in self.processes:
            process.stop.set()
            for thread in process.threads:
                thread.join(timeout=10)
            process.watcher.stop()

    def write(
        self, name: str, how: str, *, broken: bool = False, hold: float = 0.0,
        finish: Callable[[Path], None] = lambda path: None, grace: float = GRACE,
        fault: str = "",
    ) -> Save:
        """Save the next version of `name`; `finish(path)` is the last part of the save."""
        version = self.world.versions[name] + (0 if broken else 1)
        start = self.now()
        self.world.write(name, version, how, broken=broken, hold=lambda: self.pause(hold))
        finish(self.world.path(name))
        saved = Save(name, version, how, start, self.now(), broken, grace, fault)
        self.world.versions[name] = version
        self.saves.append(saved)
        self.changed(saved.end, f"saved {name} " + ("so that it does not compile" if broken
                                                    else f"{version:04d} ({how})"))
        return saved

    def changed(self, end: float, text: str) -> None:
        self.changes += 1
        self.last_change = end
        self.note(text, end)

    def do_save(self, step: Step) -> None:
        self.write(step.files[0], step.hows[0])

    def do_multi(self, step: Step) -> None:
        for name, how in zip(step.files, step.hows, strict=True):
            self.write(name, how)

    def do_touch(self, step: Step) -> None:
        os.utime(self.world.path(step.files[0]))
        self.changed(self.now(), f"touched {step.files[0]}")

    def do_checkout(self, step: Step) -> None:
        version = self.world.versions["deep"] + 1
        start = self.now()
        self.world.checkout(version)
        self.world.versions["deep"] = version
        self.saves.append(Save("deep", version, "checkout", start, self.now()))
        self.changed(self.now(), f"checked out sub/ with deep {version:04d}")

    def do_import(self, step: Step) -> None:
        self.announced.extend(step.names)
        self.last_change = self.now()
        self.note(f"requests import {','.join(step.names)} from now on")

    def do_create(self, step: Step) -> None:
        self.world.versions[step.files[0]] = 0
        self.write(step.files[0], step.hows[0])
        # Python lists a directory once per tick of its mtime; a program that creates a
        # module and imports it within one tick must say so (importlib's documentation).
        importlib.invalidate_caches()
        self.do_import(step)

    def do_burst(self, step: Step) -> None:
        self.pause((1.0 - time.time() % 1.0) % 1.0)  # all saves within one second
        began = time.monotonic()
        first, second = step.files
        saved = self.write(first, step.hows[0])
        # Once a request shows it, its bytecode is cached: the next save must not reuse it.
        self.wait(lambda: self.served(first, saved.version, saved.end), 0.5)
        if step.variant == "during-reload":
            actions = self.log.count(Log.ACTION)
            self.write(second, step.hows[1])
            left = 0.9 - (time.monotonic() - began)
            if left > 0 and self.log.wait_action(actions, left):
                # Atomic: a file written in place while a reload imports it is read half
                # written, which no reloader can prevent.
                self.write(first, "atomic")
        else:
            self.write(first, step.hows[0])
            if step.variant == "restart":
                # The server replaces the process before it served a request since (a
                # worker recycled, a daemon restarted by another): nothing acted on the save.
                self.end_process(replaced=True)
                self.start_process("none")

    def do_broken(self, step: Step) -> None:
        name, how = step.files[0], step.hows[0]
        # Broken while a reload runs, a module the app imports on demand is imported
        # broken (its change came after the preflight): break it once all is loaded.
        app = self.processes[-1].app
        self.wait(lambda: not app.pending, 2.0)
        start, failures = self.now(), self.log.count(Log.FAILED)
        breaking = self.write(name, how, broken=True)
        for imported in step.names:
            self.pause(0.3)
            self.do_import(Step(0.0, "import", names=(imported,)))
        self.pause(0.3)
        failed = self.log.count(Log.FAILED) - failures
        fixed = self.write(name, how)
        self.broken.append(Broken(start, breaking.end, fixed.end))
        if failed > 2:
            self.problems.append(
                f"retried: {name} did not compile, and {failed} attempts failed on it with no "
                f"change in between (imports of {', '.join(step.names)} are no change)"
            )

    def do_restart(self, step: Step) -> None:
        self.end_process()
        self.start_process(step.variant)

    def do_lost(self, step: Step) -> None:
        """A save whose events are lost, as in a kernel queue overflow: the watcher is
        stopped around it. `lost`: watchdog then says events were lost, as it does after
        an overflow, and the next request looks at every file; `missed`: nothing says so,
        and the safety net's look (every net.PERIOD s) finds the change. Either way a
        look serves it: LOST_GRACE, not GRACE. Nothing else changes until then: any
        other change reloads every module, and would serve this save in the look's stead.
        """
        watcher, name = self.processes[-1].watcher, step.files[0]
        self.quiet_first()
        watcher.stop()

        def heard_again(path: Path) -> None:
            watcher.start()
            if step.kind == "lost":
                watcher.deliver(EventsLostEvent(str(self.world.root), is_directory=True))

        saved = self.write(name, step.hows[0], finish=heard_again, grace=LOST_GRACE,
                           fault=step.kind)
        self.wait(lambda: self.served(name, saved.version, saved.end), LOST_GRACE + 1.0)

    def do_recreate(self, step: Step) -> None:
        """A lazily imported module deleted, requests answered, then the module saved
        anew. While it is missing nothing can load the app (the old code serves, as for
        a save that does not compile); saved again, it is one more save, GRACE."""
        name = step.files[0]
        start, failures = self.now(), self.log.count(Log.FAILED)
        self.world.path(name).unlink()
        deleted = self.now()
        self.changed(deleted, f"deleted {name}")
        self.wait(lambda: self.answered_since(deleted + GRACE), 2.0)
        recreated = self.write(name, step.hows[0], fault="recreate")
        self.broken.append(Broken(start, deleted, recreated.end))
        failed = self.log.count(Log.FAILED) - failures
        if failed > 2:
            self.problems.append(
                f"retried: {name} was deleted, and {failed} attempts failed on it with no "
                "change in between"
            )

    def do_slow(self, step: Step) -> None:
        """A writer that truncates the file, keeps it open `hold` s, then writes and
        closes it: the save is complete at the close, and a file modified but not
        closed is not settled (within WRITER_BOUND), so not even a request during the
        hold may be served it empty (see `torn()`); GRACE from the close."""
        self.write(step.files[0], "slow", hold=step.hold, fault="slow")

    def do_chmod(self, step: Step) -> None:
        """A chmod to the mode the file has: a ctime moved, no content. Once the steps
        before are done with, the requests after it must see no action at all."""
        path = self.world.path(step.files[0])
        self.quiet_first()
        before = self.log.attempts()
        os.chmod(path, stat.S_IMODE(path.stat().st_mode))
        at = self.now()
        self.note(f"chmod {step.files[0]} to the mode it has", at)
        self.wait(lambda: self.answered_since(at + GRACE), 2.0)
        acted = self.log.attempts() - before
        if acted:
            self.problems.append(
                f"no-op chmod: {step.files[0]} was given the mode it had at {at:.3f}s, and "
                f"{acted} actions followed (a chmod that changes nothing is no change)"
            )

    def do_future(self, step: Step) -> None:
        """A save dated an hour ahead of the clock (skew, a share, an unpacked archive):
        one change, GRACE, and never the start of a storm hold (see `report()`)."""
        ahead = time.time_ns() + HOUR_NS
        self.write(step.files[0], step.hows[0], fault="future",
                   finish=lambda path: os.utime(path, ns=(ahead, ahead)))

    def do_past(self, step: Step) -> None:
        """A file restored with the time it had (cp -p, tar): older than the process and
        than the version before it, a time that goes backwards; GRACE. Each version has a
        second of its own, so no bytecode of another version matches it."""
        version = self.world.versions[step.files[0]] + 1
        past = self.world.born + version * 10**9
        self.write(step.files[0], step.hows[0], fault="past",
                   finish=lambda path: os.utime(path, ns=(past, past)))

    def do_autosave(self, step: Step) -> None:
        """An editor that saves the file every second while one types: each save GRACE,
        requests in between. A second apart is calm enough to be no storm."""
        began = time.monotonic()
        for n in range(step.count):
            self.pause(max(0.0, began + n - time.monotonic()))
            self.write(step.files[0], step.hows[0], fault="autosave")

    # -- processes and requests --

    def start_process(self, variant: str) -> None:
        """A new process: state of its own, the script loaded, then its first requests."""
        started = time.time_ns()
        fresh = new_process(self.monkeypatch, lambda: started)
        index, changes, start = len(self.processes), self.changes, self.now()
        self.changes += 1
        self.note(f"process {index} starts ({variant})")
        if variant == "views-before-load":
            self.write("views", "atomic")
        app = self.world.execute()
        process = Process(index, app, fresh, start, self.log.attempts(), changes)
        self.processes.append(process)
        if variant in ("views", "lazy", "data"):
            self.write(variant, self.rng.choice(["atomic", "plain"]))
        elif variant == "touch":
            self.do_touch(Step(0.0, "touch", ("views",)))
        for n in range(self.rng.randint(3, 8)):
            thread = threading.Thread(target=self.send, args=(process, f"t{n}"))
            process.threads.append(thread)
        for thread in process.threads:
            thread.start()
        self.pause(2 * GRACE)  # its first requests, and then some, before the next step
        if variant == "imported":
            # A module the first requests imported at once, saved after them: the new
            # process must track it although it was imported by several threads together.
            self.write(self.rng.choice(["lazy", *self.announced]), "atomic")

    def send(self, process: Process, thread: str) -> None:
        pace = random.Random(f"{self.seed}-{process.index}-{thread}")
        while not process.stop.is_set():
            self.request(process, thread, "run")
            process.stop.wait(pace.uniform(0, 0.02))

    def request(self, process: Process, thread: str, phase: str) -> Request:
        environ = {
            "reload_middleware.watch": str(self.world.data),  # SetEnv, as Apache users give it
            "schedule.imports": ",".join(self.announced),
        }
        record = Request(process.index, thread, phase, self.now())
        self.requests.append(record)
        try:
            response = call(process.app, environ=environ)
            record.status = response.status
            if response.status.startswith("200"):
                record.seen = parse(response.body)
            else:
                record.error = response.body.decode(errors="replace")[:300]
        except Exception as exc:
            record.error = "".join(traceback.format_exception(exc)[-3:]).strip()
        record.end = self.now()
        return record

    def quiet_first(self) -> None:
        """Wait until the changes of the steps before have been acted on: nothing is
        pending, and a request that started after that has been answered."""
        app = self.processes[-1].app
        self.wait(lambda: self.now() >= self.last_change + GRACE and not app.pending, 2.0)
        calm = self.now()
        self.wait(lambda: self.answered_since(calm), 2.0)  # any action under way is over

    def answered_since(self, since: float) -> bool:
        """Whether a request that started after `since` has been answered."""
        return any(r.start >= since and r.end >= 0 for r in self.requests[-50:])

    def served(self, name: str, version: int, since: float) -> bool:
        """Whether a request that started after `since` was served `version` of `name`."""
        for record in reversed(self.requests[-200:]):
            if record.start >= since and record.seen and record.seen.get(name, -1) >= version:
                return True
        return False

    def end_process(self, *, replaced: bool = False) -> None:
        """Requests after the last change, then quiet ones that must not act; stop it.

        A process `replaced` by its server stops at once, whatever it had still to do.
        """
        process = self.processes[-1]
        # Every save due, so that the requests before the end judge each one.
        after = max([self.last_change + GRACE, *(s.due for s in self.saves)])
        if not replaced and not self.wait(
            lambda: self.answered_since(after), max(0.0, after - self.now()) + 5.0
        ):
            self.problems.append(f"process {process.index}: no request answered in 5 s")
        process.stop.set()
        for thread in process.threads:
            thread.join(timeout=10)
        if any(t.is_alive() for t in process.threads):
            self.problems.append(f"process {process.index}: a request still runs after 10 s")
        if not replaced:
            self.quiet(process)
        total = self.log.attempts() - process.actions_before
        changes = self.changes - process.changes_before
        if total > 2 * changes:
            self.problems.append(
                f"too many actions: process {process.index} acted {total} times on "
                f"{changes} changes (one extra per change at most)"
            )
        process.watcher.stop()
        self.note(f"process {process.index} ends" + (" (replaced)" if replaced else ""))

    def quiet(self, process: Process) -> None:
        """QUIET_REQUESTS requests from 4 threads after quiet: none may act."""
        actions, app = self.log.attempts(), process.app.app
        quiet = [threading.Thread(target=self.quietly, args=(process, f"q{n}")) for n in range(4)]
        for thread in quiet:
            thread.start()
        for thread in quiet:
            thread.join(timeout=10)
        acted = self.log.attempts() - actions
        if acted or process.app.app is not app:
            self.problems.append(
                f"loop: process {process.index} acted {acted} times on {QUIET_REQUESTS} "
                f"requests after quiet (app replaced: {process.app.app is not app})"
            )

    def quietly(self, process: Process, thread: str) -> None:
        for _ in range(QUIET_REQUESTS // 4):
            self.request(process, thread, "quiet")

    # -- the verdict --

    def required(self, name: str, start: float) -> Save | None:
        """The newest save of `name` that a request starting at `start` must have."""
        done = [s for s in self.saves if s.file == name and s.due <= start and not s.broken]
        return max(done, key=lambda s: s.version, default=None)

    def broken_by_a_save_during_a_reload(self, record: Request) -> bool:
        """Whether `record` failed on a module saved broken while a reload ran.

        A reload checks the files it knows changed when it starts; a module the app
        imports on demand, saved broken after that, is imported broken by the requests
        until its fix. So the last action before the failure came with the broken save,
        before its events (a millisecond after it; 15 ms allowed) could be seen. A later
        reload must not happen at all: its preflight fails.
        """
        for broken in self.broken:
            if record.end > broken.start and record.start < broken.fixed + GRACE:
                actions = [r.created - self.wall0 for r in list(self.log.records)
                           if Log.ACTION in r.getMessage() and r.created - self.wall0 < record.end]
                return bool(actions) and broken.start - 0.05 <= max(actions) < broken.saved + 0.015
        return False

    def torn(self, name: str, record: Request) -> bool:
        """Whether `record` may have read `name` while a save wrote it in place.

        No reloader can tell a file being written from one written: the next reload
        reads it whole, and a request starting `GRACE` after the save must have that. A
        writer that keeps the file open is another matter: until its close (or
        WRITER_BOUND) the file is not settled, so nothing may read it half written.
        """
        return any(s.file == name and s.start < record.end and record.start < s.end + GRACE
                   and (s.how == "plain" or (s.how == "slow"
                                             and s.start + WRITER_BOUND < record.end))
                   for s in self.saves)

    def report(self) -> str:
        """Every broken rule, with the steps and log lines around the first of each kind."""
        failed: dict[str, list[Request]] = {}
        stale: dict[tuple[str, int, int], list[Request]] = {}
        for record in self.requests:
            if record.error or not record.status.startswith("200"):
                if not self.broken_by_a_save_during_a_reload(record):
                    failed.setdefault(record.error.splitlines()[-1] if record.error else
                                      record.status, []).append(record)
                continue
            if record.seen is None or any(
                b.start <= record.start < b.fixed + GRACE for b in self.broken
            ):
                continue
            for name, version in record.seen.items():
                missed = self.required(name, record.start)
                if version == TORN and not self.torn(name, record):
                    stale.setdefault((name, TORN, record.process), []).append(record)
                elif version != TORN and missed is not None and version < missed.version:
                    stale.setdefault((name, missed.version, record.process), []).append(record)
        lines: list[str] = []
        for error, records in failed.items():
            first = records[0]
            lines.append(f"FAILED: {len(records)} requests, first (process {first.process}, "
                         f"{first.thread}, started {first.start:.3f}s): {first.error or error}")
        for (name, version, _), records in stale.items():
            first = records[0]
            if version == TORN:
                lines.append(f"TORN: {len(records)} requests to process {first.process} got "
                             f"{name} half written, {GRACE}s or more after a save in place, "
                             f"or from a writer held open; first: {first.thread} started at "
                             f"{first.start:.3f}s")
                lines.extend(self.around(first.start - 1.0, first.start))
                continue
            save_ = next(s for s in self.saves
                         if s.file == name and s.version == version and not s.broken)
            kind = "LOST RELOAD" if any(r.phase == "quiet" for r in records) else "STALE"
            fault = f", {save_.fault}" if save_.fault else ""
            lines.append(
                f"{kind}: {len(records)} requests to process {first.process} that started "
                f"{save_.grace}s or more after {name} {version:04d} was saved ({save_.how}"
                f"{fault}, done at {save_.end:.3f}s) got older code; first: {first.thread} "
                f"started at {first.start:.3f}s and saw {first.seen}"
            )
            lines.extend(self.around(save_.start - 0.6, first.start))
        lines.extend(self.storm_holds())
        lines.extend(f"{problem}" for problem in self.problems)
        if not lines:
            return ""
        return "\n".join([
            f"schedule {self.seed} broke the rule (replay: RM_SCHEDULE_SEED={self.seed}); "
            f"{len(self.requests)} requests, {len(self.saves)} saves, "
            f"{len(self.processes)} processes", *lines, "whole schedule:",
            *self.around(0.0, self.now(), indent="  "),
        ])

    def storm_holds(self) -> list[str]:
        """A storm hold once a save was dated ahead of the clock: that time is one change,
        never a storm (docs/promise.md), and must not keep actions waiting."""
        ahead = [s for s in self.saves if s.fault == "future"]
        if not ahead:
            return []
        first = min(s.end for s in ahead)
        holds = [r.created - self.wall0 for r in list(self.log.records)
                 if Log.HOLD in r.getMessage() and r.created - self.wall0 >= first]
        if not holds:
            return []
        return [f"STORM HOLD: {len(holds)} holds, the first at {holds[0]:.3f}s, after a save "
                f"dated an hour ahead at {first:.3f}s (no step makes a storm: the hold is "
                "for nothing)", *self.around(first - 0.6, holds[0])]

    def around(self, begin: float, end: float, indent: str = "    ") -> list[str]:
        """The schedule's steps and the middleware's log lines between two moments."""
        events = [(at, text) for at, text in self.timeline if begin <= at <= end]
        for record in list(self.log.records):
            at = record.created - self.wall0
            if begin <= at <= end:
                message = record.getMessage().replace(str(self.world.root), "")
                events.append((at, "log: " + message.splitlines()[0][:160]))
        return [f"{indent}{at:7.3f}s {text}" for at, text in sorted(events)]
