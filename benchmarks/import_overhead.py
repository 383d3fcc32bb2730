"""What the import finder costs: the app's import with and without it, side by side.

    python benchmarks/import_overhead.py [--repeats 15]

The finder (`reload_middleware.watching.import_finder`) sits first on `sys.meta_path`
once a middleware is built, so every later import asks it first: it asks the finders
behind it for the spec and notes the file. For each N, one process imports the generated application
(its .pyc files valid) again and again, dropping its modules in between, alternately
without and with the finder; shown are the medians and the median of the per-pair
differences, per import.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import SIZES, generate_app, machine


def import_once(root: Path, finder: bool) -> float:
    """Seconds to import the generated app from its bytecode, the finder on or not."""
    from reload_middleware.watching.import_finder import Recorder

    for name in [n for n in sys.modules if n == "genapp" or n.startswith("genapp.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    recorder = Recorder()
    if finder:
        recorder.subscribe("benchmark", poke=lambda: None)
    started = time.perf_counter()
    importlib.import_module("genapp")
    elapsed = time.perf_counter() - started
    if finder:
        recorder.unsubscribe("benchmark")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(machine())
    print("\nimporting the generated app, median of", args.repeats, "pairs")
    print(f"{'N':>7} {'without':>11} {'with':>11} {'difference':>12} {'per import':>11}")
    for n in SIZES:
        root = Path(tempfile.mkdtemp(prefix=f"imports-{n}-"))
        generate_app(root, n)
        sys.path.insert(0, str(root))
        import_once(root, False)  # warm the filesystem caches
        pairs = []
        for _ in range(args.repeats):
            pairs.append((import_once(root, False), import_once(root, True)))
        sys.path.remove(str(root))
        without = statistics.median(p[0] for p in pairs)
        with_finder = statistics.median(p[1] for p in pairs)
        extra = statistics.median(p[1] - p[0] for p in pairs)
        print(f"{n:>7,} {without * 1e3:>9.1f} ms {with_finder * 1e3:>9.1f} ms "
              f"{extra * 1e3:>+10.2f} ms {extra / n * 1e6:>+9.2f} us")


if __name__ == "__main__":
    main()
