"""The schedule checker: client threads send GETs to a real server while a seeded random
schedule saves the app's modules (and its script, where a configuration says so), and no
request may be silently stale.

The rule: every GET that starts at least GRACE seconds after a save completed gets code
at least as new as that save; no request fails; 307s are followed as a browser follows
them, each process redirecting a request at most once per change it overlaps.

Besides saves (plain, atomic, several files, two within one second) a schedule inflicts
faults on the file events (`KINDS`): a save while the processes that watch the app are
stopped and a scratch file overflows their kernel event queues, a lazily imported module
deleted and saved anew, a save dated an hour ahead, one restored with a time in the
past, a writer that holds the file open, a no-op chmod (no action may follow it), and an
editor that saves a file every second. Where the middleware bounds a fault on purpose,
the save has a grace of its own (`Saved.grace`, see `write()`).

A failing schedule is replayed with its seed: RM_SCHEDULE_SEED=<seed> (the summary line
and the failure message print it). RM_SCHEDULE_RUNS schedules are run per configuration
(seeds seed, seed + 1, ...), each RM_SCHEDULE_STEPS steps long.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import pwd
import random
import re
import signal
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apache import ApacheSite, wait_for
from procs import get

from reload_middleware.watching import safety_net

# The time a file event takes to reach every process, allowed before a request must see it.
GRACE = 0.25
# Events lost in an overflow: the safety net looks at every tracked file on the first
# request after watchdog reports the loss, and every net.PERIOD s anyway (docs/promise.md,
# "Holes heal"); that look, not an event, serves the save, within the net's period and a
# request.
LOST_GRACE = safety_net.PERIOD + GRACE
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
# The script of a mod_wsgi site, saved only where a configuration names it among the
# files to save (`plan(files=...)`): its version is its SCRIPT_VERSION line (SCRIPT_LINE).
SCRIPT = "app.wsgi"
SCRIPT_LINE = re.compile(r'^SCRIPT_VERSION = "v[0-9]{3}"$', re.MULTILINE)
LOADED = "schedule app loaded"
# The middleware's log line for each restart or reload it decides.
ACTION = " changed: "
# Its lines for a report of lost events, and for a storm hold.
LOST = "file events were lost"
HOLD = "changes keep coming"
KINDS = ("plain", "atomic", "several", "twin", "lost", "recreate", "future", "past", "slow",
         "chmod", "autosave")
# Imported by the request function, not by the script: deleted for a while, they leave the
# app serving the code it loaded of them.
LAZY = ("lazymod.py", "webapp/lazyviews.py")
# The scratch file whose events overflow the kernel queues of stopped watchers.
FLOOD = "flood.log"
# What answers say of a file instead of its version: read half written, or missing.
TORN, MISSING = -2, -1
HOUR_NS = 3600 * 10**9
# Restored files are dated from here on, a second per version: older than any server of
# the session, and no two versions alike (so no bytecode of one passes for another).
RESTORED_NS = time.time_ns() - 24 * HOUR_NS
# More than any browser allows (20): a longer chain is a loop.
REDIRECT_LIMIT = 21

# Every version string has the same length, so that every save keeps the file's size:
# Python trusts a .pyc whose source size and whole-second mtime match. The script has a
# version of its own (SCRIPT_LINE); it puts its directory on sys.path, as a mod_wsgi
# script does, so that a server started elsewhere (uWSGI --wsgi-file by absolute path)
# imports the app's modules: a no-op where the server put it there already.
APP = """\
import importlib, json, os, sys

SCRIPT_VERSION = "v000"
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from webapp import views
from reload_middleware import ReloadMiddleware

with open(os.path.join(HERE, {template!r})) as f:
    TEMPLATE = f.read().strip() or "torn"


# A module loaded half written has no VERSION, a deleted one cannot be imported: the
# answer says so, and the rule judges it.
def version(module):
    return getattr(module, "VERSION", "torn")


def lazily(name):
    try:
        return version(importlib.import_module(name))
    except ImportError:
        return "missing"


