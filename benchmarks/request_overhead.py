"""Figure 5: what a request costs with nothing pending, in ns per call.

    python benchmarks/request_overhead.py [--repeats 25] [--number 100000]

In a fresh process per N (the generated app imported), a hello-world WSGI app is called
bare, inside a no-op class middleware, and inside ReloadMiddleware after its first
request (watcher running, nothing pending). Each repeat times every variant once, in
turn (a different one first each time), `--number` calls each with timeit; shown are
the medians over the repeats, and the median of the per-repeat differences.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import timeit
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

TARGET_NS = 30.0


class NoOp:
    """The cheapest class middleware: one attribute, one call."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.app(environ, start_response)


def child(root: Path, repeats: int, number: int) -> None:
    """In the measured process: time the three variants, print JSON."""
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
    variants = {"bare": benchapp.hello, "no-op middleware": NoOp(benchapp.hello), "ours": ours}
    timers = {
        name: timeit.Timer("app(environ, start_response)",
                           globals={"app": app, "environ": environ,
                                    "start_response": start_response})
        for name, app in variants.items()
    }
    quiet_before = not ours._latch.dirty
    samples: dict[str, list[float]] = {name: [] for name in timers}
    names = list(timers)
    for repeat in range(repeats):
        for name in names[repeat % 3:] + names[:repeat % 3]:  # no variant always first
            samples[name].append(timers[name].timeit(number) / number * 1e9)
    print(json.dumps({"ns": samples, "quiet": quiet_before and not ours._latch.dirty}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeats, args.number)
        return
    import benchlib  # here only: the measured process must not import it

    sizes = list(benchlib.SIZES)
    print(f"Figure 5: per-request overhead ({benchlib.machine()})")
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        for n in sizes:
            app = benchlib.generate_app(Path(tmp) / str(n), n)
            results[n] = benchlib.run_child(
                "request_overhead.py",
                ["--child", str(app.root), "--repeats", str(args.repeats),
                 "--number", str(args.number)],
            )
    med = {n: {k: benchlib.median(v) for k, v in r["ns"].items()} for n, r in results.items()}
    # Each repeat times both within a second or so: their difference is paired.
    diff = {
        n: benchlib.median(a - b for a, b in zip(r["ns"]["ours"], r["ns"]["no-op middleware"],
                                                 strict=True))
        for n, r in results.items()
    }
    rows = {
        "bare hello-world app": {n: f"{m['bare']:.1f}" for n, m in med.items()},
        "no-op class middleware": {n: f"{m['no-op middleware']:.1f}" for n, m in med.items()},
        "ReloadMiddleware, nothing pending": {n: f"{m['ours']:.1f}" for n, m in med.items()},
        "ReloadMiddleware - no-op (paired median)": {n: f"{d:+.1f}" for n, d in diff.items()},
    }
    benchlib.table(f"ns per call, median of {args.repeats} repeats x {args.number:,} calls",
                   rows, sizes)
    if not all(r["quiet"] for r in results.values()):
        print("note: the latch was raised during a run (an import in the process?)")
    worst = max(diff.values())
    benchlib.verdict(worst <= TARGET_NS, f"at most {TARGET_NS:g} ns more than a no-op class "
                     "middleware", f"worst {worst:+.1f} ns")


if __name__ == "__main__":
    main()
