"""Save-to-new-code for the Django and Flask examples under real Apache/mod_wsgi daemon mode.

    python benchmarks/framework_examples.py [--runs 10]

For each example (examples/django, examples/flask, debug off): the median and spread of
"file written -> first response with the new code" (requests back to back, the hook
restarting the one preloaded daemon process), for a view and for a template. Needs what
the integration tests need (apache2, the Apache test venv with Django and Flask).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from apache import DEFAULT_VENV, Apache, ApacheSite, apache_available, prepare_run_dir, wait_for

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# (example, file, text at version N) for each kind of save.
SAVES = {
    "django": {"view": ("polls/views.py", 'VERSION = "{}"', "view"),
               "template": ("polls/templates/polls/index.html", '"template">{}', "template")},
    "flask": {"view": ("hello/pages/views.py", 'VERSION = "{}"', "view"),
              "template": ("hello/pages/templates/pages/index.html", '"template">{}',
                           "template")},
}


def copy_example(name: str) -> ApacheSite:
    root = prepare_run_dir()
    shutil.copytree(EXAMPLES / name, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ApacheSite(root)


def shown(server: Apache, field: str) -> str:
    found = re.search(rf'id="{field}">([^<]*)<', server.get("/").text)
    return found.group(1) if found else ""


def showing(server: Apache, field: str, value: int) -> Callable[[], bool]:
    return lambda: shown(server, field) == str(value)


def save_to_new_code(name: str, kind: str, runs: int) -> list[float]:
    relpath, pattern, field = SAVES[name][kind]
    site = copy_example(name)
    server = Apache(DEFAULT_VENV, prepare_run_dir(), script=site.script,
                    python_path=site.root, processes=1)
    server.start()
    try:
        times = []
        rng = random.Random(7)
        for n in range(1, runs + 1):
            wait_for(showing(server, field, n), 10, "a warm process")
            # Apache notices dead daemons on a one-second tick: save at a random phase.
            threading.Event().wait(rng.uniform(0, 1))
            path = site.root / relpath
            text = path.read_text().replace(pattern.format(n), pattern.format(n + 1))
            started = time.monotonic()
            site.write(relpath, text)
            wait_for(showing(server, field, n + 1), 10, "the new code")
            times.append(time.monotonic() - started)
        return times
    finally:
        server.stop()
        shutil.rmtree(site.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    reason = apache_available(DEFAULT_VENV)
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    print(f"save to new code, mod_wsgi daemon mode with the hook, {args.runs} runs each:")
    for name, kinds in SAVES.items():
        for kind in kinds:
            times = save_to_new_code(name, kind, args.runs)
            print(f"  {name:7} {kind:9} median {statistics.median(times):.3f} s, "
                  f"min {min(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