def app(environ, start_response):
    body = json.dumps({{
        "pid": os.getpid(),
        "lazymod.py": lazily("lazymod"),
        "webapp/lazyviews.py": lazily("webapp.lazyviews"),
        "webapp/views.py": version(views),
        {template!r}: TEMPLATE,
        {script!r}: SCRIPT_VERSION,
    }}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = ReloadMiddleware(app, **{options!r})
# Said once the middleware is built: a file saved from here on counts as changed
# (docs/promise.md, the bounds); one saved while it was being built may count as read.
print({loaded!r}, "in pid", os.getpid(), file=sys.stderr, flush=True)
"""


def version(index: int) -> str:
    return f"v{index:03d}"


def content(relpath: str, index: int, script: str | None = None) -> str:
    """The text of `relpath` at version `index`. For the script, `script` is its text at
    any version: only its version line changes, so its size stays the same (see APP)."""
    if script is not None:
        text, found = SCRIPT_LINE.subn(f'SCRIPT_VERSION = "{version(index)}"', script)
        assert found == 1, f"no single SCRIPT_VERSION line in {relpath}"
        return text
    if relpath.endswith(".py"):
        return f"VERSION = {version(index)!r}\n"
    return version(index) + "\n"


def make_app(root: Path, script_name: str, options: Mapping[str, object] | None = None) -> Path:
    """Write the app under `root`, every file at version 0; returns the script's path."""
    site = ApacheSite(root, script_name)
    site.write("webapp/__init__.py", "")
    for relpath in (*MODULES, TEMPLATE):
        site.write(relpath, content(relpath, 0))
    site.write(script_name, APP.format(template=TEMPLATE, loaded=LOADED, options=options or {},
                                       script=script_name))
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
    kind: str = ""  # one of KINDS; "" (a fixed schedule's save) is plain or atomic
    # slow: seconds the writer holds the file open; recreate: seconds it is deleted;
    # chmod: seconds of traffic watched after it
    hold: float = 0.0

    def describe(self) -> str:
        how = "atomic" if self.atomic else "plain"
        second = ", at a second's start" if self.on_second else ""
        files = "+".join(self.files)
        what = {
            "chmod": f"chmod {files} to its own mode, then {self.hold:.2f} s watched",
            "recreate": f"{files} deleted, {self.hold:.2f} s later {version(self.index)} {how}",
            "slow": f"{version(self.index)} slow {files} held open {self.hold:.2f} s",
        }.get(self.kind, f"{version(self.index)} {how} {files}")
        kind = f"{self.kind}: " if self.kind not in ("", "plain", "atomic") else ""
        return f"{kind}{what} after {self.gap:.2f} s{second}"


def plan(
    seed: int, steps: int, files: Sequence[str] = MODULES, weights: Sequence[int] = WEIGHTS
) -> list[Save]:
    """A seeded schedule of `steps` steps of about 2 s each: every kind comes once in
    every len(KINDS) steps, an auto-save of n seconds counting for n / 2 steps.

    plain: one file rewritten in place; atomic: a temp file renamed over one file;
    several: 2 or more files in one go; twin: one file saved twice within one second
    (same size, so a .pyc written in between looks valid for the second). The faults,
    see `write()`: lost, recreate, future, past, slow, chmod, autosave.

    A step saves one of `files`, drawn by `weights` (several: 2 or more of them); the
    defaults draw as every schedule did before a configuration could add the script, so
    a seed names the same schedule. recreate deletes a LAZY module only, whatever
    `files` holds: without a file it loads with (webapp/views.py, the script) no
    process can load the app at all.
    """
    rng = random.Random(seed)
    saves: list[Save] = []
    kinds: list[str] = []
    spent = 0
    while spent < steps:
        kinds = kinds or rng.sample(KINDS, len(KINDS))
        made = _step(rng, kinds.pop(), len(saves) + 1, files, weights)
        saves += made
        spent += (len(made) + 1) // 2 if made[0].kind == "autosave" else 1
    return saves


def _step(
    rng: random.Random, kind: str, index: int, files: Sequence[str], weights: Sequence[int]
) -> list[Save]:
    """The saves of one step of `kind`, the first one writing version `index`."""
    atomic = kind == "atomic" or (kind != "plain" and rng.random() < 0.5)
    gap = rng.uniform(1.5, 2.5)
    one = (rng.choices(files, weights)[0],)
    if kind == "several":
        chosen = tuple(sorted(rng.sample(files, rng.randint(2, len(files)))))
        return [Save(index, chosen, atomic, gap, kind=kind)]
    if kind == "twin":
        # The second late in the second: a restarted process has had time to import the first.
        return [Save(index, one, atomic, gap, True, kind),
                Save(index + 1, one, atomic, rng.uniform(0.5, 0.9), kind=kind)]
    if kind == "autosave":
        # An editor's timer: one save a second, for 5 to 10 s.
        return [Save(index + n, one, atomic, gap if n == 0 else 1.0, kind=kind)
                for n in range(rng.randint(5, 10))]
    hold = {"recreate": rng.uniform(0.5, 1.0), "slow": rng.uniform(0.3, 1.0),
            "chmod": 1.0}.get(kind, 0.0)  # fmt: skip
    saved = (rng.choice(LAZY),) if kind == "recreate" else one
    return [Save(index, saved, atomic and kind != "slow", gap, kind=kind, hold=hold)]


@dataclass(frozen=True)
class Saved:
    """A step as it happened: when it completed (monotonic), its files' whole-second mtime."""

    save: Save
    at: float
    seconds: tuple[int, ...]
    grace: float = GRACE  # from `at` to the requests that must have it
    gone: float | None = None  # recreate: when the module was deleted
    # A write in place (not atomic; slow is one): when the writer opened the file, which
    # is empty or half written until it is closed.
    opened: float | None = None
    stopped: int = 0  # lost: the watching processes stopped around the save
    actions: int = 0  # chmod: the actions on its file logged after it


def write(root: Path, step: Save, log: Callable[[], str] = lambda: "") -> Saved:
    """Carry out one step, as an editor (or the fault) does; `log()` is the server's log.

    lost: see `lose_events()`. recreate: the module deleted for `hold` s, requests
    answered meanwhile (by the code loaded before: nothing can load the app without the
    module), then saved again. future: saved, then dated an hour ahead: one change, never
    the start of a storm hold. past: saved with a time from long ago (a restore with
    cp -p or tar). slow: truncated, held open `hold` s, written and closed: complete at
    the close, and until then (within the middleware's bound on writers) no process that
    had the module may load it half written (see `unreadable()`). chmod: see `chmod()`.
    autosave: one of an editor's saves a second. Each is GRACE from its completion, but
    a save whose events were lost.
    """
    if step.kind == "lost":
        return lose_events(root, step)
    if step.kind == "chmod":
        return chmod(root, step, log)
    gone = None
    if step.kind == "recreate":
        (root / step.files[0]).unlink()
        gone = time.monotonic()
        threading.Event().wait(step.hold)
    opened = time.monotonic()
    save_files(root, step)
    return Saved(step, time.monotonic(), mtimes(root, step), gone=gone,
                 opened=None if step.atomic else opened)


def save_files(root: Path, step: Save) -> None:
    """Write version `step.index` into the step's files."""
    for relpath in step.files:
        path = root / relpath
        text = content(relpath, step.index, path.read_text() if relpath == SCRIPT else None)
        if step.kind == "slow":
            with open(path, "w") as target:  # empty from here until the close
                threading.Event().wait(step.hold)
                target.write(text)
        elif step.atomic:
            temp = path.with_name(f".{path.name}.{step.index}.tmp")
            temp.write_text(text)
            temp.chmod(0o644)  # the umask may be stricter; the server's user must read it
            os.replace(temp, path)
        else:
            path.write_text(text)
        if step.kind in ("future", "past"):
            when = (time.time_ns() + HOUR_NS if step.kind == "future"
                    else RESTORED_NS + step.index * 10**9)
            os.utime(path, ns=(when, when))


def mtimes(root: Path, step: Save) -> tuple[int, ...]:
    return tuple(int((root / p).stat().st_mtime) for p in step.files)


def lose_events(root: Path, step: Save) -> Saved:
    """Save while the processes that watch the app are stopped (SIGSTOP) and a scratch
    file's events overflow their kernel queues: the save's own events are lost. Once
    they run again (SIGCONT) watchdog reports the overflow, and the safety net's look
    serves the save: LOST_GRACE from then, not GRACE."""
    pids = watching(root)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: all(map(stopped, pids)), 5, "the watching processes to stop")
        limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
        flood(root / FLOOD, limit + 1024)
        save_files(root, step)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    return Saved(step, time.monotonic(), mtimes(root, step), LOST_GRACE, stopped=len(pids))


