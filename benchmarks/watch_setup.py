"""Figures 3 and 4: what arming a watcher costs (threads, inotify) and how long it takes.

    python benchmarks/watch_setup.py [--runs 3] [--sizes 100 1000 5000]

Each contender arms in a fresh process that has imported the generated app: threads
added (`threading.enumerate()` before and after; "(+1)" is the dispatcher thread that
watchdog 7.1.1 starts for each inotify instance, not counted against the targets),
inotify instances and watches
(`/proc/self/fd` and the `inotify wd:` lines of `/proc/self/fdinfo`). Then the same
with an app directory that also holds a virtualenv-shaped tree of 3,000 directories
(`venv/lib/pythonX.Y/site-packages/...`) and the app's packages at top level.

Arming time for reload_middleware runs from the execution of the script that builds
the ReloadMiddleware (its modules already imported) to the moment, in its first
request, when every watch is live and each file is looked at again for changes made
before (the watch count is read from /proc there and checked); and, in full, to the
end of that first request; median of `--runs` processes. For the others: from start
until every watch is live in /proc, or until their first complete scan.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import benchlib

CONTENDERS = {
    "reload_middleware": "reload_middleware",
    "hupper watchdog": "hupper-watchdog",
    "mod_wsgi classic monitor": "classic",
    "hupper polling": "hupper-polling",
    "werkzeug stat": "werkzeug-stat",
}
VENV_DIRS = 3_000
MAX_THREADS = 4  # one root: the observer, the inotify reader, its emitter, the safety net
ARMING_TARGET_MS = 25.0


def directories(root: Path) -> int:
    return sum(1 for _ in os.walk(root / "genapp"))


def measure(tmp: Path, n: int, runs: int) -> dict[str, list[dict[str, Any]]]:
    app = benchlib.generate_app(tmp / f"app-{n}", n)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, contender in CONTENDERS.items():
        times = runs if contender == "reload_middleware" else 1
        out[name] = [
            benchlib.run_child("contenders.py", ["resources", contender, str(app.root)])
            for _ in range(times)
        ]
    flat = benchlib.generate_app(tmp / f"venv-{n}", n, flat=True, venv_dirs=VENV_DIRS)
    for name in ("reload_middleware", "hupper watchdog"):
        args = ["resources", CONTENDERS[name], str(flat.root)]
        out[f"{name}, app dir holds a venv"] = [benchlib.run_child("contenders.py", args)]
    out["packages"] = [{"top": len(flat.top), "dirs": directories(app.root)}]
    return out


def own(r: dict[str, Any]) -> int:
    """The threads a contender added, watchdog's own dispatcher left out."""
    return int(r["threads"]) - int(r.get("watchdog_threads", 0))


def threads(r: dict[str, Any]) -> str:
    extra = int(r.get("watchdog_threads", 0))
    return f"{own(r)} (+{extra})" if extra else str(own(r))


