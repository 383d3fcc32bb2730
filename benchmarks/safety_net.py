"""Figure 8: what the safety net's look costs the request that makes it, in ms.

    python benchmarks/safety_net.py [--rounds 15]

In a fresh process per N (the generated app imported, its first request served), each
round times a request with nothing pending and a request that makes the net's look
(every tracked file against its baseline, as after lost events or once per period while
requests arrive), in turn. Shown: the medians over the rounds and their paired
difference. With no traffic the net makes no look at all: its thread only raises a flag
once per period (figure 2 measures that).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

TARGET_MS = 40.0  # at N=5,000, once per 5 s period while requests arrive: under 1% of a core


def child(root: Path, rounds: int) -> None:
    """In the measured process: time both kinds of request, print JSON."""
    from wsgiref.util import setup_testing_defaults

    sys.path.insert(0, str(root))
    import benchapp  # type: ignore[import-not-found]  # generated: builds the middleware

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        return None

    ours = benchapp.application
    for _ in range(10):  # the first request starts the watcher; the latch then goes down
        ours(environ, start_response)
        if not ours._latch.dirty:
            break
    samples: dict[str, list[float]] = {"quiet": [], "look": []}
    for _ in range(rounds):
        for kind in samples:
            if kind == "look":
                ours._latch.doubt()
            started = time.perf_counter()
            ours(environ, start_response)
            samples[kind].append((time.perf_counter() - started) * 1e3)
    print(json.dumps({"ms": samples, "files": len(ours._latch.known)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rounds)
        return
    import tempfile

    import benchlib  # here only: the measured process must not import it

    sizes = list(benchlib.SIZES)
    print(f"Figure 8: the safety net's look ({benchlib.machine()})")
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        for n in sizes:
            app = benchlib.generate_app(Path(tmp) / str(n), n)
            results[n] = benchlib.run_child(
                "safety_net.py", ["--child", str(app.root), "--rounds", str(args.rounds)])
    diff = {
        n: benchlib.median(a - b for a, b in zip(r["ms"]["look"], r["ms"]["quiet"], strict=True))
        for n, r in results.items()
    }
    rows = {
        "files tracked": {n: str(r["files"]) for n, r in results.items()},
        "request, nothing pending": {
            n: f"{benchlib.median(r['ms']['quiet']):.3f}" for n, r in results.items()},
        "request that makes the look": {
            n: f"{benchlib.median(r['ms']['look']):.3f}" for n, r in results.items()},
        "the look (paired median)": {n: f"{d:+.3f}" for n, d in diff.items()},
    }
    benchlib.table(f"ms per request, median of {args.rounds} rounds", rows, sizes)
    biggest = max(sizes)
    benchlib.verdict(diff[biggest] <= TARGET_MS, f"at most {TARGET_MS:g} ms at N={biggest:,}",
                     f"{diff[biggest]:+.3f} ms")


if __name__ == "__main__":
    main()
