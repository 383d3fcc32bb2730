"""The measured process: one contender watching a generated app. Run by the figures'
scripts in a fresh interpreter, never imported:

    python benchmarks/contenders.py FIGURE CONTENDER ROOT [--changes 40] [--spin] ...

FIGURE is `latency`, `idle` or `resources`; it prints one JSON line. The app's modules
are imported first; then the contender starts and is waited for until armed (every
inotify watch live, or a first complete scan). This file imports no other benchmark
module: here it would be project code, and ReloadMiddleware would watch its folder.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

WATCHDOG_DISPATCHER = "InotifyFD-Dispatcher"  # the name watchdog gives that thread
PAUSE = threading.Event()  # never set: its wait() is a sleep that lets other threads run


class Contender:
    """A watcher behind one interface: start, armed?, change pending?, clear."""

    polls = False  # a polling monitor: its delay is the poll interval, not milliseconds

    def __init__(self, root: Path) -> None:
        self.root = root
        self.events = 0
        self.flag = threading.Event()

    def start(self) -> None:
        """Nothing to start: the process without a watcher."""

    def armed(self) -> bool:
        return True

    def pending(self) -> bool:
        return self.flag.is_set()

    def count(self) -> int:
        """Events seen so far: a count that stands still means quiet."""
        return self.events

    def clear(self) -> None:
        self.flag.clear()

    def noticed(self, path: object) -> None:
        self.events += 1
        self.flag.set()


class GarbageCollections:
    """Time spent in the garbage collector from now to stop(), in ms (gc.callbacks)."""

    def __init__(self) -> None:
        self.total, self._since = 0.0, 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._since

    def stop(self) -> float:
        gc.callbacks.remove(self._note)
        return self.total * 1e3


class Reload(Contender):
    """ReloadMiddleware built by the app's script module; its first request arms it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.packages = [root / top for top in top_level_packages(root)]
        self.expected = 1 + sum(sum(1 for _ in os.walk(top)) for top in self.packages)

    def start(self) -> None:
        collecting = GarbageCollections()
        began = time.perf_counter()
        import benchapp  # type: ignore[import-not-found]  # generated: builds the middleware

        self.app = benchapp.application
        self.built_ms = (benchapp.BUILD_ENDED - benchapp.BUILD_STARTED) * 1e3
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        started = time.perf_counter()
        changes = self.app._latch
        sweep = changes.sweep

        def watches_live() -> None:
            """The first request looks at every file again once every watch is live: when."""
            self.live_ms = (time.perf_counter() - began) * 1e3
            self.live_watches = inotify()[1]
            sweep()

        changes.sweep = watches_live
        self.app(environ, lambda status, headers, exc_info=None: lambda data: None)
        changes.sweep = sweep
        self.first_request_ms = (time.perf_counter() - started) * 1e3
        self.gc_ms = collecting.stop()

    def armed(self) -> bool:
        return inotify()[1] >= self.expected

    def pending(self) -> bool:
        return bool(self.app.pending)

    def count(self) -> int:
        return int(self.app._latch.seq)

    def clear(self) -> None:
        """What a request does once it acted: take the change, new baselines."""
        taken = self.app._latch.take()
        self.app._latch.finish(taken, acted=True)

    def floors(self) -> dict[str, float]:
        """The work arming cannot skip, timed alone: one lstat of every tracked file (the
        baseline, and again after the watches are live), and watchdog's recursive
        schedule of the same tree (it walks it to add a watch per directory)."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        from reload_middleware.watching.observers import COUNTED

        files = list(self.app._latch.known)
        started = time.perf_counter()
        for path in files:
            os.lstat(path)
        lstat_ms = (time.perf_counter() - started) * 1e3
        observer = Observer()
        observer.start()
        started = time.perf_counter()
        for top in self.packages:
            observer.schedule(FileSystemEventHandler(), str(top), recursive=True,
                              event_filter=list(COUNTED))
        schedule_ms = (time.perf_counter() - started) * 1e3
        observer.stop()
        observer.join()
        return {"lstat_ms": lstat_ms, "schedule_ms": schedule_ms}


class Classic(Contender):
    """Our implementation of the monitor mod_wsgi's documentation describes."""

    polls = True

    def start(self) -> None:
        from classic_monitor import ClassicMonitor

        self.monitor = ClassicMonitor(on_change=self.noticed)
        self.monitor.start()

    def armed(self) -> bool:
        return self.monitor.scans > 0


