"""The schedule checker: client threads send GETs to a real server while a seeded random
schedule saves the app's modules, and no request may be silently stale.

The rule: every GET that starts at least GRACE seconds after a save completed gets code
at least as new as that save; no request fails; 307s are followed as a browser follows
them, each process redirecting a request at most once per change it overlaps.

A failing schedule is replayed with its seed: RM_SCHEDULE_SEED=<seed> (the summary line
and the failure message print it). RM_SCHEDULE_RUNS schedules are run per configuration
(seeds seed, seed + 1, ...), each RM_SCHEDULE_STEPS steps long.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import pwd
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apache import ApacheSite, wait_for
from procs import get

# The time a file event takes to reach every process, allowed before a request must see it.
GRACE = 0.25
# Saved by the schedules: a module imported inside the request function (as Django imports
# views and urls on its first request), a submodule of a package the script has already
# loaded, imported the same way, and a module the script imports when it is loaded.
MODULES = ("lazymod.py", "webapp/lazyviews.py", "webapp/views.py")
# A file some process does not track shows only when a save touches it alone (any other
# file in the same save restarts that process anyway): single saves favour lazy imports,
# which a process tracks only once a request has imported them.
WEIGHTS = (2, 2, 1)
# Read by the script when it is loaded; only saved where a test names it a watch path.
TEMPLATE = "templates/page.txt"
LOADED = "schedule app loaded"
# The middleware's log line for each restart or reload it decides.
ACTION = " changed: "
KINDS = ("plain", "atomic", "several", "twin")
# More than any browser allows (20): a longer chain is a loop.
REDIRECT_LIMIT = 21

# Every version string has the same length, so that every save keeps the file's size:
# Python trusts a .pyc whose source size and whole-second mtime match.
APP = """\
import json, os, sys

from webapp import views
from reload_middleware import ReloadMiddleware

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), {template!r})) as f:
    TEMPLATE = f.read().strip()
print({loaded!r}, "in pid", os.getpid(), file=sys.stderr, flush=True)