def watching(root: Path) -> set[int]:
    """The processes with an inotify watch on `root`: the server's processes that watch
    the app (read from /proc, which shows the watched inode and the kernel's dev_t)."""
    st = root.stat()
    needle = f" ino:{st.st_ino:x} sdev:{os.major(st.st_dev) << 20 | os.minor(st.st_dev):x} "
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if (os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
                        and needle in Path(f"/proc/{pid}/fdinfo/{fd}").read_text()):
                    found.add(int(pid))
    return found


def stopped(pid: int) -> bool:
    """Whether every thread of `pid` is stopped (or the process is gone)."""
    try:
        tasks = [t.read_text().rpartition(")")[2].split()[0]
                 for t in Path(f"/proc/{pid}/task").glob("*/stat")]
    except OSError:
        return True
    return all(state in "Tt" for state in tasks)


def flood(path: Path, cycles: int) -> None:
    """Open, write and close `path` `cycles` times (two events each: modified, closed
    after write), then delete it: more events than a stopped watcher's queue holds.
    Written over in place, not truncated: ext4 flushes a file truncated and written
    again at its close, a thousand times slower."""
    for _ in range(cycles):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(fd, b"x\n", 0)
        os.close(fd)
    path.unlink()


def chmod(root: Path, step: Save, log: Callable[[], str]) -> Saved:
    """Give a module the mode it has (its ctime moves, nothing else does), then watch
    `hold` s of traffic: the actions logged naming it must be none."""
    path = root / step.files[0]
    before = len(log())
    os.chmod(path, stat.S_IMODE(path.stat().st_mode))
    at = time.monotonic()
    threading.Event().wait(step.hold)
    named = [line for line in log()[before:].splitlines() if ACTION in line and str(path) in line]
    return Saved(step, at, (), actions=len(named))