class _Logger:
    """hupper's ILogger."""

    def error(self, msg: str) -> None:
        print(msg, file=sys.stderr)

    info = debug = error


def add_module_paths(monitor: Any) -> None:
    """Feed a hupper monitor the files hupper's worker would: modules outside the system."""
    worker = importlib.import_module("hupper.worker")
    watcher = worker.WatchSysModules(lambda paths: [monitor.add_path(p) for p in paths])
    watcher.update_paths()


class HupperWatchdog(Contender):
    """hupper.watchdog.WatchdogFileMonitor(callback, logger): a schedule per directory."""

    def start(self) -> None:
        module = importlib.import_module("hupper.watchdog")
        self.monitor = module.WatchdogFileMonitor(self.noticed, _Logger())
        self.monitor.daemon = True
        add_module_paths(self.monitor)
        self.monitor.start()

    def armed(self) -> bool:
        return inotify()[1] >= len(self.monitor.dirpaths)


class HupperPolling(Contender):
    """hupper.polling.PollingFileMonitor(callback, interval=1)."""

    polls = True

    def start(self) -> None:
        module = importlib.import_module("hupper.polling")
        self.monitor = module.PollingFileMonitor(self.noticed, interval=1)
        self.monitor.daemon = True
        add_module_paths(self.monitor)
        self.monitor.start()

    def armed(self) -> bool:
        with self.monitor.lock:
            return len(self.monitor.mtimes) >= len(self.monitor.paths) > 0


class WerkzeugStat(Contender):
    """werkzeug._reloader.StatReloaderLoop, its run_step driven as its run() does.

    Its trigger_reload exits the process, and the new process takes fresh mtimes; here
    the changed file's new mtime is taken instead, and the loop goes on.
    """

    polls = True

    def start(self) -> None:
        module = importlib.import_module("werkzeug._reloader")
        self.loop = module.StatReloaderLoop(interval=1)
        self.loop.trigger_reload = self._triggered
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def armed(self) -> bool:
        return self.ready.is_set()

    def _triggered(self, filename: str) -> None:
        self.loop.mtimes[filename] = os.stat(filename).st_mtime
        self.noticed(filename)

    def _run(self) -> None:
        with self.loop:  # __enter__ runs the first step: every mtime recorded
            self.ready.set()
            while True:
                PAUSE.wait(self.loop.interval)
                self.loop.run_step()


CONTENDERS: dict[str, type[Contender]] = {
    "reload_middleware": Reload,
    "classic": Classic,
    "hupper-watchdog": HupperWatchdog,
    "hupper-polling": HupperPolling,
    "werkzeug-stat": WerkzeugStat,
    "none": Contender,
}


