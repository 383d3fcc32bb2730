"""Live reload: save to the open page showing the new code, in a real browser.

    python benchmarks/live_reload.py [--runs 10]

Headless Chromium (Debian's `chromium` and `chromium-driver`, through Selenium) keeps
one tab open on the browser tests' app (tests/integration/browser.py), served with
`live` on by Apache in daemon mode (preloaded, processes=2, threads=5) and by
`reload-middleware serve`. Each run rewrites webapp/views.py with a new VERSION and
polls the tab's DOM (every 20 ms, plus a WebDriver round trip of a few ms) until it
shows that VERSION; nothing else is done in the browser. Then each run rewrites the
page's stylesheet (static/site.css, under the `static` option) with a new colour and
polls until the text has it: the stylesheet is swapped, the page not reloaded. A random
pause of 0 to 1 s before each save puts it anywhere in Apache's one-second tick. First,
under Apache, five tabs are held open for 5 s and the events requests the server
received are counted, with the distinct clients (one per SharedWorker) that sent them.
Needs what the browser tests need (apache2, the Apache test venv, chromium).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from apache import (
    DEFAULT_VENV,
    Apache,
    ApacheSite,
    apache_available,
    free_port,
    prepare_run_dir,
    wait_for,
)
from browser import STYLE, chromium, clients, shows, tabs, write_app
from procs import running
from selenium.webdriver.remote.webdriver import WebDriver

PAUSE = threading.Event()


Times = tuple[list[float], list[float]]  # (module saves, stylesheet saves)


def runs_against(
    driver: WebDriver, url: str, root: Path, write: Callable[[str, str], object], runs: int
) -> Times:
    """Seconds from each save's close() to the open tab showing its VERSION; then from
    each stylesheet save to the tab's text in its colour (swapped, not reloaded)."""
    rng = random.Random(7)
    times, styles = [], []
    with tabs(driver, url + "/", 1):
        shows(driver, "version", "1", 10, "the page")
        for n in range(runs):
            PAUSE.wait(rng.uniform(0, 1))
            started = time.monotonic()
            write("webapp/views.py", f"VERSION = '{n + 2}'\n")
            shows(driver, "version", str(n + 2), 10, "the new code")
            times.append(time.monotonic() - started)
        loaded = driver.execute_script("return performance.timeOrigin")
        for n in range(runs):
            PAUSE.wait(rng.uniform(0, 1))
            color = f"rgb({n + 1}, 0, 0)"
            started = time.monotonic()
            write("static/site.css", STYLE.format(color))
            wait_for(lambda c=color: driver.execute_script(  # type: ignore[misc]
                "return getComputedStyle(document.getElementById('version')).color") == c,
                10, "the saved stylesheet")
            styles.append(time.monotonic() - started)
        assert driver.execute_script("return performance.timeOrigin") == loaded, "reloaded"
    return times, styles


def on_apache(driver: WebDriver, runs: int) -> tuple[Times, int, int]:
    site = ApacheSite(prepare_run_dir())
    write_app(site.root, site.write, count=True)
    server = Apache(DEFAULT_VENV, prepare_run_dir(), script=site.script,
                    python_path=site.root, processes=2)
    server.start()
    try:
        # First, on an origin this browser has not seen: no worker is running for it yet.
        with tabs(driver, server.url + "/", 5):
            PAUSE.wait(5)
            seen = clients(site.root)
        times = runs_against(driver, server.url, site.root, site.write, runs)
        return times, len(seen), len(set(seen))
    finally:
        server.stop()
        shutil.rmtree(site.root, ignore_errors=True)
        shutil.rmtree(server.run_dir, ignore_errors=True)


def on_serve(driver: WebDriver, runs: int, port: int) -> Times:
    root = prepare_run_dir()

    def write(relpath: str, text: str) -> None:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write_app(root, write, count=False)
    argv = [sys.executable, "-m", "reload_middleware", "serve", "app.py", "--port", str(port)]
    try:
        with running(argv, root, port):
            return runs_against(driver, f"http://127.0.0.1:{port}", root, write, runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def row(name: str, times: list[float]) -> str:
    return (f"  {name:34} median {statistics.median(times):.3f} s   "
            f"min {min(times):.3f}   max {max(times):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    reason = apache_available(DEFAULT_VENV)
    if reason or not shutil.which("chromedriver"):
        raise SystemExit(f"cannot run: {reason or 'chromium-driver is not installed'}")
    driver = chromium()
    try:
        version = driver.capabilities.get("browserVersion", "?")
        apache, requests, distinct = on_apache(driver, args.runs)
        serve = on_serve(driver, args.runs, free_port())
    finally:
        driver.quit()
    print(f"save to page updated, one open tab, Chromium {version} headless, {args.runs} runs:")
    print(row("Apache daemon (2 processes, hook)", apache[0]))
    print(row("reload-middleware serve", serve[0]))
    print("stylesheet save to the open page restyled (no reload):")
    print(row("Apache daemon (2 processes, hook)", apache[1]))
    print(row("reload-middleware serve", serve[1]))
    print("one browser, five tabs open for 5 s, Apache daemon:")
    print(f"  events requests {requests}, from {distinct} client(s)")


if __name__ == "__main__":
    main()
