"""Server detection from the environ and the choice of action on a change."""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

from reload_middleware.integrations.servers import (
    Action,
    Server,
    choose,
    detect,
    detect_from_modules,
    wants_retry,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def cgi(**extra: Any) -> dict[str, Any]:
    """The keys every server fills, plus the server's own."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost:8000",
        "HTTP_USER_AGENT": "curl/8.5.0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update(extra)
    return environ


MOD_WSGI = {
    "SERVER_SOFTWARE": "Apache/2.4.62 (Debian)",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "DOCUMENT_ROOT": "/var/www/html",
    "SCRIPT_FILENAME": "/srv/myproject/app.wsgi",
    "mod_wsgi.application_group": "",
    "mod_wsgi.callable_object": "application",
    "mod_wsgi.request_handler": "wsgi-script",
    "mod_wsgi.script_reloading": "1",
    "mod_wsgi.version": (5, 0, 2),
    "mod_wsgi.script_start": "1732679239512345",
    "wsgi.multiprocess": True,
}
GUNICORN = {
    "SERVER_SOFTWARE": "gunicorn/27.0.1",
    "RAW_URI": "/",
    "gunicorn.socket": object(),
    "wsgi.file_wrapper": object(),
    "wsgi.input_terminated": True,
}

DETECT: list[tuple[str, dict[str, Any], Server]] = [
    ("mod_wsgi-daemon", cgi(**MOD_WSGI, **{"mod_wsgi.process_group": "site"}), "mod_wsgi-daemon"),
    ("mod_wsgi-embedded", cgi(**MOD_WSGI, **{"mod_wsgi.process_group": ""}), "mod_wsgi-embedded"),
    ("gunicorn-sync", cgi(**GUNICORN, **{"wsgi.multithread": False}), "gunicorn"),
    ("gunicorn-gthread", cgi(**GUNICORN, **{"wsgi.multithread": True}), "gunicorn"),
    ("gunicorn-software-only", cgi(SERVER_SOFTWARE="gunicorn/27.0.1"), "gunicorn"),
    ("gunicorn-socket-only", cgi(**{"gunicorn.socket": object()}), "gunicorn"),
    (
        "uwsgi",
        cgi(**{"uwsgi.version": b"2.0.31", "uwsgi.node": b"web-1", "uwsgi.core": 0}),
        "uwsgi",
    ),
    ("uwsgi-node-only", cgi(**{"uwsgi.node": b"web-1"}), "uwsgi"),
    ("waitress", cgi(SERVER_SOFTWARE="waitress", **{"waitress.client_disconnected": object()}),
     "other"),
    ("wsgiref", cgi(SERVER_SOFTWARE="WSGIServer/0.2 CPython/3.11.7"), "other"),
    ("bare", {}, "other"),
]


@pytest.mark.parametrize(
    ("environ", "expected"), [row[1:] for row in DETECT], ids=[row[0] for row in DETECT]
)
def test_detect(environ: dict[str, Any], expected: Server) -> None:
    """The startup log line names the server the app really runs under."""
    assert detect(environ) == expected


# WebOb 1.8, under webtest, still imports the stdlib `cgi` module.
@pytest.mark.filterwarnings("ignore:'cgi' is deprecated:DeprecationWarning")
def test_detect_webtest() -> None:
    """Under webtest (the usual way to test a WSGI app) the server counts as "other"."""
    import webtest

    seen: dict[str, Any] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    webtest.TestApp(app).get("/")
    assert "paste.testing" in seen
    assert detect(seen) == "other"


SPOOFS = {
    "mod_wsgi-header": {"HTTP_MOD_WSGI_PROCESS_GROUP": "site"},
    "gunicorn-header": {"HTTP_GUNICORN_SOCKET": "1", "HTTP_SERVER_SOFTWARE": "gunicorn/27.0.1"},
    "uwsgi-header": {"HTTP_UWSGI_VERSION": "2.0.31", "HTTP_UWSGI_NODE": "x"},
}


@pytest.mark.parametrize("headers", list(SPOOFS.values()), ids=list(SPOOFS))
def test_detect_ignores_request_headers(headers: dict[str, str]) -> None:
    """A client cannot make wsgiref look like mod_wsgi or gunicorn with request headers."""
    environ = cgi(SERVER_SOFTWARE="WSGIServer/0.2 CPython/3.11.7", **headers)
    assert detect(environ) == "other"


def fake_module(name: str, **attributes: Any) -> types.ModuleType:
    """A module object with the given attributes."""
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


DETECT_MODULES: list[tuple[str, dict[str, types.ModuleType], Server]] = [
    ("mod_wsgi-daemon", {"mod_wsgi": fake_module("mod_wsgi", process_group="site")},
     "mod_wsgi-daemon"),
    ("mod_wsgi-embedded", {"mod_wsgi": fake_module("mod_wsgi", process_group="")},
     "mod_wsgi-embedded"),
    ("mod_wsgi-pip-package", {"mod_wsgi": fake_module("mod_wsgi")}, "other"),
    ("uwsgi", {"uwsgi": fake_module("uwsgi")}, "uwsgi"),
    ("gunicorn-worker", {"gunicorn.workers.base": fake_module("gunicorn.workers.base")},
     "gunicorn"),
    ("gunicorn-installed-only", {"gunicorn": fake_module("gunicorn")}, "other"),
    ("nothing", {}, "other"),
]


@pytest.mark.parametrize(
    ("modules", "expected"),
    [row[1:] for row in DETECT_MODULES],
    ids=[row[0] for row in DETECT_MODULES],
)
def test_detect_from_modules(modules: dict[str, types.ModuleType], expected: Server) -> None:
    """Before the first request the server is told from what the process has imported."""
    assert detect_from_modules(modules) == expected


def test_detect_from_modules_in_this_process() -> None:
    """A test run is not mistaken for mod_wsgi, gunicorn or uWSGI."""
    assert "mod_wsgi" not in sys.modules
    assert detect_from_modules() == "other"


# The table of actions (docs/how-it-works.md, step 4), with each `mode`. Each row lists
# the action for the eight combinations of (hook_active, forked, windows) in this order:
FLAG_ORDER = list(itertools.product((False, True), repeat=3))
CHOOSE: dict[tuple[Server, str], tuple[Action, ...]] = {
    #                          hook:  no      no      no      no      yes     yes     yes     yes
    #                        forked:  no      no      yes     yes     no      no      yes     yes
    #                       windows:  no      yes     no      yes     no      yes     no      yes
    ("mod_wsgi-daemon", "auto"): ("restart-by-sigint",) * 4 + ("restart-by-hook",) * 4,
    ("mod_wsgi-daemon", "restart"): ("restart-by-sigint",) * 4 + ("restart-by-hook",) * 4,
    ("mod_wsgi-daemon", "reload"): ("reload",) * 8,
    ("mod_wsgi-embedded", "auto"): ("reload",) * 8,
    ("mod_wsgi-embedded", "restart"): ("reload", "restart-apache") * 4,
    ("mod_wsgi-embedded", "reload"): ("reload",) * 8,
    ("gunicorn", "auto"): ("restart-by-sigterm", "restart-by-sigterm", "reload", "reload") * 2,
    ("gunicorn", "restart"): ("restart-by-sigterm",) * 8,
    ("gunicorn", "reload"): ("reload",) * 8,
    ("uwsgi", "auto"): ("restart-uwsgi",) * 8,
    ("uwsgi", "restart"): ("restart-uwsgi",) * 8,
    ("uwsgi", "reload"): ("reload",) * 8,
    ("other", "auto"): ("reload",) * 8,
    ("other", "restart"): ("reload",) * 8,
    ("other", "reload"): ("reload",) * 8,
}
CHOOSE_CASES = [
    (server, mode, hook, forked, windows, actions[i])
    for (server, mode), actions in CHOOSE.items()
    for i, (hook, forked, windows) in enumerate(FLAG_ORDER)
]
CHOOSE_IDS = [
    f"{server}-{mode}-{'hook' if hook else 'nohook'}-{'forked' if forked else 'unforked'}"
    f"-{'windows' if windows else 'posix'}"
    for server, mode, hook, forked, windows, _ in CHOOSE_CASES
]


def test_choose_table_is_complete() -> None:
    """Every server and mode has a row of eight actions, one per combination."""
    assert all(len(actions) == len(FLAG_ORDER) for actions in CHOOSE.values())
    assert len(CHOOSE_CASES) == 5 * 3 * 8


@pytest.mark.parametrize(
    ("server", "mode", "hook_active", "forked", "windows", "expected"),
    CHOOSE_CASES,
    ids=CHOOSE_IDS,
)
def test_choose(
    server: Server, mode: str, hook_active: bool, forked: bool, windows: bool, expected: Action
) -> None:
    """On a change each server gets the action of the documented table (hook, signal, ...)."""
    action = choose(server, mode=mode, hook_active=hook_active, forked=forked, windows=windows)
    assert action == expected


WANTS_RETRY = [
    ("auto", "GET", True), ("auto", "HEAD", True), ("auto", "POST", False),
    ("auto", "PUT", False), ("auto", "DELETE", False), ("auto", "PATCH", False),
    ("auto", "OPTIONS", False),
    ("always", "GET", True), ("always", "HEAD", True), ("always", "POST", True),
    ("always", "PUT", True), ("always", "DELETE", True),
    ("never", "GET", False), ("never", "HEAD", False), ("never", "POST", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("retry", "method", "expected"), WANTS_RETRY, ids=[f"{r}-{m}" for r, m, _ in WANTS_RETRY]
)
def test_wants_retry(retry: str, method: str, expected: bool) -> None:
    """A GET or HEAD that triggers a restart gets a 307 to itself; a POST is answered as is."""
    assert wants_retry(retry, method) is expected