def app(environ, start_response):
    import lazymod
    from webapp import lazyviews

    body = json.dumps({{
        "pid": os.getpid(),
        "lazymod.py": lazymod.VERSION,
        "webapp/lazyviews.py": lazyviews.VERSION,
        "webapp/views.py": views.VERSION,
        {template!r}: TEMPLATE,
    }}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = ReloadMiddleware(app, **{options!r})
"""


def version(index: int) -> str:
    return f"v{index:03d}"


def content(relpath: str, index: int) -> str:
    """The text of `relpath` at version `index`."""
    if relpath.endswith(".py"):
        return f"VERSION = {version(index)!r}\n"
    return version(index) + "\n"


def make_app(root: Path, script_name: str, options: Mapping[str, object] | None = None) -> Path:
    """Write the app under `root`, every file at version 0; returns the script's path."""
    site = ApacheSite(root, script_name)
    site.write("webapp/__init__.py", "")
    for relpath in (*MODULES, TEMPLATE):
        site.write(relpath, content(relpath, 0))
    site.write(script_name, APP.format(template=TEMPLATE, loaded=LOADED, options=options or {}))
    return site.script


def hand_over(root: Path, user: str = "www-data") -> None:
    """Give `user` the app's tree, so that a server running as it writes __pycache__."""
    entry = pwd.getpwnam(user)
    for path in [root, *root.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def aged(root: Path, age: float = 0.1) -> None:
    """Wait until the app's files are `age` s old (ctime), as code is when a server starts.

    A file written within a clock tick of the process start may count as changed since
    the load: a reload for nothing, which would be taken for one caused by a save.
    """
    newest = max(path.lstat().st_ctime for path in [root, *root.rglob("*")])
    wait_for(lambda: time.time() - newest >= age, age + 5, "the app's files to age")


@dataclass(frozen=True)
class Save:
    """One step: write version `index` into `files`, `gap` seconds after the last step."""

    index: int
    files: tuple[str, ...]
    atomic: bool
    gap: float
    # The first of two saves within one second: it waits for a second to begin.
    on_second: bool = False

    def describe(self) -> str:
        how = "atomic" if self.atomic else "plain"
        second = ", at a second's start" if self.on_second else ""
        return f"{version(self.index)} {how} {'+'.join(self.files)} after {self.gap:.2f} s{second}"


def plan(
    seed: int, steps: int, files: Sequence[str] = MODULES, weights: Sequence[int] = WEIGHTS
) -> list[Save]:
    """A seeded schedule of `steps` steps; each kind of save comes once in every 4 steps.

    plain: one file rewritten in place; atomic: a temp file renamed over one file;
    several: 2 or more files in one go; twin: one file saved twice within one second
    (same size, so a .pyc written in between looks valid for the second).
    """
    rng = random.Random(seed)
    kinds: list[str] = []
    while len(kinds) < steps:
        kinds += rng.sample(KINDS, len(KINDS))
    saves: list[Save] = []
    for kind in kinds[:steps]:
        atomic = kind == "atomic" or (kind != "plain" and rng.random() < 0.5)
        if kind == "several":
            chosen = tuple(sorted(rng.sample(list(files), rng.randint(2, len(files)))))
        else:
            chosen = (rng.choices(list(files), weights)[0],)
        twin = kind == "twin"
        saves.append(Save(len(saves) + 1, chosen, atomic, rng.uniform(1.5, 2.5), twin))
        if twin:
            # Late in the second: a restarted process has had time to import the first.
            saves.append(Save(len(saves) + 1, chosen, atomic, rng.uniform(0.5, 0.9)))
    return saves


@dataclass(frozen=True)
class Saved:
    """A save as it happened: when it completed (monotonic) and its files' whole-second mtime."""

    save: Save
    at: float
    seconds: tuple[int, ...]


def write(root: Path, step: Save) -> Saved:
    """Carry out one save, as an editor does."""
    for relpath in step.files:
        path = root / relpath
        text = content(relpath, step.index)
        if step.atomic:
            temp = path.with_name(f".{path.name}.{step.index}.tmp")
            temp.write_text(text)
            temp.chmod(0o644)  # the umask may be stricter; the server's user must read it
            os.replace(temp, path)
        else:
            path.write_text(text)
    at = time.monotonic()
    return Saved(step, at, tuple(int((root / p).stat().st_mtime) for p in step.files))


def perform(root: Path, saves: Sequence[Save]) -> list[Saved]:
    """Carry out a schedule; each gap is part of the schedule, so it is waited out."""
    pause = threading.Event()
    done: list[Saved] = []
    for step in saves:
        pause.wait(step.gap)
        if step.on_second:
            pause.wait(1.01 - time.time() % 1)
        done.append(write(root, step))
    return done


@dataclass(frozen=True)
class Request:
    """One GET as a browser makes it: 307s followed; status 0 when no answer came."""

    start: float
    end: float
    status: int
    hops: int
    pid: int | None = None
    versions: Mapping[str, int] = field(default_factory=dict)
    error: str = ""
    resets: int = 0


def browse(port: int, retry_reset: bool) -> Request:
    """GET / on new connections, following 307s to "/"; one reset is retried if allowed."""
    start = time.monotonic()
    hops = resets = 0
    while True:
        try:
            status, body = get(port)
        except ConnectionResetError as exc:
            if retry_reset and resets == 0:
                resets += 1
                continue
            return Request(start, time.monotonic(), 0, hops, error=repr(exc), resets=resets)
        except (OSError, http.client.HTTPException) as exc:
            return Request(start, time.monotonic(), 0, hops, error=repr(exc), resets=resets)
        if status != 307 or hops == REDIRECT_LIMIT:
            break
        if body not in ("/", f"http://127.0.0.1:{port}/"):
            return Request(start, time.monotonic(), 307, hops, error=f"307 to {body!r}",
                           resets=resets)
        hops += 1
    end = time.monotonic()
    if status != 200:
        return Request(start, end, status, hops, error=body[-300:], resets=resets)
    try:
        answer = json.loads(body)
        versions = {name: int(value[1:]) for name, value in answer.items() if name != "pid"}
    except (ValueError, TypeError, AttributeError) as exc:
        return Request(start, end, status, hops, error=f"{exc!r} in {body[:300]!r}",
                       resets=resets)
    return Request(start, end, status, hops, answer["pid"], versions, resets=resets)


class Traffic:
    """`clients` threads sending GETs to a port until the block ends; each one recorded."""

    def __init__(self, port: int, clients: int, *, retry_reset: bool = False) -> None:
        self.port, self.retry_reset = port, retry_reset
        self.records: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self.started = 0.0

    def _client(self) -> None:
        mine: list[Request] = []
        while not self._stop.is_set():
            mine.append(browse(self.port, self.retry_reset))
        with self._lock:
            self.records += mine

    def __enter__(self) -> Traffic:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            # A request has its own timeout per hop; a client still running after this is hung.
            thread.join(60)
        if any(thread.is_alive() for thread in self._threads):
            raise AssertionError("a client thread is still waiting for an answer after 60 s")


@dataclass
class Verdict:
    """What the rule found in one run."""

    requests: int = 0
    stale: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    redirects: int = 0
    max_hops: int = 0
    resets: int = 0


def required(saved: Sequence[Saved], start: float, grace: float = GRACE) -> dict[str, int]:
    """The least version of each file a request that starts at `start` may get."""
    least: dict[str, int] = {}
    for done in saved:
        if done.at + grace <= start:
            for relpath in done.save.files:
                least[relpath] = max(least.get(relpath, 0), done.save.index)
    return least


def judge(
    records: Sequence[Request], saved: Sequence[Saved], processes: int, origin: float
) -> Verdict:
    """Apply the rule to every request; times in messages are seconds since `origin`."""
    verdict = Verdict(requests=len(records))
    for record in sorted(records, key=lambda r: r.start):
        when = f"t={record.start - origin:.3f}s"
        verdict.redirects += record.hops
        verdict.max_hops = max(verdict.max_hops, record.hops)
        verdict.resets += record.resets
        if record.status != 200 or record.error:
            verdict.failed.append(f"{when} status {record.status} after {record.hops} "
                                  f"redirects: {record.error}")
            continue
        # Each process redirects once per change; a save during the request is a new change.
        overlapped = sum(1 for done in saved if record.start < done.at <= record.end)
        if record.hops > processes * (1 + overlapped):
            verdict.failed.append(f"{when} {record.hops} redirects for {processes} processes "
                                  f"and {overlapped} saves during the request")
        behind = [
            f"{relpath} {version(record.versions.get(relpath, -1))} < {version(least)}"
            for relpath, least in sorted(required(saved, record.start).items())
            if record.versions.get(relpath, -1) < least
        ]
        if behind:
            verdict.stale.append(f"{when} pid {record.pid}: {', '.join(behind)} "
                                 f"(after {record.hops} redirects)")
    return verdict


def same_second_twins(saved: Sequence[Saved]) -> tuple[int, int]:
    """(twins whose two saves share a whole-second mtime, twins)."""
    pairs = [(a, b) for a, b in itertools.pairwise(saved) if a.save.on_second]
    return sum(1 for a, b in pairs if a.seconds == b.seconds), len(pairs)


def seeds() -> list[int]:
    """The seeds to run: RM_SCHEDULE_SEED (else a new one) and the RM_SCHEDULE_RUNS - 1 after it."""
    base = int(os.environ.get("RM_SCHEDULE_SEED") or random.SystemRandom().randrange(10**6))
    return [base + n for n in range(int(os.environ.get("RM_SCHEDULE_RUNS", "1")))]


def steps() -> int:
    return int(os.environ.get("RM_SCHEDULE_STEPS", "8"))


# One seed for the whole session, so that one variable replays every configuration.
SEEDS = seeds()
# Every run's summary line, shown at the end of the session whether it passed or not.
SUMMARIES: list[str] = []


@dataclass
class Outcome:
    """One run: the verdict, and the counts read from the server's log afterwards."""

    name: str
    seed: int | None  # None: a fixed schedule
    processes: int
    schedule: list[Saved]
    verdict: Verdict
    origin: float
    seconds: float = 0.0
    restarts: int = 0  # processes replaced, as the server logs them
    actions: int = 0  # "changed:" lines: restarts and reloads the middleware decided
    log_lines: list[str] = field(default_factory=list)  # what the server said it did

    def problems(self) -> list[str]:
        """What breaks the rule; restarts: one per process per save, and one more each."""
        found = []
        if self.verdict.stale:
            found.append(f"{len(self.verdict.stale)} stale answers")
        if self.verdict.failed:
            found.append(f"{len(self.verdict.failed)} failed requests")
        most = (len(self.schedule) + 1) * self.processes
        for what, counted in (("restarts", self.restarts), ("actions", self.actions)):
            if counted > most:
                found.append(f"{counted} {what} for {len(self.schedule)} saves and "
                             f"{self.processes} processes (at most {most})")
        return found

    def summary(self) -> str:
        v = self.verdict
        together, twins = same_second_twins(self.schedule)
        seed = "fixed" if self.seed is None else self.seed
        return (f"schedule {self.name} seed={seed}: requests={v.requests} "
                f"stale={len(v.stale)} failed={len(v.failed)} redirects={v.redirects} "
                f"(max {v.max_hops} per request) restarts={self.restarts} "
                f"actions={self.actions} resets={v.resets} twins in one second="
                f"{together}/{twins} seconds={self.seconds:.1f}")

    def details(self, examples: int = 8) -> str:
        """The schedule and the first stale and failed requests, for a failure message."""
        lines = [self.summary(), *self.problems()]
        if self.seed is not None:
            lines.append(f"replay: RM_SCHEDULE_SEED={self.seed}")
        lines.append("saves:")
        lines += [f"  t={d.at - self.origin:.3f}s {d.save.describe()}" for d in self.schedule]
        for title, found in (("stale", self.verdict.stale), ("failed", self.verdict.failed)):
            if found:
                lines.append(f"{title} (first {min(examples, len(found))} of {len(found)}):")
                lines += [f"  {line}" for line in found[:examples]]
        if self.log_lines:
            lines.append("server log (actions and process starts):")
            lines += [f"  {line}" for line in self.log_lines[:40]]
        return "\n".join(lines)


def run(
    name: str,
    seed: int | None,
    port: int,
    root: Path,
    saves: Sequence[Save],
    *,
    processes: int,
    clients: int,
    retry_reset: bool = False,
    lead: float = 1.0,
    tail: float = 2.0,
    prior: Sequence[Saved] = (),
) -> Outcome:
    """Traffic for `lead` s, then the saves, then `tail` s more; judged by the rule.

    `prior` are saves made before the traffic began, judged like the others.
    """
    pause = threading.Event()
    with Traffic(port, clients, retry_reset=retry_reset) as traffic:
        pause.wait(lead)
        saved = [*prior, *perform(root, saves)]
        pause.wait(tail)
    verdict = judge(traffic.records, saved, processes, traffic.started)
    return Outcome(name, seed, processes, saved, verdict, traffic.started)


def count_lines(log: str, needle: str) -> int:
    return sum(1 for line in log.splitlines() if needle in line)
