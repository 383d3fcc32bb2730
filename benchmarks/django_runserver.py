"""The Django example, ours under Apache daemon mode against runserver and django-browser-reload.

    python benchmarks/django_runserver.py [--runs 10] [--page-end '</body></html>']

Two copies of examples/django, served at once: one by Apache in daemon mode (preloaded,
processes=2, threads=5, the hook, `SetEnv reload_middleware.live on`, the example's own
settings: debug off), the other by `manage.py runserver` (its autoreloader, threaded)
with django-browser-reload's app, middleware and URLs and DEBUG on, added in a settings
module of the copy; there the copy's wsgi.py wraps the app in ReloadMiddleware, which
turns itself off under runserver (its log line is counted). Both copies get what live
reload needs and the example leaves out: a template that ends with `</body>` and
`</html>` on lines of their own (or `--page-end`), and CommonMiddleware (see
like_a_project). A page that came without its live reload script is said so and not
timed.

For the same edits, in turn on each side (a random pause of 0 to 1 s before each save,
so that saves fall anywhere in Apache's and runserver's one-second ticks): a template
save and a view save to the first HTTP answer with the new text (requests back to back,
a new connection each), and a template save to one open tab of headless Chromium
(Debian's `chromium` and `chromium-driver`, through Selenium; one browser per side)
showing it, its DOM polled as benchmarks/live_reload.py does, nothing done in the
browser. Medians; the daemon pids before and after the template saves.
Needs what the browser tests need (apache2, the Apache test venv with Django, chromium)
and django-browser-reload in this interpreter (the `bench` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

import benchlib
from apache import DEFAULT_VENV, Apache, apache_available, free_port, prepare_run_dir
from browser import chromium, shows, tabs
from framework_examples import EXAMPLES, copy_example
from procs import get, running
from selenium.webdriver.remote.webdriver import WebDriver

TEMPLATE = "polls/templates/polls/index.html"
# (file, text at version N, the element of the page that shows N) for each kind of save.
SAVES = {
    "template": (TEMPLATE, '"template">{}<', "template"),
    "view": ("polls/views.py", 'VERSION = "{}"', "view"),
}
PAGE_END = "</body>\n</html>\n"
TEMPLATE_ANSWER_S = 0.15
PAGE_UPDATED_S = 0.5
OURS = "ours: Apache daemon"
THEIRS = "runserver + django-browser-reload"
# What the middleware says when it leaves runserver's own restarts alone.
STANDS_BACK = "Django's runserver restarts this process at each change"

# The runserver copy: a manage.py and a wsgi.py, which the example leaves out, and
# django-browser-reload's app, middleware and URLs. DEBUG on: off, its middleware
# takes itself out. Its script's URLs come from staticfiles, which runserver then serves.
MANAGE = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.browser_reload")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""
WSGI = """\
import os
from django.core.wsgi import get_wsgi_application
from reload_middleware import ReloadMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.browser_reload")
application = ReloadMiddleware(get_wsgi_application())
"""
SETTINGS = """\
from mysite.settings import *  # noqa: F403

DEBUG = True
INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.staticfiles", "django_browser_reload"]
MIDDLEWARE = [*MIDDLEWARE, "django_browser_reload.middleware.BrowserReloadMiddleware"]
STATIC_URL = "static/"
ROOT_URLCONF = "mysite.browser_reload_urls"
WSGI_APPLICATION = "mysite.wsgi.application"
"""
URLS = """\
from django.urls import include, path

from mysite.urls import urlpatterns as example

urlpatterns = [*example, path("__reload__/", include("django_browser_reload.urls"))]
"""
# The script each side adds to a page: proof that the page is live before it is timed.
SCRIPTS = {OURS: "/__reload_middleware__/live.js", THEIRS: "django-browser-reload/"}
PAUSE = threading.Event()
VERDICT = {True: "target met", False: "TARGET MISSED"}


@dataclass
class Side:
    """One served copy of the example: where it lives, how to write it, where it answers."""

    name: str
    root: Path
    port: int
    write: Callable[[str, str], object]
    # The pids that serve it, read without a request (none where it cannot tell), and
    # how many there are once every one is up.
    pids: Callable[[], set[int]] = set
    processes: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def current(self, kind: str) -> str:
        """The text the page shows for `kind` once it serves the file as saved."""
        relpath, pattern, _ = SAVES[kind]
        text = (self.root / relpath).read_text()
        found = re.search(re.escape(pattern).replace(r"\{\}", r"(\d+)"), text)
        if found is None:
            raise AssertionError(f"{self.name}: no {pattern!r} in {relpath}")
        return found[1]

    def save(self, kind: str) -> str:
        """Save the next version of `kind`'s file; the text the page will show for it."""
        relpath, pattern, _ = SAVES[kind]
        now = int(self.current(kind))
        text = (self.root / relpath).read_text()
        self.write(relpath, text.replace(pattern.format(now), pattern.format(now + 1)))
        return str(now + 1)


