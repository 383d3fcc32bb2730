"""Live reload seen in a real browser (headless Chromium): the open page updates itself.

One browser serves every test of this file; each test opens its tabs and closes them.
"""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from apache import Apache, free_port, wait_for
from browser import PAGE, STYLE, chromium, clients, shows, tabs, text_of, write_app
from procs import gunicorn, running, uwsgi
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from support import Site, holds, require

pytestmark = pytest.mark.integration

# (base URL, app directory) of a started server
Served = tuple[str, Path]
Server = Callable[..., AbstractContextManager[Served]]


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    """One headless Chromium for the whole file."""
    require(None if shutil.which("chromedriver") else "chromium-driver is not installed")
    browser = chromium()
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def on_apache(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> Callable[..., AbstractContextManager[Served]]:
    """on_apache(count=False, **apache options): the live app served by Apache."""

    @contextmanager
    def serve(count: bool = False, **options: object) -> Iterator[Served]:
        app = site()
        write_app(app.root, app.write, count=count)
        server = apache(app, **options)
        yield server.url, app.root
        # A change answers the events request the closed tabs left waiting: Apache's stop
        # would otherwise hold for it (5 s here, then a kill).
        (app.root / "webapp" / "views.py").touch()

    return serve


@pytest.fixture
def on_process(project: Path) -> Callable[..., AbstractContextManager[Served]]:
    """on_process(kind): the live app under gunicorn sync (2 workers), uWSGI (a master and a
    worker, --lazy-apps) or `serve`."""

    def write(relpath: str, text: str) -> None:
        path = project / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    @contextmanager
    def serve(kind: str) -> Iterator[Served]:
        write_app(project, write, count=False)
        port = free_port()
        argv = {
            "gunicorn-sync": lambda: gunicorn(port, "sync"),
            # One worker, --lazy-apps: it restarts alone (the new page about 1 s after the
            # save here). Two workers restart one after the other, each after its own
            # import preflight; a reload of the whole instance adds uWSGI's own 1.1 s.
            "uwsgi": lambda: one_worker(uwsgi(port, lazy=True)),
            "serve": lambda: [sys.executable, "-m", "reload_middleware", "serve", "app.py",
                              "--port", str(port)],
        }[kind]()
        with running(argv, project, port):
            yield f"http://127.0.0.1:{port}", project

    return serve


def one_worker(argv: list[str]) -> list[str]:
    at = argv.index("--processes")
    return [*argv[:at], "--processes", "1", *argv[at + 2:]]


def stays_loaded(driver: WebDriver, seconds: float) -> None:
    """Assert the current tab is not reloaded for `seconds` (nothing changes meanwhile)."""
    loaded = driver.execute_script("return performance.timeOrigin")
    holds(lambda: driver.execute_script("return performance.timeOrigin") == loaded, seconds,
          "the page left alone while nothing changes")


def edit(root: Path, relpath: str, text: str) -> None:
    """Save a file as an editor does: the whole new text at once."""
    (root / relpath).write_text(text)


SERVERS = ["apache-daemon", "apache-embedded", "gunicorn-sync", "uwsgi", "serve"]


@pytest.mark.parametrize("kind", SERVERS, ids=SERVERS)
def test_open_page_shows_an_edit_by_itself(
    kind: str, driver: WebDriver, on_apache: Server, on_process: Server
) -> None:
    """With a page open and nothing done in the browser, a module edit and then a
    template edit each show in the page within 2 s."""
    started = (on_apache(processes=2) if kind == "apache-daemon"
               else on_apache(mode="embedded") if kind == "apache-embedded"
               else on_process(kind))
    with started as (url, root), tabs(driver, url + "/", 1):
        shows(driver, "version", "1", 5, "the page")
        edit(root, "webapp/views.py", "VERSION = '2'\n")
        shows(driver, "version", "2", 2, "the module edit in the open page")
        # Reloaded once, not again and again; and uWSGI, which holds back a worker that
        # exits within a moment of its start by 2 s, gets that moment.
        stays_loaded(driver, 2)
        edit(root, "templates/page.html", PAGE.format("B"))
        shows(driver, "template", "B", 2, "the template edit in the open page")


@pytest.mark.parametrize("page", ["/", "/no-worker"], ids=["shared-worker", "elected-tab"])
def test_tabs_share_one_events_connection(
    page: str, driver: WebDriver, on_apache: Server
) -> None:
    """Two tabs of one browser both reload after an edit, and until then the server saw
    the events requests of one client only (Apache daemon mode, 2 processes): through a
    SharedWorker, or where workers are forbidden, through one tab elected by a lock."""
    with on_apache(count=True, processes=2) as (url, root), tabs(driver, url + page, 2) as open_:
        wait_for(lambda: len(clients(root)) >= 1, 5, "the first events request")
        holds(lambda: len(set(clients(root))) == 1, 1, "one client asking for both tabs")
        edit(root, "webapp/views.py", "VERSION = '2'\n")
        for handle in open_:
            driver.switch_to.window(handle)
            shows(driver, "version", "2", 5, f"tab {handle} reloaded")


def raw(url: str, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request: status, headers (lower-case names), body bytes."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        conn.close()


def test_other_responses_pass_byte_for_byte(on_process: Server) -> None:
    """JSON and a gzip-encoded page come out exactly as the app made them; the plain
    page gets the one script tag and its length; the reserved path takes GET only and
    sends no CORS header."""
    with on_process("serve") as (url, _):
        page = PAGE.format("A").replace("VERSION", "1").encode()
        assert raw(url, "/json")[2] == json.dumps({"version": "1"}).encode()
        status, headers, body = raw(url, "/gzip")
        assert (status, body) == (200, gzip.compress(page, mtime=0))
        assert headers["content-length"] == str(len(body))
        status, headers, body = raw(url, "/")
        assert body.count(b"<script src=") == 1 and body.endswith(b"</script></body></html>")
        assert headers["content-length"] == str(len(body))
        status, headers, _ = raw(url, "/__reload_middleware__/events", "POST")
        assert status == 405
        status, headers, _ = raw(url, "/__reload_middleware__/events?v=0")
        assert status == 200 and not any(h.startswith("access-control") for h in headers)


def test_page_with_strict_content_security_policy_reloads(
    driver: WebDriver, on_process: Server
) -> None:
    """`script-src 'self'` lets the external script and its worker run: the page updates."""
    with on_process("serve") as (url, root), tabs(driver, url + "/csp", 1):
        shows(driver, "version", "1", 5, "the page")
        edit(root, "webapp/views.py", "VERSION = '2'\n")
        shows(driver, "version", "2", 2, "the edit in the page under the policy")


def test_five_tabs_leave_threads_for_pages(driver: WebDriver, on_apache: Server) -> None:
    """With 4 threads per process and five tabs open, a plain GET is answered within
    100 ms, ten times in a row."""
    with on_apache(processes=1, threads=4) as (url, _), tabs(driver, url + "/", 5):
        wait_for(lambda: text_of(driver, "version") == "1", 5, "the fifth tab")
        for _ in range(10):
            start = time.monotonic()
            status, _, body = raw(url, "/plain")
            elapsed = time.monotonic() - start
            assert (status, body) == (200, b"ok")
            assert elapsed < 0.1, f"a plain GET took {elapsed * 1000:.0f} ms"


def test_a_tab_with_unsaved_input_asks_before_reloading(
    driver: WebDriver, on_process: Server
) -> None:
    """Typed text is never thrown away: the tab shows a bar, and reloads when it is clicked."""
    with on_process("serve") as (url, root), tabs(driver, url + "/", 1):
        shows(driver, "version", "1", 5, "the page")
        driver.find_element(By.ID, "field").send_keys("typed")
        edit(root, "webapp/views.py", "VERSION = '2'\n")
        wait_for(lambda: text_of(driver, "reload-middleware-live") is not None, 5, "the bar")
        assert text_of(driver, "version") == "1"
        assert driver.find_element(By.ID, "field").get_attribute("value") == "typed"
        driver.find_element(By.ID, "reload-middleware-live").click()
        shows(driver, "version", "2", 5, "the new code after the click")


def test_a_broken_edit_shows_its_error_and_the_fix_shows_by_itself(
    driver: WebDriver, on_process: Server
) -> None:
    """Under `serve` (debug pages on): a save that does not compile puts the error page in
    the open tab, and it stays there, not reloading over and over, until the fix replaces
    it with the new code."""
    with on_process("serve") as (url, root), tabs(driver, url + "/", 1):
        shows(driver, "version", "1", 5, "the page")
        edit(root, "webapp/views.py", "VERSION = (\n")
        wait_for(lambda: "could not be loaded" in driver.page_source, 5, "the error page")
        stays_loaded(driver, 1)
        edit(root, "webapp/views.py", "VERSION = '3'\n")
        shows(driver, "version", "3", 2, "the fix in the page")


def color_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.execute_script(
        "return getComputedStyle(document.getElementById(arguments[0])).color", element_id))


@pytest.mark.parametrize(("kind", "page"), [
    ("apache-daemon", "/"), ("serve", "/"), ("serve", "/no-worker"),
], ids=["apache-daemon", "serve", "serve-elected-tab"])
def test_a_stylesheet_save_is_swapped_in_the_open_page_keeping_its_state(
    kind: str, page: str, driver: WebDriver, on_apache: Server, on_process: Server
) -> None:
    """A saved stylesheet shows in the open page without a reload, twice in a row: the
    scroll position, the typed input and the page's own state are kept, no bar is
    shown (the input is unsaved), and one stylesheet link is left. A module save then
    reloads the page as ever (through the bar, as the input is unsaved). The same where
    no SharedWorker may run and the tab elected to ask tells itself."""
    started = on_apache(processes=2) if kind == "apache-daemon" else on_process(kind)
    with started as (url, root), tabs(driver, url + page, 1):
        shows(driver, "version", "1", 5, "the page")
        driver.find_element(By.ID, "field").send_keys("typed")
        driver.execute_script("window.kept = 'yes'; window.scrollTo(0, 700)")
        loaded = driver.execute_script("return performance.timeOrigin")
        for color in ("rgb(200, 0, 0)", "rgb(0, 0, 200)"):
            edit(root, "static/site.css", STYLE.format(color))
            wait_for(lambda c=color: color_of(driver, "version") == c, 2,  # type: ignore[misc]
                     "the saved stylesheet in the open page")
            wait_for(lambda: driver.execute_script(
                "return document.querySelectorAll('link[rel=stylesheet]').length") == 1, 2,
                "the old stylesheet link dropped")
        assert driver.execute_script("return performance.timeOrigin") == loaded
        assert driver.execute_script("return [window.kept, window.scrollY]") == ["yes", 700]
        assert driver.find_element(By.ID, "field").get_attribute("value") == "typed"
        assert text_of(driver, "reload-middleware-live") is None
        edit(root, "webapp/views.py", "VERSION = '2'\n")
        wait_for(lambda: text_of(driver, "reload-middleware-live") is not None, 5, "the bar")
