"""Live reload's server side: the code version, the events endpoint, its limits."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import types
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from helpers import HTML_SCRIPT, MakeProject, Response, Until, call
from reload_middleware.live import browser, tag
from reload_middleware.watching.file_state import stat_of

EVENTS = "/__reload_middleware__/events"
# A page whose body, headers and nonce the request chooses (test.body: @ stands for
# views.TEXT; test.headers, test.nonce).
POLICY_SCRIPT = """\
from {package} import views
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    body = environ.get("test.body", "<html><body>@</body></html>").replace("@", views.TEXT)
    body = body.encode()
    if "test.nonce" in environ:
        environ["reload_middleware.csp_nonce"] = environ["test.nonce"]
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body))),
                              *environ.get("test.headers", [])])
    return [body]


application = ReloadMiddleware(app, **{options!r})
"""


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


@pytest.mark.parametrize(("mount", "script_name", "path_info", "expected"), [
    ("", "", "/", "/__reload_middleware__/"),
    ("/", "/", "/", "/__reload_middleware__/"),
    ("/app", "/app", "/page", "/app/__reload_middleware__/"),
    ("/app/", "/app/", "/page", "/app/__reload_middleware__/"),
    ("/a/b", "/a/b", "/", "/a/b/__reload_middleware__/"),
    ("/my app", "/my app", "/", "/my%20app/__reload_middleware__/"),
    ("/caf\xe9", "/caf\xe9", "/", "/caf%E9/__reload_middleware__/"),
    ('/"><img>', '/"><img>', "/", "/%22%3E%3Cimg%3E/__reload_middleware__/"),
    ("/\\evil.example", "/\\evil.example", "/", "/%5Cevil.example/__reload_middleware__/"),
    ("/\t/evil.example", "/\t/evil.example", "/", "/%09/evil.example/__reload_middleware__/"),
    ("//evil.example", "//evil.example", "/page", "./__reload_middleware__/"),
    ("//evil.example", "//evil.example", "/a/page", "../__reload_middleware__/"),
    ("//evil.example", "//evil.example", "/a/b/", "../../__reload_middleware__/"),
    ("//evil.example", "//evil.example", "", "./evil.example/__reload_middleware__/"),
    ("https://evil.example", "https://evil.example", "/", "./__reload_middleware__/"),
    ("javascript:x", "javascript:x", "", "./javascript:x/__reload_middleware__/"),
    ("/a/../b", "/a/../b", "/", "./__reload_middleware__/"),
    ("/a//b", "/a//b", "/p", "./__reload_middleware__/"),
    ("/.", "/.", "/", "./__reload_middleware__/"),
    (None, "/x", "/", "./__reload_middleware__/"),
    (None, "/x", "/a/b", "../__reload_middleware__/"),
    (None, "/x", "", "./x/__reload_middleware__/"),
    (None, "", "", "./__reload_middleware__/"),
], ids=["root", "root-slash", "mounted", "mounted-slash", "two-segments", "space", "latin1",
        "quote", "backslash", "tab", "protocol-relative", "protocol-relative-deeper",
        "protocol-relative-dir", "protocol-relative-at-mount", "scheme", "javascript-at-mount",
        "dot-dot", "empty-segment", "dot", "header-mount", "header-mount-deeper",
        "header-mount-itself", "nothing"])  # fmt: skip
def test_script_base_is_of_the_page_s_own_origin(
    mount: str | None, script_name: str, path_info: str, expected: str
) -> None:
    """Root-relative below a plain mount the server set; relative to the page otherwise,
    pointing at the mount's reserved path; never another origin."""
    base = tag.script_base(mount, script_name, path_info)
    assert base == expected
    assert not base.startswith(("//", "\\")) and ":" not in base.partition("/")[0]
    path = tag.url_path(script_name + path_info)
    page = "http://host" + ("" if path.startswith("/") else "/") + path
    resolved = urlsplit(urljoin(page, base + "live.js"))
    assert (resolved.scheme, resolved.netloc) == ("http", "host")


def tag_of(response: Response) -> str:
    """The live script tag of a page (there must be exactly one)."""
    found = re.findall(rb"<script src=[^>]*live\.js[^>]*></script>", response.body)
    assert len(found) == 1, response.body
    return str(found[0].decode())