def like_a_project(root: Path, write: Callable[[str, str], object], end: str) -> None:
    """What live reload needs that the example leaves out, in both copies alike. Its
    template ends without `</body>` and `</html>`, before which the reloaders add their
    script: a page gets `end`, both as a real one has them by default. It has no
    middleware: a Django response is no list, and the middleware changes a body it does
    not hold in memory only when its length is declared, which CommonMiddleware (in
    every `startproject`'s settings) does."""
    write(TEMPLATE, (root / TEMPLATE).read_text() + end)
    settings = (root / "mysite" / "settings.py").read_text()
    write("mysite/settings.py",
          settings + 'MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]\n')


def page(port: int) -> str | None:
    """The page, or None while the server cannot answer (restarting)."""
    try:
        status, body = get(port, "/")
    except (OSError, http.client.HTTPException):
        return None
    return body if status == 200 else None


def shown_in(body: str, field: str) -> str | None:
    found = re.search(rf'id="{field}">([^<]*)<', body)
    return found.group(1) if found else None


def shown(port: int, field: str) -> str | None:
    """What the page shows in `field`, or None while there is no page."""
    body = page(port)
    return None if body is None else shown_in(body, field)


def until_shown(port: int, field: str, text: str, timeout: float = 20) -> None:
    """Requests back to back until the page shows `text`; a short pause only while the
    server does not answer at all, so that a restarting server gets the cores."""
    deadline = time.monotonic() + timeout
    while (now := shown(port, field)) != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"port {port}: {field} still {now!r}, not {text!r}")
        if now is None:
            PAUSE.wait(0.005)


def warm(side: Side, field: str, text: str, timeout: float = 20) -> None:
    """Until every serving process is up and has answered with `text`. Django imports
    the views on a process's first request: one that has not served yet (started again
    by Apache after the last save) shows a saved view with no restart at all, and one
    that the last save left to restart would be timed too."""
    seen: set[str] = set()

    def ready() -> bool:
        up = {str(pid) for pid in side.pids()} or seen
        return len(up) == side.processes and up <= seen

    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{side.name}: not every process shows {field} {text!r}")
        body = page(side.port)
        if body is None:
            PAUSE.wait(0.005)
        elif re.search(rf'id="{field}">{text}<', body):
            seen.add(shown_in(body, "pid") or "")


def save_to_answer(sides: list[Side], kind: str, runs: int, rng: random.Random
                   ) -> dict[str, list[float]]:
    """Seconds from each save's close() to the first answer showing it, the sides in turn
    save by save, so that a busy moment of the machine falls on both."""
    field = SAVES[kind][2]
    times: dict[str, list[float]] = {side.name: [] for side in sides}
    for _ in range(runs):
        for side in sides:
            warm(side, field, side.current(kind))
            PAUSE.wait(rng.uniform(0, 1))
            started = time.monotonic()
            new = side.save(kind)
            until_shown(side.port, field, new)
            times[side.name].append(time.monotonic() - started)
    return times


def save_to_page(sides: list[Side], drivers: dict[str, WebDriver], runs: int,
                 rng: random.Random) -> dict[str, list[float]]:
    """Seconds from each template save's close() to the open tab showing it; none for a
    side whose page came without its live reload script (it would never update)."""
    times: dict[str, list[float]] = {side.name: [] for side in sides}
    with contextlib.ExitStack() as stack:
        live = []
        for side in sides:
            driver = drivers[side.name]
            stack.enter_context(tabs(driver, side.url, 1))
            shows(driver, "template", side.current("template"), 20, f"{side.name}: the page")
            if SCRIPTS[side.name] in driver.page_source:
                live.append(side)
            else:
                print(f"{side.name}: the page came without its live reload script")
        for _ in range(runs):
            for side in live:
                PAUSE.wait(rng.uniform(0, 1))
                started = time.monotonic()
                new = side.save("template")
                shows(drivers[side.name], "template", new, 20, f"{side.name}: the new page")
                times[side.name].append(time.monotonic() - started)
    return times


@contextlib.contextmanager
def apache_side(end: str) -> Iterator[tuple[Side, Apache]]:
    site = copy_example("django")
    like_a_project(site.root, site.write, end)
    server = Apache(DEFAULT_VENV, prepare_run_dir(), script=site.script, python_path=site.root,
                    processes=2, location_config="SetEnv reload_middleware.live on")
    server.start()
    try:
        yield Side(OURS, site.root, server.port, site.write, server.daemon_pids,
                   server.processes), server
    finally:
        server.stop()
        shutil.rmtree(site.root, ignore_errors=True)
        shutil.rmtree(server.run_dir, ignore_errors=True)


