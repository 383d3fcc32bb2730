"""Figure 2: CPU an idle process spends on its watcher, in ms of CPU per wall second.

    python benchmarks/idle_cpu.py [--seconds 20] [--sizes 100 1000 5000]

For each N, one fresh process per contender and one without any watcher import the
same generated app (each its own copy), arm, then measure `time.process_time()` over
the same fixed window while nothing changes and no request comes. The processes of one
N run side by side: a process's CPU time counts only its own threads, and the pollers
together keep well under one core busy. Shown: each contender minus the process
without a watcher (whose own figure is the last row).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import benchlib

CONTENDERS = {
    "reload_middleware": "reload_middleware",
    "mod_wsgi classic monitor (1 s)": "classic",
    "hupper watchdog": "hupper-watchdog",
    "hupper polling (1 s)": "hupper-polling",
    "werkzeug stat (1 s)": "werkzeug-stat",
    "no watcher (raw, subtracted above)": "none",
}
TARGET = 0.5  # ms of CPU per second at N=5,000


def measure(tmp: Path, n: int, seconds: float) -> dict[str, dict[str, Any]]:
    template = benchlib.generate_app(tmp / f"template-{n}", n)
    children = {}
    for name, contender in CONTENDERS.items():
        root = tmp / f"{n}-{contender}"
        shutil.copytree(template.root, root)
        args = ["idle", contender, str(root), "--seconds", str(seconds)]
        children[name] = benchlib.start_child("contenders.py", args)
    return {name: benchlib.collect(child) for name, child in children.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(benchlib.SIZES))
    args = parser.parse_args()
    print(f"Figure 2: idle CPU ({benchlib.machine()})")
    added: dict[str, dict[int, float]] = {name: {} for name in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        for n in args.sizes:
            results = measure(Path(tmp), n, args.seconds)
            base = results["no watcher (raw, subtracted above)"]["cpu_ms_per_s"]
            for name, result in results.items():
                added[name][n] = result["cpu_ms_per_s"] - (0 if name.startswith("no ") else base)
    rows = {name: {n: f"{v:.3f}" for n, v in by_n.items()} for name, by_n in added.items()}
    benchlib.table(f"CPU ms per wall second over {args.seconds:g} s, minus no watcher",
                   rows, args.sizes)
    biggest = max(args.sizes)
    ours = added["reload_middleware"][biggest]
    benchlib.verdict(ours < TARGET, f"under {TARGET} ms/s at N={biggest:,}", f"{ours:.3f} ms/s")


if __name__ == "__main__":
    main()