def top_level_packages(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/__init__.py"))


def inotify() -> tuple[int, int, set[int]]:
    """(instances, watches, watched inodes) of this process, read from /proc."""
    instances, watches, inodes = 0, 0, set[int]()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                lines = [line for line in info if line.startswith("inotify wd:")]
        except OSError:
            continue
        instances += 1
        watches += len(lines)
        inodes.update(int(line.split(" ino:")[1].split()[0], 16) for line in lines)
    return instances, watches, inodes


def wait(condition: Any, step: float, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        PAUSE.wait(step)


def arm(contender: Contender) -> dict[str, Any]:
    """Start the contender and wait until it is armed; resources and times."""
    before = set(threading.enumerate())
    started = time.perf_counter()
    contender.start()
    wait(contender.armed, 0.0005, 30, "the contender to arm")
    armed_ms = (time.perf_counter() - started) * 1e3
    added = [t for t in threading.enumerate() if t not in before]
    instances, watches, inodes = inotify()
    venv = {os.stat(d).st_ino for d, _, _ in os.walk(contender.root / "venv")}
    return {
        "armed_ms": armed_ms,
        "threads": len(added),
        # watchdog 7.1.1 starts a dispatcher thread of its own for each inotify instance
        "watchdog_threads": sum(t.name == WATCHDOG_DISPATCHER for t in added),
        "roots": sum(type(t).__module__.startswith(("watchdog.observers", "reload_middleware"))
                     and hasattr(t, "watch") for t in added),  # one emitter per root
        "instances": instances,
        "watches": watches,
        "venv_watches": len(inodes & venv),
        "built_ms": getattr(contender, "built_ms", None),
        "first_request_ms": getattr(contender, "first_request_ms", None),
        "live_ms": getattr(contender, "live_ms", None),
        "live_watches": getattr(contender, "live_watches", None),
        "gc_ms": getattr(contender, "gc_ms", None),
    }


def quiet(contender: Contender, seconds: float) -> None:
    """Wait until no event came for `seconds` (a write can give more than one event)."""
    last, since = contender.count(), time.monotonic()
    while time.monotonic() - since < seconds:
        PAUSE.wait(seconds / 4)
        if contender.count() != last:
            last, since = contender.count(), time.monotonic()


def write(path: Path, version: int) -> None:
    with open(path, "w") as source:
        source.write(f'"""Generated module."""\nVERSION = "v{version}"\n')


def latency(contender: Contender, args: argparse.Namespace) -> dict[str, Any]:
    """Close of a write -> change pending, over `args.changes` writes to random modules."""
    files = sorted(contender.root.glob("**/m[0-9]*.py"))
    rng = random.Random(args.seed)
    step = 0.001 if contender.polls else 0.0001
    times, early = [], 0
    for n in range(args.changes):
        # A random phase: a polling monitor's delay depends on when its tick comes.
        PAUSE.wait(rng.uniform(0, 1.0) if contender.polls else rng.uniform(0.005, 0.03))
        write(rng.choice(files), n + 1)
        closed = time.perf_counter()
        early += contender.pending()
        if args.spin:
            while not contender.pending():
                pass
        else:
            wait(contender.pending, step, 10, "the change to be pending")
        times.append((time.perf_counter() - closed) * 1e3)
        quiet(contender, 0.02)
        contender.clear()
    return {"latency_ms": times, "pending_at_close": early}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("figure", choices=["latency", "idle", "resources"])
    parser.add_argument("contender", choices=list(CONTENDERS))
    parser.add_argument("root", type=Path)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spin", action="store_true", help="busy loop, holding the GIL")
    parser.add_argument("--switch", type=float, help="sys.setswitchinterval() for the run")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    started = time.perf_counter()
    for name in top_level_packages(args.root):
        importlib.import_module(name)
    result: dict[str, Any] = {"import_ms": (time.perf_counter() - started) * 1e3}
    if args.contender == "reload_middleware":
        importlib.import_module("reload_middleware")
    contender = CONTENDERS[args.contender](args.root)
    result.update(arm(contender))
    if args.switch:
        sys.setswitchinterval(args.switch)
    if args.figure == "latency":
        result.update(latency(contender, args))
    elif args.figure == "resources" and isinstance(contender, Reload):
        result.update(contender.floors())
    elif args.figure == "idle":
        cpu, wall = time.process_time(), time.monotonic()
        PAUSE.wait(args.seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        result["cpu_ms_per_s"] = cpu * 1e3 / wall
    print(json.dumps(result))


if __name__ == "__main__":
    main()