def resources(results: dict[int, dict[str, list[dict[str, Any]]]], sizes: list[int]) -> None:
    rows: dict[str, dict[int, str]] = {}
    for name in [*CONTENDERS, *(f"{c}, app dir holds a venv" for c in list(CONTENDERS)[:2])]:
        rows[name] = {}
        for n in sizes:
            r = results[n][name][0]
            inside = f" / {r['venv_watches']}" if "venv" in name else ""
            rows[name][n] = f"{threads(r)} / {r['instances']} / {r['watches']}{inside}"
    rows["(app: directories incl. __pycache__)"] = {
        n: str(results[n]["packages"][0]["dirs"]) for n in sizes
    }
    rows["(venv case: top-level packages)"] = {
        n: str(results[n]["packages"][0]["top"]) for n in sizes
    }
    benchlib.table("Figure 3: threads added / inotify instances / inotify watches "
                   "[/ watches inside the venv]", rows, sizes)
    ours = [results[n]["reload_middleware"][0] for n in sizes]
    benchlib.verdict(all(own(r) <= MAX_THREADS + r["roots"] - 1 for r in ours),
                     f"at most {MAX_THREADS} threads + one per further root at every N "
                     "(watchdog's dispatcher apart)",
                     ", ".join(f"{threads(r)} for {r['roots']} roots" for r in ours))
    benchlib.verdict(all(r["instances"] == 1 for r in ours), "one inotify instance")
    dirs = [results[n]["packages"][0]["dirs"] for n in sizes]
    grows = all(r["watches"] == d + 1 for r, d in zip(ours, dirs, strict=True))
    benchlib.verdict(grows, "watches grow with directories, not files",
                     "watches = the app's directories + the script's")
    venv = [results[n]["reload_middleware, app dir holds a venv"][0] for n in sizes]
    tops = [results[n]["packages"][0]["top"] for n in sizes]
    benchlib.verdict(all(r["venv_watches"] == 0 for r in venv), "the virtualenv adds no watch")
    pairs = [(own(r), MAX_THREADS + t) for r, t in zip(venv, tops, strict=True)]
    benchlib.verdict(all(count <= limit for count, limit in pairs),
                     "with the venv, threads at most 4 + top-level packages",
                     ", ".join(f"{count} <= {limit}" for count, limit in pairs))


def arming(results: dict[int, dict[str, list[dict[str, Any]]]], sizes: list[int]) -> None:
    def ms(name: str, key: str) -> dict[int, str]:
        return {n: f"{benchlib.median(r[key] for r in results[n][name]):.1f}" for n in sizes}

    for by_name in results.values():
        for r in by_name["reload_middleware"]:
            r["live_floor_ms"] = r["lstat_ms"] + r["schedule_ms"]
            r["floor_ms"] = 2 * r["lstat_ms"] + r["schedule_ms"]
    rows = {
        "reload_middleware: constructor": ms("reload_middleware", "built_ms"),
        "reload_middleware: first request": ms("reload_middleware", "first_request_ms"),
        "reload_middleware: script to all watches live": ms("reload_middleware", "live_ms"),
        "reload_middleware: script to end of first request": ms("reload_middleware", "armed_ms"),
        "  of which garbage collection": ms("reload_middleware", "gc_ms"),
        "hupper watchdog: start to all watches live": ms("hupper watchdog", "armed_ms"),
        "mod_wsgi classic: start to first full scan": ms("mod_wsgi classic monitor", "armed_ms"),
        "hupper polling: start to first full scan": ms("hupper polling", "armed_ms"),
        "werkzeug stat: start to first full scan": ms("werkzeug stat", "armed_ms"),
        "(the app's own import, same process)": ms("reload_middleware", "import_ms"),
        "floor: one lstat of each tracked file": ms("reload_middleware", "lstat_ms"),
        "floor: watchdog's recursive schedule": ms("reload_middleware", "schedule_ms"),
        "floor, to all watches live: lstat + schedule": ms("reload_middleware",
                                                            "live_floor_ms"),
        "floor, whole: 2 x lstat + schedule": ms("reload_middleware", "floor_ms"),
    }
    benchlib.table("Figure 4: arming time, ms (reload_middleware: median of the runs)",
                   rows, sizes)
    ours = [r for n in sizes for r in results[n]["reload_middleware"]]
    assert all(r["live_watches"] == r["watches"] for r in ours), "a watch came after"
    biggest = results[max(sizes)]["reload_middleware"]
    live = benchlib.median(r["live_ms"] for r in biggest)
    floor = benchlib.median(r["live_floor_ms"] for r in biggest)
    benchlib.verdict(live < ARMING_TARGET_MS, f"every watch live in under "
                     f"{ARMING_TARGET_MS:g} ms at N={max(sizes):,}",
                     f"{live:.1f} ms; the floor alone is {floor:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(benchlib.SIZES))
    args = parser.parse_args()
    print(f"Figures 3 and 4: arming a watcher ({benchlib.machine()})")
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
        results = {n: measure(Path(tmp), n, args.runs) for n in args.sizes}
    resources(results, args.sizes)
    arming(results, args.sizes)


if __name__ == "__main__":
    main()
