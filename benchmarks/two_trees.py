"""Two revisions of reload_middleware side by side: a big app's start and the requests after it.

    python benchmarks/two_trees.py REV_A REV_B [--rounds 12] [--next 10] [--modules 3000]

Each revision's `src/` is taken from git (`git archive`) into a directory of its own and
compiled. The app of figure 11 (`big_app.py`: 3,000 modules in 30 top-level packages)
is served by gunicorn (sync, 1 worker), bare and in `ReloadMiddleware(app)` with each
revision on `PYTHONPATH`, the three in a random order every round. Measured for each
start: launch to the first 200 answer (a request every 5 ms, a new connection each),
then `--next` requests back to back (what a page's assets meet). Medians, and every
value, sorted. It answers "did this change make a start slower?" where one run of
figure 11 alone is too noisy to tell tens of ms.
"""

from __future__ import annotations

import argparse
import compileall
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

import benchlib
import big_app
from procs import get

ROOT = Path(__file__).resolve().parent.parent


def export(revision: str, into: Path) -> Path:
    """`src/` of `revision`, compiled, under `into`; the directory for PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    compileall.compile_dir(str(into / "src"), quiet=1)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revisions", nargs=2, metavar="REV")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--next", type=int, default=10, help="requests after the first")
    parser.add_argument("--modules", type=int, default=big_app.MODULES)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="reload-middleware-two-trees-"))
    try:
        app = benchlib.generate_app(base / "app", args.modules, tops=big_app.TOPS)
        big_app.add_scripts(app)
        trees = {f"{name} ({rev})": export(rev, base / name)
                 for name, rev in zip(("A", "B"), args.revisions, strict=True)}
        variants: dict[str, Path | None] = {"bare": None, **trees}
        first: dict[str, list[float]] = {name: [] for name in variants}
        after: dict[str, list[float]] = {name: [] for name in variants}
        rng = random.Random(17)
        print(f"Two trees: {args.modules:,} modules, gunicorn sync, 1 worker "
              f"({benchlib.machine()}), {args.rounds} rounds")
        for _ in range(args.rounds):
            for name in rng.sample(list(variants), len(variants)):
                src = variants[name]
                options = {} if src is None else {"PYTHONPATH": str(src)}
                server = big_app.Gunicorn(app, "bare" if src is None else "wrapped",
                                          options=options)
                try:
                    first[name].append(server.start())
                    began = time.perf_counter()
                    for _ in range(args.next):
                        status, body = get(server.port)
                        if status != 200:
                            raise RuntimeError(f"{name}: {status} {body[:300]}")
                    after[name].append(time.perf_counter() - began)
                finally:
                    server.stop()
        for name in variants:
            print(f"\n{name}:")
            print(f"  launch to the first answer, s: median "
                  f"{statistics.median(first[name]):.3f} "
                  f"({' '.join(f'{x:.3f}' for x in sorted(first[name]))})")
            print(f"  the {args.next} requests after it, ms: median "
                  f"{statistics.median(after[name]) * 1e3:.1f} "
                  f"({' '.join(f'{x * 1e3:.1f}' for x in sorted(after[name]))})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