def perform(root: Path, saves: Sequence[Save], log: Callable[[], str] = lambda: "") -> list[Saved]:
    """Carry out a schedule; each gap is part of the schedule, so it is waited out."""
    pause = threading.Event()
    done: list[Saved] = []
    for step in saves:
        pause.wait(step.gap)
        if step.on_second:
            pause.wait(1.01 - time.time() % 1)
        done.append(write(root, step, log))
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
        versions = {name: parse(value) for name, value in answer.items() if name != "pid"}
    except (ValueError, TypeError, AttributeError) as exc:
        return Request(start, end, status, hops, error=f"{exc!r} in {body[:300]!r}",
                       resets=resets)
    return Request(start, end, status, hops, answer["pid"], versions, resets=resets)


def parse(value: str) -> int:
    """The version an answer gives a file: 7 for "v007", or TORN or MISSING."""
    return {"torn": TORN, "missing": MISSING}.get(value) or int(value[1:])


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


def required(saved: Sequence[Saved], start: float) -> dict[str, int]:
    """The least version of each file a request that starts at `start` may get."""
    least: dict[str, int] = {}
    for done in saved:
        if done.at + done.grace <= start and done.save.kind != "chmod":
            for relpath in done.save.files:
                least[relpath] = max(least.get(relpath, 0), done.save.index)
    return least


def during(record: Request, relpath: str, began: float | None, done: Saved) -> bool:
    """Whether `record` came while `done` had `relpath` gone or half written (from
    `began`), before the requests that must have its new version."""
    return (relpath in done.save.files and began is not None and began <= record.end
            and record.start < done.at + done.grace)


