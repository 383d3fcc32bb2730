"""The control endpoint: every rule of docs/control.md, through WSGI."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import SECRET, MakeProject, Until, call
from reload_middleware import ReloadMiddleware, interpreter
from reload_middleware.operations import control, state_dir


def hello(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def request(
    app: Any, method: str = "GET", path: str = "/__reload__", token: str | None = SECRET,
    **extra: str,
) -> tuple[str, dict[str, str], bytes]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    response = call(app, method, path, {**headers, **extra})
    return response.status, response.headers, response.body


@pytest.fixture
def endpoint(project: MakeProject) -> ReloadMiddleware:
    return project(control="/__reload__", secret=SECRET).application


def test_get_with_the_token_answers_status_json(endpoint: ReloadMiddleware) -> None:
    """GET with the bearer token: pid, mode, server, backend, counts, pending, last action."""
    call(endpoint)
    status, headers, body = request(endpoint)
    assert status == "200 OK" and headers["Content-Type"].startswith("application/json")
    report = json.loads(body)
    assert report["pid"] == os.getpid()
    assert {"mode", "server", "backend", "files", "directories", "pending", "last_action",
            "last_error"} <= set(report)
    assert report["files"] > 0 and report["pending"] == []
    assert SECRET not in body.decode()


@pytest.mark.parametrize(
    "token, extra",
    [
        (None, {}),
        ("", {}),
        ("wrong-token-wrong-token", {}),
        (SECRET[:-1], {}),
        (SECRET + "x", {}),
        (None, {"QUERY_STRING": f"token={SECRET}"}),
        (None, {"HTTP_COOKIE": f"token={SECRET}"}),
        (None, {"HTTP_AUTHORIZATION": f"Basic {SECRET}"}),
        (None, {"HTTP_X_RELOAD_MIDDLEWARE_SECRET": SECRET}),
    ],
    ids=["missing", "empty", "wrong", "prefix", "longer", "query", "cookie", "basic", "header"],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_without_the_token_it_is_403_with_no_detail(
    endpoint: ReloadMiddleware, token: str | None, extra: dict[str, str], method: str
) -> None:
    """A missing or wrong token, or one sent anywhere but the header: a bare 403."""
    status, _, body = request(endpoint, method, token=token, **extra)
    assert status == "403 Forbidden"
    assert body == b"Forbidden\n"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_get_405(endpoint: ReloadMiddleware, method: str) -> None:
    """With the token, anything but GET and POST is 405 and says what is allowed."""
    status, headers, _ = request(endpoint, method)
    assert status == "405 Method Not Allowed"
    assert headers["Allow"] == "GET, POST"


@pytest.mark.parametrize(
    "path",
    ["/", "/__reload__/", "/__RELOAD__", "/__reload__x", "/x/../__reload__", "/%5F%5Freload__",
     "//__reload__", "/__reload__%00", "/__reload__;x"],
)
def test_every_other_path_goes_to_the_app(endpoint: ReloadMiddleware, path: str) -> None:
    """Matching is exact: no prefix, slash, case, dot-segment or encoding trick reaches it."""
    status, _, body = request(endpoint, "POST", path)
    assert (status, body) == ("200 OK", b"old")


def test_a_mount_below_script_name_is_handled(endpoint: ReloadMiddleware) -> None:
    """Mounted at /app, the endpoint is /app/__reload__ (PATH_INFO /__reload__)."""
    status, _, _ = request(endpoint, SCRIPT_NAME="/app")
    assert status == "200 OK"


def test_post_touches_the_stamp_and_every_process_acts_next_request(
    endpoint: ReloadMiddleware, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """POST answers 202 and touches the stamp file; the next request reloads."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    call(endpoint)
    status, _, body = request(endpoint, "POST")
    assert status == "202 Accepted" and json.loads(body)["accepted"] is True
    until(lambda: bool(endpoint.pending))
    (stamp,) = endpoint.pending
    assert os.path.dirname(stamp) == state_dir.default().path  # the private directory's
    assert call(endpoint).status == "200 OK"
    assert any("changed: reload" in r.getMessage() and stamp in r.getMessage()
               for r in caplog.records)
    report = json.loads(request(endpoint)[2])
    assert report["last_action"]["action"] == "reload"


