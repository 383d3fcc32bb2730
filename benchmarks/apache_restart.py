"""Save-to-new-code under real Apache/mod_wsgi daemon mode, and what the watcher costs.

    python benchmarks/apache_restart.py [--runs 10] [--example pyramid]

Prints the median and spread of "file written -> first response with the new code"
(requests sent back to back, no redirect following) with the hook, and the threads and
inotify instances/watches of one daemon process serving the example app with
reloading enabled versus `SetEnv reload_middleware.enabled off`, side by side. With
`--example pyramid`, save to new code for examples/pyramid (PasteDeploy's pipeline
with the filter; the view is saved) instead, and no resource table.
Needs what the integration tests need (apache2, the Apache test venv).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from apache import (
    DEFAULT_VENV,
    Apache,
    ApacheSite,
    apache_available,
    prepare_run_dir,
    process_resources,
    wait_for,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def copy_example() -> ApacheSite:
    root = prepare_run_dir()
    shutil.copytree(EXAMPLES, root, dirs_exist_ok=True)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ApacheSite(root)


def wait_version(server: Apache, version: str, what: str) -> None:
    wait_for(lambda: f"version {version} from" in server.get("/").text, 10, what)


# examples/pyramid's view, answering "Hello N": N is the version the runs change.
PYRAMID_VIEW = """\
from pyramid.view import view_config


@view_config(route_name="home", renderer="string")
def home(request):
    return "Hello {version}"
"""


def copy_pyramid() -> ApacheSite:
    root = prepare_run_dir()
    shutil.copytree(EXAMPLES / "pyramid", root, dirs_exist_ok=True)
    site = ApacheSite(root)
    site.write("hello/views.py", PYRAMID_VIEW.format(version=1))
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return site


def save_to_new_code(runs: int, example: str = "demo") -> list[float]:
    site = copy_pyramid() if example == "pyramid" else copy_example()
    server = Apache(
        DEFAULT_VENV, prepare_run_dir(), script=site.script, python_path=site.root, processes=1
    )
    server.start()
    try:
        times = []
        rng = random.Random(7)
        for n in range(runs):
            old, new = str(n + 1), str(n + 2)
            wait_version(server, old, "a warm process")
            # Apache notices dead daemons on a one-second tick: save at a random phase of
            # it, as a person would, not in step with the previous restart.
            threading.Event().wait(rng.uniform(0, 1))
            started = time.monotonic()
            if example == "pyramid":
                site.write("hello/views.py", PYRAMID_VIEW.format(version=new))
            else:
                site.write("demo/version.py", f'VERSION = "{new}"\n')
            wait_version(server, new, "the new code")
            times.append(time.monotonic() - started)
        return times
    finally:
        server.stop()


def cost(enabled: bool) -> tuple[int, int, int]:
    site = copy_example()
    server = Apache(
        DEFAULT_VENV,
        prepare_run_dir(),
        script=site.script,
        python_path=site.root,
        processes=1,
        threads=15,
        location_config="" if enabled else "SetEnv reload_middleware.enabled off",
    )
    server.start()
    try:
        for _ in range(5):
            server.get("/")
        (pid,) = server.daemon_pids()
        return process_resources(pid)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--example", choices=("demo", "pyramid"), default="demo")
    args = parser.parse_args()
    reason = apache_available(DEFAULT_VENV)
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    times = save_to_new_code(args.runs, args.example)
    print(f"save to new code ({args.example} example), mod_wsgi daemon mode with the hook,"
          f" {args.runs} runs:")
    print(
        f"  median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s"
    )
    if args.example != "demo":
        return
    on, off = cost(True), cost(False)
    print("one daemon process (threads=15) serving the example app:")
    print(f"  {'':28}{'threads':>8}{'inotify':>9}{'watches':>9}")
    print(f"  {'reloading off':28}{off[0]:>8}{off[1]:>9}{off[2]:>9}")
    print(f"  {'reloading on':28}{on[0]:>8}{on[1]:>9}{on[2]:>9}")
    print(
        f"  {'added by the middleware':28}{on[0] - off[0]:>8}{on[1] - off[1]:>9}{on[2] - off[2]:>9}"
    )


if __name__ == "__main__":
    main()