def unreadable(
    record: Request, deleted: Sequence[tuple[Saved, set[int]]],
    written: Sequence[tuple[Saved, set[int]]] = (),
) -> tuple[set[str], list[str]]:
    """(files a request could not be judged on, why that fails it) for the files its
    answer says were half written or missing. Missing is no failure in a process that
    loaded the app while the module was deleted (`deleted`: each deletion, with the pids
    answering before it); a process that had it must keep serving the code it loaded.
    Half written is no failure in a process that first imported the module while a
    writer in place was at work (`written`: each such write, with the pids that had the
    module: those answering before it began, or before the deletion a recreate's write
    follows): it loaded the module as the writer had left it, which nothing can prevent
    where the writer's process is not visible to the server's user (/proc). A slow
    writer leaves it so for up to a second; a plain save for the moment between its
    open and its close, which a process restarted for the save before lands in now and
    then, and a process that loaded the app while the module was deleted, retrying the
    import on every request, at the recreate's write. The close is the change that heals
    it, due GRACE after the close like any save. A process that had loaded the module
    before the writer began must never load it half written."""
    unjudged: set[str] = set()
    failures: list[str] = []
    for relpath, value in sorted(record.versions.items()):
        if value == TORN:
            born = [before for done, before in written
                    if during(record, relpath, done.opened, done)]
            if not born or any(record.pid in before for before in born):
                failures.append(f"{relpath} read half written")
        elif value == MISSING:
            during_ = [before for done, before in deleted
                       if during(record, relpath, done.gone, done)]
            if not during_:
                failures.append(f"{relpath} missing")
            elif any(record.pid in before for before in during_):
                failures.append(f"{relpath} missing while deleted, in a process that had "
                                "loaded it: it loaded the app again without it")
        else:
            continue
        unjudged.add(relpath)
    return unjudged, failures