def test_post_with_a_trigger_touches_the_trigger(project: MakeProject, until: Until) -> None:
    """With a trigger file, the POST touches that file, which every process watches."""
    made = project(control="/__reload__", secret=SECRET, trigger="deploy.stamp")
    app = made.application
    call(app)
    assert request(app, "POST")[0] == "202 Accepted"
    until(lambda: str(made.root / "deploy.stamp") in app.pending)


@pytest.mark.parametrize("secret", [None, "", "short", "x" * 15])
def test_control_without_a_strong_secret_is_refused(secret: str | None) -> None:
    """control= without a secret of 16 characters or more raises ValueError."""
    with pytest.raises(ValueError, match="secret"):
        ReloadMiddleware(hello, control="/__reload__", secret=secret)


def test_control_from_the_environ_without_secret_stays_off(
    project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    """SetEnv control without a strong secret: a logged error, and the path goes to the app."""
    app = project().application
    status, _, body = request(app, path="/c", **{"reload_middleware.control": "/c"})
    assert (status, body) == ("200 OK", b"old")
    assert any("needs a 'secret'" in r.getMessage() for r in caplog.records)
    assert request(app, path="/c")[2] == b"old"


def test_status_never_shows_environ_values(project: MakeProject) -> None:
    """The status JSON holds no environ value, whatever the request carried."""
    app = project(control="/__reload__", secret=SECRET).application
    extra = {"HTTP_X_PRIVATE": "private-value-42", "reload_middleware.debug": "on"}
    _, _, body = request(app, **extra)
    assert b"private-value-42" not in body and SECRET.encode() not in body


def test_stamp_name_is_per_script() -> None:
    """Two scripts get two stamp files, plain names in the private state directory."""
    one, two = control.stamp_name("/srv/a/app.wsgi"), control.stamp_name("/srv/b/app.wsgi")
    assert one != two and os.sep not in one + two


DAEMON = {"mod_wsgi.process_group": "site"}  # mod_wsgi daemon mode, hook not in use


@pytest.mark.parametrize("retry", ["auto", "always", "never"])
def test_the_endpoint_stays_in_front_while_a_restart_is_pending(
    project: MakeProject, until: Until, kills: list[tuple[int, int]], retry: str
) -> None:
    """Once a restart is decided, GET and POST with the token still reach the endpoint:
    the app never sees the token, and a status request gets no 307."""
    made = project(control="/__reload__", secret=SECRET, retry=retry)
    app = made.application
    call(app, extra=DAEMON)
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    call(app, "POST", "/", DAEMON)  # the restart is decided here, and fired after it
    assert kills
    status, _, body = request(app, "GET", **DAEMON)
    assert status == "200 OK" and json.loads(body)["pid"] == os.getpid()
    status, _, body = request(app, "POST", **DAEMON)
    assert status == "202 Accepted" and json.loads(body)["accepted"] is True
    assert request(app, "POST", token="wrong", **DAEMON)[0] == "403 Forbidden"


def test_control_posts_are_never_taken_for_a_restart_storm(
    endpoint: ReloadMiddleware, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """Many POSTs in a row, each answered at once: every one of them reloads."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    call(endpoint)
    for n in range(1, 10):
        assert request(endpoint, "POST")[0] == "202 Accepted"
        until(lambda: bool(endpoint.pending))
        assert call(endpoint).status == "200 OK"
        reloads = [r for r in caplog.records if "changed: reload" in r.getMessage()]
        assert len(reloads) == n, f"POST {n} reloaded nothing"
    assert json.loads(request(endpoint)[2])["ignored"] == []


def test_without_a_state_directory_a_post_reloads_its_own_process(
    project: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every candidate planted: no stamp file, said once; the POST still reloads here."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    os.mkfifo(tmp_path / "planted")
    monkeypatch.setattr(state_dir, "candidates", lambda *_: [str(tmp_path / "planted")])
    app = project(control="/__reload__", secret=SECRET).application
    call(app)
    for n in range(1, 3):
        assert request(app, "POST")[0] == "202 Accepted"
        assert call(app).status == "200 OK"
        reloads = [r for r in caplog.records if "changed: reload" in r.getMessage()]
        assert len(reloads) == n
    said = [r for r in caplog.records if "no private state directory" in r.getMessage()]
    assert len(said) == 1


def test_a_fifo_at_the_trigger_neither_hangs_nor_loses_the_post(
    project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    """A trigger that is no regular file of ours is not touched: said, and this process
    reloads all the same."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made = project(control="/__reload__", secret=SECRET, trigger="deploy.stamp")
    os.mkfifo(made.root / "deploy.stamp")
    app = made.application
    call(app)
    answered = threading.Thread(target=request, args=(app, "POST"), daemon=True)
    answered.start()
    answered.join(5)
    assert not answered.is_alive(), "the POST hangs on the FIFO"
    assert call(app).status == "200 OK"
    assert any("reloads this process only" in r.getMessage() for r in caplog.records)
    assert any("changed: reload" in r.getMessage() for r in caplog.records)


def test_the_shared_temp_directory_is_never_watched(endpoint: ReloadMiddleware) -> None:
    """The stamp's directory is the private one: events other users cause in the shared
    temp directory never make a process look at its files again."""
    call(endpoint)
    private = state_dir.default().path
    assert private is not None
    watched = interpreter.current().watcher.directories
    assert private in watched
    assert tempfile.gettempdir() not in watched


def _environ(**keys: str) -> dict[str, str]:
    return {"SCRIPT_NAME": "", "PATH_INFO": "/__reload__", **keys}


@pytest.mark.parametrize(
    "environ, expected",
    [
        (_environ(), "endpoint"),
        (_environ(REQUEST_URI="/__reload__?x=1"), "endpoint"),
        (_environ(SCRIPT_NAME="/app", REQUEST_URI="/app/__reload__"), "endpoint"),
        (_environ(SCRIPT_NAME="/my app", REQUEST_URI="/my%20app/__reload__"), "endpoint"),
        (_environ(REQUEST_URI="/%5F%5Freload__"), "not found"),
        (_environ(REQUEST_URI="/__reload%5F%5F"), "not found"),
        (_environ(REQUEST_URI="/%5f%5freload__?x"), "not found"),
        (_environ(REQUEST_URI="//__reload__"), "not found"),
        (_environ(SCRIPT_NAME="/app", REQUEST_URI="/app//__reload__"), "not found"),
        (_environ(SCRIPT_NAME="/app", REQUEST_URI="/%61pp/__reload__"), "not found"),
        (_environ(REQUEST_URI="/admin/reload"), "not found"),
        (_environ(PATH_INFO="/index", REQUEST_URI="/__reload__"), "app"),
        (_environ(RAW_URI="/__reload__?a=b"), "endpoint"),
        (_environ(RAW_URI="/%5F%5Freload__"), "not found"),
        (_environ(RAW_URI="http://example.org/__reload__?a"), "endpoint"),
        (_environ(RAW_URI="http://example.org//__reload__"), "not found"),
        (_environ(PATH_INFO="/__reload__/", RAW_URI="/__reload__/"), "app"),
    ],
    ids=[
        "wsgiref-no-raw-path", "mod_wsgi", "mod_wsgi-mounted", "mod_wsgi-mount-encoded-space",
        "mod_wsgi-encoded-prefix", "mod_wsgi-encoded-suffix", "mod_wsgi-lowercase-escapes",
        "mod_wsgi-double-slash", "mod_wsgi-mounted-double-slash", "mod_wsgi-encoded-mount",
        "mod_rewrite-to-it", "mod_rewrite-away-from-it", "gunicorn", "gunicorn-encoded",
        "gunicorn-absolute-form", "gunicorn-absolute-double-slash", "gunicorn-other-path",
    ],
)
def test_route_matches_the_raw_request_path(environ: dict[str, str], expected: str) -> None:
    """The raw path (REQUEST_URI or RAW_URI) must spell the mount and path literally."""
    assert control.route(environ, "/__reload__") == expected


@pytest.mark.parametrize(
    "raw", ["/%5F%5Freload__", "/__reload%5F%5F", "//__reload__", "/other?x"],
)
def test_encoded_and_rewritten_forms_get_a_bare_404(endpoint: ReloadMiddleware, raw: str) -> None:
    """Reaching PATH_INFO /__reload__ by any other raw spelling: 404, token or not."""
    for token in (SECRET, None):
        status, _, body = request(endpoint, "POST", token=token, REQUEST_URI=raw)
        assert (status, body) == ("404 Not Found", b"Not Found\n")


GUNICORN_MOUNTED = {"SCRIPT_NAME": "/x", "RAW_URI": "/x/__reload__"}


@pytest.mark.parametrize(
    "environ, configured, expected",
    [
        (_environ(**GUNICORN_MOUNTED), {}, "endpoint"),
        (_environ(**GUNICORN_MOUNTED, HTTP_SCRIPT_NAME="/x"), {}, "not found"),
        (_environ(**GUNICORN_MOUNTED, HTTP_SCRIPT_NAME="/x"), {"SCRIPT_NAME": "/x"}, "endpoint"),
        (_environ(**GUNICORN_MOUNTED, HTTP_SCRIPT_NAME="/y,/x"), {"SCRIPT_NAME": "/x"},
         "endpoint"),
        (_environ(**GUNICORN_MOUNTED, HTTP_SCRIPT_NAME="/x"), {"SCRIPT_NAME": "/app"},
         "not found"),
        (_environ(RAW_URI="/__reload__", HTTP_SCRIPT_NAME=""), {"SCRIPT_NAME": "/app"},
         "not found"),
        (_environ(RAW_URI="/__reload__", HTTP_SCRIPT_NAME=""), {}, "endpoint"),
        (_environ(SCRIPT_NAME="/x", HTTP_SCRIPT_NAME="/x"), {}, "not found"),
        (_environ(SCRIPT_NAME="/x", PATH_INFO="/page", HTTP_SCRIPT_NAME="/x"), {}, "app"),
    ],
    ids=[
        "configured-mount", "header-mount", "header-as-configured", "header-repeated",
        "header-other-than-configured", "empty-header-leaves-the-mount", "empty-header-no-mount",
        "header-mount-no-raw-path", "header-mount-other-path",
    ],
)
def test_a_mount_a_request_header_set_is_no_mount(
    environ: dict[str, str], configured: dict[str, str], expected: str
) -> None:
    """gunicorn takes SCRIPT_NAME from a request header (HTTP_SCRIPT_NAME then says so):
    the endpoint is only below the mount of the server's own environment."""
    assert control.route(environ, "/__reload__", configured) == expected


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_header_mount_gets_a_bare_404_with_the_token(
    endpoint: ReloadMiddleware, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """`/x/__reload__` with `SCRIPT_NAME: /x` (gunicorn's environ for it): a bare 404 for
    GET and POST alike, nothing touched; with `--env SCRIPT_NAME=/x`, the endpoint."""
    monkeypatch.delenv("SCRIPT_NAME", raising=False)
    call(endpoint)
    header = {**GUNICORN_MOUNTED, "HTTP_SCRIPT_NAME": "/x"}
    status, _, body = request(endpoint, method, **header)
    assert (status, body) == ("404 Not Found", b"Not Found\n")
    assert not endpoint.pending
    monkeypatch.setenv("SCRIPT_NAME", "/x")
    assert request(endpoint, "GET", **header)[0] == "200 OK"
