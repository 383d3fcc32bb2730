"""Live reload's events endpoint under real Apache daemon mode, asked as an open page's
script asks it (no browser): the waiting request hears of a save, and the page it then
reloads is the new code with a newer version in its tag (README, "Live reload")."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import pytest
from apache import Apache, older_than, wait_for
from support import Site

from reload_middleware import tracking

pytestmark = pytest.mark.integration

PAGE = """\
import os
from webapp import views
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    body = (f"<!doctype html><html><body><p id=v>{views.VERSION}</p>"
            f"<p id=pid>{os.getpid()}</p></body></html>")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body.encode()]

application = ReloadMiddleware(app, settle=0.05, live=True)
"""

TAG = re.compile(r'<script src="([^"]*)live\.js\?v=(\d+)"')


def page(server: Apache) -> tuple[str, str, int]:
    """(the page's VERSION, the events URL its script asks, the version in its tag)."""
    response = server.get("/")
    assert response.status == 200, response.text
    shown = re.search(r"<p id=v>(.*?)</p>", response.text)
    tag = TAG.search(response.text)
    assert shown and tag, response.text
    base = tag.group(1)
    assert base.startswith("/__reload_middleware__/"), base
    return shown.group(1), base + "events", int(tag.group(2))


def warm_pages(server: Apache) -> None:
    """Pages until both daemon processes have served one."""
    pids: set[str] = set()

    def both() -> bool:
        response = server.get("/")
        assert response.status == 200, response.text
        pids.update(re.findall(r"<p id=pid>(\d+)</p>", response.text))
        return len(pids) == 2

    wait_for(both, 20, "2 daemon processes answering")


def test_a_waiting_events_request_hears_of_a_save(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    app = site()
    app.write("app.wsgi", PAGE)
    server = apache(app)
    wait_for(lambda: server.get("/").status == 200, 20, "the page served")
    # Past a young daemon's first hook call, which leaves the decision to the request
    # and answers it with a 307 (docs/how-it-works.md): the page must come from a restart.
    warm_pages(server)
    older_than(server, tracking.YOUNG_NS / 1e9)
    shown, events, version = page(server)
    assert shown == "1"

    answers: list[dict[str, int]] = []
    asking = threading.Thread(
        target=lambda: answers.append(server.get(f"{events}?v={version}&c=1").json()))
    asking.start()
    # The request waits while nothing is newer than the page.
    assert not answers
    app.set_version("2")
    asking.join(30)
    assert answers, "the events request was never answered"
    assert answers[0]["version"] > version, answers

    # The page the script then reloads is the new code, tagged with a newer version.
    def new_page() -> bool:
        return page(server)[0] == "2"

    wait_for(new_page, 20, "the new page")
    shown, _, reloaded = page(server)
    assert reloaded > version
    # And an events request from the new page waits again instead of answering at once.
    quiet = server.get(f"{events}?v={reloaded}&c=1", timeout=40).json()
    assert quiet["version"] <= reloaded, quiet