@contextlib.contextmanager
def runserver_side(end: str) -> Iterator[tuple[Side, list[str]]]:
    """runserver on a copy; yields the side and its output lines as they come."""
    root = Path(tempfile.mkdtemp(prefix="bench-runserver-"))
    shutil.copytree(EXAMPLES / "django", root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))

    def write(relpath: str, text: str) -> None:
        (root / relpath).write_text(text)

    like_a_project(root, write, end)
    for relpath, text in (("manage.py", MANAGE), ("mysite/wsgi.py", WSGI),
                          ("mysite/browser_reload.py", SETTINGS),
                          ("mysite/browser_reload_urls.py", URLS)):
        write(relpath, text)
    port = free_port()
    lines: list[str] = []
    try:
        with running([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], root, port,
                     live=lines):
            yield Side(THEIRS, root, port, write), lines
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cell(times: list[float]) -> str:
    if not times:
        return "no script in the page"
    return f"{statistics.median(times):.3f} s ({min(times):.3f} - {max(times):.3f})"


def median(times: list[float]) -> float:
    """The median, or infinity for a page that never updates (no script in it)."""
    return statistics.median(times) if times else math.inf


def versions() -> str:
    """Django on each side, django-browser-reload, mod_wsgi: the line after the first."""
    def apache_venv(name: str) -> str:
        code = f"import importlib.metadata as m; print(m.version({name!r}))"
        out = subprocess.run([str(DEFAULT_VENV / "bin" / "python"), "-c", code],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    return (f"Django {apache_venv('django')} under Apache (mod_wsgi {apache_venv('mod_wsgi')}), "
            f"Django {importlib.metadata.version('django')} under runserver, "
            f"django-browser-reload {importlib.metadata.version('django-browser-reload')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--page-end", default=PAGE_END,
                        help="what the template gets at its end (default: %(default)r)")
    args = parser.parse_args()
    reason = apache_available(DEFAULT_VENV)
    if not reason and not shutil.which("chromedriver"):
        reason = "chromium-driver is not installed"
    if not reason and importlib.util.find_spec("django_browser_reload") is None:
        reason = f"no django-browser-reload for {sys.executable} (pip install -e '.[bench]')"
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    print(f"Figure 10: the Django example, ours against runserver ({benchlib.machine()})")
    print(versions())
    rng = random.Random(7)
    drivers: dict[str, WebDriver] = {}
    with apache_side(args.page_end) as (ours, server), \
            runserver_side(args.page_end) as (theirs, output):
        sides = [ours, theirs]
        for side in sides:
            warm(side, "template", side.current("template"))
        before = server.daemon_pids(), shown(theirs.port, "pid")
        template = save_to_answer(sides, "template", args.runs, rng)
        after = server.daemon_pids(), shown(theirs.port, "pid")
        view = save_to_answer(sides, "view", args.runs, rng)
        for side in sides:  # the view saves may have left a process to restart
            warm(side, "template", side.current("template"))
        try:
            for side in sides:
                drivers[side.name] = chromium()
            browser = drivers[OURS].capabilities.get("browserVersion", "?")
            live = save_to_page(sides, drivers, args.runs, rng)
        finally:
            for driver in drivers.values():
                driver.quit()
        said = sum(STANDS_BACK in line for line in output)
    if not said:
        raise AssertionError(f"the middleware said nothing under runserver:\n{''.join(output)}")

    kept = before[0] == after[0] and len(before[0]) == 2
    template_met = median(template[OURS]) <= TEMPLATE_ANSWER_S and kept
    live_met = median(live[OURS]) <= min(PAGE_UPDATED_S, median(live[THEIRS]))
    rows = [
        ["", OURS, THEIRS, "target", "verdict"],
        ["template save -> answer", cell(template[OURS]), cell(template[THEIRS]),
         f"<= {TEMPLATE_ANSWER_S} s, no restart", VERDICT[template_met]],
        ["view save -> answer", cell(view[OURS]), cell(view[THEIRS]), "-", "-"],
        ["template save -> page updated", cell(live[OURS]), cell(live[THEIRS]),
         f"<= {PAGE_UPDATED_S} s and <= theirs", VERDICT[live_met]],
    ]
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(len(rows[0]))]
    print(f"\nmedian (min - max) of {args.runs} saves each, Chromium {browser} headless:")
    for row in rows:
        print("".join(f"{text:<{width}}" for text, width in zip(row, widths, strict=True)))
    print(f"\ndaemon pids before and after the template saves: {sorted(before[0])}, "
          f"{sorted(after[0])}; runserver's: {before[1]}, {after[1]}")
    print(f"the middleware under runserver: off, as its log line said {said} times "
          "(once in each process runserver started)")
    benchlib.verdict(template_met, f"template save to answer at most {TEMPLATE_ANSWER_S} s, "
                     "daemon pids unchanged",
                     f"median {median(template[OURS]):.3f} s, pids "
                     f"{'unchanged' if kept else 'CHANGED'}")
    benchlib.verdict(live_met, f"template save to page updated at most {PAGE_UPDATED_S} s, "
                     "and no slower than django-browser-reload",
                     f"ours {cell(live[OURS])}, django-browser-reload {cell(live[THEIRS])}")


if __name__ == "__main__":
    main()