def judge(
    records: Sequence[Request], saved: Sequence[Saved], processes: int, origin: float,
    hops: int | None = None,
) -> Verdict:
    """Apply the rule to every request; times in messages are seconds since `origin`.
    `hops`: the redirects one change may cost a request (one per process by default)."""
    verdict = Verdict(requests=len(records))
    deleted = [(done, {r.pid for r in records if r.pid is not None and r.end < done.gone})
               for done in saved if done.gone is not None]
    written = [(done, {r.pid for r in records if r.pid is not None
                       and r.end < (done.opened if done.gone is None else done.gone)})
               for done in saved if done.opened is not None]
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
        if record.hops > (hops or processes) * (1 + overlapped):
            verdict.failed.append(f"{when} {record.hops} redirects for {processes} processes "
                                  f"and {overlapped} saves during the request")
        unjudged, failures = unreadable(record, deleted, written)
        verdict.failed += [f"{when} pid {record.pid}: {failure}" for failure in failures]
        behind = [
            f"{relpath} {version(record.versions.get(relpath, -1))} < {version(least)}"
            for relpath, least in sorted(required(saved, record.start).items())
            if record.versions.get(relpath, -1) < least and relpath not in unjudged
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
    """The seeds to run: RM_SCHEDULE_SEED (else `make test`'s RM_TEST_SCHEDULE_SEED, else a
    new one) and the RM_SCHEDULE_RUNS - 1 after it."""
    given = os.environ.get("RM_SCHEDULE_SEED") or os.environ.get("RM_TEST_SCHEDULE_SEED")
    base = int(given or random.SystemRandom().randrange(10**6))
    return [base + n for n in range(int(os.environ.get("RM_SCHEDULE_RUNS") or 1))]


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
    lost: int = 0  # lines reporting lost events
    holds: int = 0  # lines reporting a storm hold
    log_lines: list[str] = field(default_factory=list)  # what the server said it did

    def problems(self) -> list[str]:
        """What breaks the rule; restarts: one per process per change, and one more each
        (a recreated module is two changes, a no-op chmod none)."""
        found = []
        if self.verdict.stale:
            found.append(f"{len(self.verdict.stale)} stale answers")
        if self.verdict.failed:
            found.append(f"{len(self.verdict.failed)} failed requests")
        kinds = [done.save.kind for done in self.schedule]
        changes = len(kinds) + kinds.count("recreate") - kinds.count("chmod")
        most = (changes + 1) * self.processes
        for what, counted in (("restarts", self.restarts), ("actions", self.actions)):
            if counted > most:
                found.append(f"{counted} {what} for {changes} changes and "
                             f"{self.processes} processes (at most {most})")
        found += [f"{done.actions} actions on {done.save.files[0]} after a chmod that changed "
                  "nothing (none expected)" for done in self.schedule if done.actions]
        if "future" in kinds and self.holds:
            found.append(f"{self.holds} storm holds in a schedule with a save dated an hour "
                         "ahead (a time ahead of the clock is one change, never a storm)")
        stopped = [done for done in self.schedule if done.stopped]
        if stopped and not self.lost:
            found.append(f"{len(stopped)} saves made while the watching processes were "
                         "stopped and flooded, and no process reported lost events")
        return found

    def summary(self) -> str:
        v = self.verdict
        together, twins = same_second_twins(self.schedule)
        seed = "fixed" if self.seed is None else self.seed
        return (f"schedule {self.name} seed={seed}: requests={v.requests} "
                f"stale={len(v.stale)} failed={len(v.failed)} redirects={v.redirects} "
                f"(max {v.max_hops} per request) restarts={self.restarts} "
                f"actions={self.actions} resets={v.resets} twins in one second="
                f"{together}/{twins} lost={self.lost} holds={self.holds} "
                f"kinds={','.join(sorted({d.save.kind for d in self.schedule} - {''}))} "
                f"seconds={self.seconds:.1f}")

    def details(self, examples: int = 8) -> str:
        """The schedule and the first stale and failed requests, for a failure message."""
        lines = [self.summary(), *self.problems()]
        if self.seed is not None:
            lines.append(f"replay: RM_SCHEDULE_SEED={self.seed}")
        lines.append("saves:")
        lines += [f"  t={d.at - self.origin:.3f}s {d.save.describe()}{self.noted(d)}"
                  for d in self.schedule]
        for title, found in (("stale", self.verdict.stale), ("failed", self.verdict.failed)):
            if found:
                lines.append(f"{title} (first {min(examples, len(found))} of {len(found)}):")
                lines += [f"  {line}" for line in found[:examples]]
        if self.log_lines:
            lines.append("server log (actions, process starts, lost events, holds):")
            lines += [f"  {line}" for line in self.log_lines[:60]]
        return "\n".join(lines)

    def noted(self, done: Saved) -> str:
        """What a step's record adds to its description."""
        notes = [f"due {done.grace:.2f} s after"] if done.grace != GRACE else []
        notes += [f"{done.stopped} processes stopped"] if done.save.kind == "lost" else []
        notes += ([f"deleted at t={done.gone - self.origin:.3f}s"] if done.gone is not None
                  else [])
        notes += [f"{done.actions} actions"] if done.save.kind == "chmod" else []
        return f" ({', '.join(notes)})" if notes else ""


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
    hops: int | None = None,
    lead: float = 1.0,
    tail: float = 2.0,
    prior: Sequence[Saved] = (),
    log: Callable[[], str] = lambda: "",
) -> Outcome:
    """Traffic for `lead` s, then the saves, then `tail` s more (at least until every
    save is due, so that requests judge each); judged by the rule.

    `prior` are saves made before the traffic began, judged like the others; `log()` is
    the server's log so far; `hops`, see `judge()`.
    """
    pause = threading.Event()
    with Traffic(port, clients, retry_reset=retry_reset) as traffic:
        pause.wait(lead)
        saved = [*prior, *perform(root, saves, log)]
        due = max((done.at + done.grace for done in saved), default=0.0)
        pause.wait(max(tail, due + 0.5 - time.monotonic()))
    verdict = judge(traffic.records, saved, processes, traffic.started, hops)
    return Outcome(name, seed, processes, saved, verdict, traffic.started)


def count_lines(log: str, pattern: str) -> int:
    """The lines of `log` that `pattern` (a regular expression) finds."""
    return sum(1 for line in log.splitlines() if re.search(pattern, line))
