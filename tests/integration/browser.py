"""Live reload in a real browser: Debian's Chromium, headless, driven by Selenium.

Selenium is pointed at the system chromedriver and Chromium, so it never looks for or
downloads a browser (Selenium Manager is not run).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from apache import wait_for
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# The test app: pages from a template read on every request (templates/page.html, in a
# watch path), a JSON and a gzip-encoded page that must pass untouched, a page with a
# strict Content-Security-Policy, one that forbids workers, plain text, and the page's
# stylesheet (static/site.css, in the `static` option's directory). `events.log`
# gets the query of every events request as it starts, from a wrapper outside the
# middleware.
APP = """\
import gzip, json, os
from webapp import views
from reload_middleware import ReloadMiddleware

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = os.path.join(HERE, "events.log")


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    with open(os.path.join(HERE, "templates", "page.html")) as template:
        page = template.read().replace("VERSION", views.VERSION).encode()
    kind, headers = "text/html; charset=utf-8", []
    if path == "/json":
        page, kind = json.dumps({"version": views.VERSION}).encode(), "application/json"
    elif path == "/gzip":
        page, headers = gzip.compress(page, mtime=0), [("Content-Encoding", "gzip")]
    elif path == "/csp":
        headers = [("Content-Security-Policy", "default-src 'self'; script-src 'self'")]
    elif path == "/no-worker":  # no SharedWorker allowed: the tabs elect one to ask
        headers = [("Content-Security-Policy", "worker-src 'none'")]
    elif path == "/plain":
        page, kind = b"ok", "text/plain"
    elif path == "/static/site.css":
        with open(os.path.join(HERE, "static", "site.css"), "rb") as sheet:
            page, kind = sheet.read(), "text/css"
    if kind != "text/html; charset=utf-8" or headers:
        headers.append(("Content-Length", str(len(page))))
    start_response("200 OK", [("Content-Type", kind), *headers])  # pages: no length given
    return [page]


class Counting:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").endswith("/events"):
            with open(LOG, "a") as log:
                log.write(environ.get("QUERY_STRING", "") + "\\n")
        return self.app(environ, start_response)


application = ReloadMiddleware(app, live=True, settle=0.02, watch=["templates"],
                               static=["static"])
if os.path.exists(LOG):
    application = Counting(application)
"""
PAGE = ("<!doctype html><html><head><link rel=stylesheet href=/static/site.css></head>"
        "<body><p id=version>VERSION</p><p id=template>{}</p>"
        "<form><input id=field name=field value=''></form></body></html>")
STYLE = "body {{ min-height: 5000px }} #version {{ color: {} }}"  # a page that scrolls


def write_app(root: Path, write: Callable[[str, str], object], *, count: bool) -> None:
    """The app, views.py at VERSION 1 and its template, written with `write(relpath, text)`."""
    write("webapp/__init__.py", "")
    write("webapp/views.py", "VERSION = '1'\n")
    write("templates/page.html", PAGE.format("A"))
    write("static/site.css", STYLE.format("rgb(0, 0, 0)"))
    write("app.wsgi", APP)
    write("app.py", APP)
    if count:
        log = root / "events.log"
        log.write_text("")
        log.chmod(0o666)  # the server's user writes it


def clients(root: Path) -> list[str]:
    """The client names of the events requests started so far, in order."""
    lines = (root / "events.log").read_text().splitlines()
    return [part[2:] for line in lines for part in line.split("&") if part.startswith("c=")]


def chromium() -> WebDriver:
    """A headless Chromium driven through the system chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    os.environ.setdefault("SE_OFFLINE", "true")  # never download a driver or browser
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def text_of(driver: WebDriver, element_id: str) -> str | None:
    """The text of an element of the current tab, or None while it is (re)loading."""
    try:
        return str(driver.find_element(By.ID, element_id).text)
    except WebDriverException:
        return None


def shows(driver: WebDriver, element_id: str, text: str, seconds: float, what: str) -> float:
    """Wait until the current tab shows `text` in `element_id`; the seconds it took."""
    start = time.monotonic()
    wait_for(lambda: text_of(driver, element_id) == text, seconds, what)
    return time.monotonic() - start


@contextmanager
def tabs(driver: WebDriver, url: str, count: int) -> Iterator[list[str]]:
    """`count` tabs open at `url` (the first is the driver's window); closed after."""
    handles: list[str] = []
    first = driver.current_window_handle
    try:
        for n in range(count):
            if n:
                driver.switch_to.new_window("tab")
            driver.get(url)
            handles.append(driver.current_window_handle)
        yield handles
    finally:
        for handle in handles[1:]:
            driver.switch_to.window(handle)
            driver.close()
        driver.switch_to.window(first)
        driver.get("about:blank")
