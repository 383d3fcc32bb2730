"""Live reload's server side: the code version, the events endpoint, its limits."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from helpers import MakeProject, Response, Until, call
from reload_middleware.live import browser
from reload_middleware.watching.file_state import stat_of

HTML_SCRIPT = """\
from {package} import views
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    body = ("<html><body>" + views.TEXT + "</body></html>").encode()
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]


application = ReloadMiddleware(app, **{options!r})
"""
EVENTS = "/__reload_middleware__/events"


@pytest.mark.parametrize(("states", "expected"), [
    ({}, 0),
    ({"/a": (5_000, 1, 1, 9_000, ())}, 9),
    ({"/a": (12_000, 1, 1, 9_000, ()), "/b": (3_000, 1, 1, 3_000, ())}, 12),
    ({"/a": None, "/b": (-2, -2, -2, -2, ())}, 0),
], ids=["none", "ctime", "newest-mtime", "absent-and-stale"])  # fmt: skip
def test_newest(states: dict[str, Any], expected: int) -> None:
    """The version is the newest mtime or ctime of the loaded files, in microseconds."""
    assert browser.newest(states) == expected


def test_changed_at_a_deleted_file_is_its_directory_s_change(tmp_path: Path) -> None:
    """A deleted file has no times; its directory's, the same on every ask, stand in."""
    gone = tmp_path / "gone.py"
    gone.write_text("")
    before = stat_of(str(gone))
    assert browser.changed_at(str(gone), before) == 0  # unchanged: confirm would refuse it
    gone.unlink()
    assert browser.changed_at(str(gone), before) == browser.newest({"d": stat_of(str(tmp_path))})


@pytest.mark.parametrize(("modules", "threads"), [
    ({}, None),
    ({"mod_wsgi": types.SimpleNamespace(threads_per_process=15)}, 15),
    ({"uwsgi": types.SimpleNamespace(opt={"threads": b"4"})}, 4),
    ({"uwsgi": types.SimpleNamespace(opt={"master": True})}, None),
], ids=["unknown", "mod_wsgi", "uwsgi", "uwsgi-no-threads"])
def test_server_threads(modules: dict[str, object], threads: int | None) -> None:
    """The threads a process has, as mod_wsgi or uWSGI tell; half may wait for events."""
    assert browser.server_threads(modules) == threads


def events(app: Any, version: int, *, threaded: bool) -> dict[str, int]:
    response = call(app, path=EVENTS, extra={"QUERY_STRING": f"v={version}&c=t"},
                    environ={"wsgi.multithread": threaded})
    assert response.status.startswith("200"), response.status
    answer: dict[str, int] = json.loads(response.body)
    return answer


def version_in(response: Response) -> int:
    found = re.search(rb'<script src="/__reload_middleware__/live.js\?v=(\d+)"></script></body>',
                      response.body)
    assert found, response.body
    return int(found.group(1))


def test_pages_get_the_tag_with_the_code_version(project: MakeProject) -> None:
    """With live on, a page gets the script tag carrying the version of its code; off, none."""
    app = project(HTML_SCRIPT, live=True).application
    page = call(app)
    version = version_in(page)
    assert version == browser.newest(app._latch.baselines)
    assert call(app, path="/__reload_middleware__/live.js").body == browser.script()
    assert b"script" not in call(project(HTML_SCRIPT).application).body


def test_a_short_poll_reports_a_change_without_acting_on_it(
    project: MakeProject, until: Until
) -> None:
    """Single-threaded: the answer comes at once; after a save it is a newer version, and
    the events request restarts nothing: the page's own reload does."""
    proj = project(HTML_SCRIPT, live=True)
    app = proj.application
    version = version_in(call(app))
    wait = browser.SHORT_POLL_MS
    assert events(app, version, threaded=False) == {"version": version, "wait": wait}
    proj.save_views("TEXT = 'new'\n")
    until(lambda: events(app, version, threaded=False)["version"] > version)
    assert app.pending, "the events request acted on the change"
    assert b"new" in call(app).body and not app.pending