@pytest.mark.parametrize("after", [
    "<!-- the old footer: </body> -->",
    "<script>var s = '</body>';</script>",
    "<style>p::after { content: '</body>' }</style>",
], ids=["comment", "script-string", "style"])
def test_the_tag_goes_before_the_closing_body_that_is_markup(
    project: MakeProject, after: str
) -> None:
    """A `</body>` after the page's own, in a comment, a script's string or a style,
    does not get the tag: the page's own `</body>` does."""
    app = project(POLICY_SCRIPT, live=True).application
    page = call(app, environ={"test.body": "<html><body>@</body>" + after + "</html>"})
    assert page.body.endswith(f"{tag_of(page)}</body>{after}</html>".encode())


@pytest.mark.parametrize(("script_name", "header"), [
    ("//evil.example", True), ("//evil.example", False), ("/x", True),
], ids=["header", "server-set", "header-plain"])
def test_a_mount_from_a_header_or_not_plain_gives_a_relative_url(
    project: MakeProject, script_name: str, header: bool
) -> None:
    """gunicorn's `SCRIPT_NAME: //evil.example` header (or any mount that is not a plain
    path): the tag's URL is relative to the page, never `//evil.example/...`."""
    app = project(POLICY_SCRIPT, live=True).application
    extra = {"SCRIPT_NAME": script_name, **({"HTTP_SCRIPT_NAME": script_name} if header else {})}
    page = call(app, path="/a/page", extra=extra)
    assert tag_of(page).startswith('<script src="../__reload_middleware__/live.js?v=')
    assert b"evil" not in page.body


@pytest.mark.parametrize(("policy", "nonce"), [
    ("script-src 'nonce-r4nd0m'", "r4nd0m"),
    ("default-src 'self'; script-src 'strict-dynamic' 'nonce-r4nd0m'", "r4nd0m"),
    ("script-src 'self'", None),
], ids=["nonce", "strict-dynamic", "self"])
def test_the_tag_carries_the_policy_s_nonce(
    project: MakeProject, policy: str, nonce: str | None
) -> None:
    """A nonce the page's Content-Security-Policy names goes on the tag."""
    app = project(POLICY_SCRIPT, live=True).application
    page = call(app, environ={"test.headers": [("Content-Security-Policy", policy)]})
    assert tag_of(page).endswith(f' nonce="{nonce}"></script>' if nonce else '"></script>')
    assert page.headers["Content-Length"] == str(len(page.body))


def test_a_framework_hands_its_nonce_over_in_the_environ(project: MakeProject) -> None:
    """`environ["reload_middleware.csp_nonce"]`, set while the app runs, goes on the tag
    (a policy this middleware does not see, added further out)."""
    app = project(POLICY_SCRIPT, live=True).application
    page = call(app, environ={"test.nonce": "fr0mApp+/="})
    assert tag_of(page).endswith(' nonce="fr0mApp+/="></script>')


def test_a_policy_that_blocks_the_tag_means_no_tag_said_once(
    project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither 'self' nor a nonce: no tag, the page as the app made it, one log line."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    app = project(POLICY_SCRIPT, live=True).application
    blocking = {"test.headers": [("Content-Security-Policy", "script-src 'strict-dynamic'")]}
    pages = [call(app, environ=dict(blocking)) for _ in range(3)]
    assert all(b"live.js" not in page.body for page in pages)
    said = [r for r in caplog.records if "Content-Security-Policy" in r.getMessage()]
    assert len(said) == 1 and "script-src" in said[0].getMessage()


def test_a_handed_over_value_that_is_no_nonce_is_not_used(
    project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    """A value that could break out of the attribute is said once and left out."""
    app = project(POLICY_SCRIPT, live=True).application
    for _ in range(2):
        page = call(app, environ={"test.nonce": 'x" onload="alert(1)'})
        assert tag_of(page).endswith('"></script>') and b"onload" not in page.body
    said = [r for r in caplog.records if "is not a CSP nonce" in r.getMessage()]
    assert len(said) == 1