def test_a_waiting_request_ends_when_the_change_comes(project: MakeProject, until: Until) -> None:
    """Threaded: the request waits, and answers as soon as the watcher has the change."""
    proj = project(HTML_SCRIPT, live=True)
    app = proj.application
    version = version_in(call(app))
    answers: list[dict[str, int]] = []
    waiting = threading.Thread(target=lambda: answers.append(events(app, version, threaded=True)))
    waiting.start()
    until(lambda: app._beacon is not None and app._beacon._waiting == 1)
    busy = events(app, version, threaded=True)  # beyond the cap of 1: come back later
    assert busy["version"] == version and busy["wait"] >= browser.BUSY_MS
    proj.save_views("TEXT = 'new'\n")
    waiting.join(5)
    assert answers and answers[0]["version"] > version


def test_a_restart_releases_waiting_requests(
    project: MakeProject, until: Until, kills: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a restart is decided, a waiting request answers at once (a server waits for
    open requests before the process exits), and later ones do not wait."""
    monkeypatch.setattr(browser, "LIFE", 30.0)
    proj = project(HTML_SCRIPT, live=True, preflight="off")
    app = proj.application
    daemon = {"mod_wsgi.process_group": "site"}  # mod_wsgi daemon mode, no hook: a signal
    call(app, environ=dict(daemon))  # the first request starts the watcher
    newest = 10**18  # a version no change reaches: only the release can end the wait
    answers: list[dict[str, int]] = []
    waiting = threading.Thread(target=lambda: answers.append(events(app, newest, threaded=True)))
    waiting.start()
    until(lambda: app._beacon is not None and app._beacon._waiting == 1)
    proj.save_views("TEXT = 'new'\n")
    until(lambda: app.pending)
    call(app, environ=dict(daemon))  # the page's reload: the restart is decided
    waiting.join(5)
    assert answers and answers[0]["wait"] == browser.AFTER_RESTART_MS
    assert kills == [(os.getpid(), 2)]
    assert events(app, newest, threaded=True)["wait"] == browser.AFTER_RESTART_MS


def test_the_reserved_path_answers_get_only(project: MakeProject) -> None:
    """Other methods get 405 naming GET; unknown names 404; no CORS header anywhere."""
    app = project(HTML_SCRIPT, live=True).application
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "HEAD"):
        response = call(app, method, EVENTS)
        assert response.status.startswith("405") and response.headers["Allow"] == "GET"
    assert call(app, path="/__reload_middleware__/other").status.startswith("404")
    response = call(app, path=EVENTS, extra={"QUERY_STRING": "v=x"})
    assert not any(h.lower().startswith("access-control") for h in response.headers)


def test_a_mod_wsgi_shutdown_releases_waiting_requests(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mod_wsgi stopping the process for its own reasons answers the waiting requests."""
    told: list[Any] = []
    monkeypatch.setitem(sys.modules, "mod_wsgi",
                        types.SimpleNamespace(subscribe_shutdown=told.append))
    app = project(HTML_SCRIPT, live=True).application
    assert len(told) == 1
    told[0]("process_stopping", shutdown_reason="shutdown_signal")
    answer = events(app, 10**18, threaded=True)
    assert answer["wait"] == browser.AFTER_RESTART_MS


def test_live_off_builds_no_beacon_and_asks_mod_wsgi_nothing(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With live reload off there is no beacon, and mod_wsgi is not asked to tell of a
    shutdown; pages go out as the app made them."""
    told: list[Any] = []
    monkeypatch.setitem(sys.modules, "mod_wsgi",
                        types.SimpleNamespace(subscribe_shutdown=told.append))
    app = project(HTML_SCRIPT).application
    response = call(app)  # the first request reads the environ: still off
    assert b"live.js" not in response.body
    assert app._beacon is None and told == []


def test_live_by_setenv_makes_the_beacon_at_the_first_request(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`SetEnv reload_middleware.live on`: the beacon is made, and mod_wsgi asked, by
    the first request, which reads it."""
    told: list[Any] = []
    monkeypatch.setitem(sys.modules, "mod_wsgi",
                        types.SimpleNamespace(subscribe_shutdown=told.append))
    app = project(HTML_SCRIPT).application
    assert app._beacon is None and told == []
    call(app, extra={"reload_middleware.live": "on"})
    assert app._beacon is not None and len(told) == 1


def test_live_from_the_environ_key(project: MakeProject) -> None:
    """`SetEnv reload_middleware.live on` turns it on from the first request."""
    app = project(HTML_SCRIPT).application
    response = call(app, extra={"reload_middleware.live": "on"})
    assert version_in(response) > 0
    assert call(app, path=EVENTS, extra={"QUERY_STRING": "v=0"}).status.startswith("200")
