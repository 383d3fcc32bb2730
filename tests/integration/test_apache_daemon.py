"""Real Apache, mod_wsgi daemon mode, preloaded script, processes=2."""

from __future__ import annotations

import os
import pwd
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from apache import MODULES, Apache, older_than, wait_for
from support import Site, answer, follow, holds, pids_answering, restarts, seen, together, warm

from reload_middleware import tracking
from reload_middleware.operations import control, state_dir

pytestmark = pytest.mark.integration


def test_no_traffic_means_no_restart(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Twenty edits with no request leave the daemon processes alone."""
    app = site()
    server = apache(app)
    warm(server)
    pids = server.daemon_pids()
    assert len(pids) == 2
    for n in range(20):
        app.set_version(f"edit-{n}")
        holds(lambda: server.daemon_pids() == pids, 0.15, "a daemon restarted with no request")
    holds(lambda: server.daemon_pids() == pids, 2.0, "a daemon restarted with no request")
    assert restarts(server) == 0


def test_next_request_gets_new_code(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """After an edit the very next request (no redirect) answers with the new code."""
    app = site()
    server = apache(app)
    old = warm(server)
    seen(server, app.set_version("2"))
    first = answer(server)
    assert first["version"] == "2"
    assert first["pid"] not in old
    new = pids_answering(server, version="2")
    assert not new & old
    assert restarts(server) == 2  # each process restarted once
    assert all(answer(server)["version"] == "2" for _ in range(10))
    assert restarts(server) == 2


def test_a_burst_of_saves_is_one_change(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Ten files saved before the next request cause one restart per process, not ten."""
    app = site()
    for n in range(10):
        app.write(f"webapp/m{n}.py", "X = 0\n")
    app.write("webapp/__init__.py", "".join(f"from . import m{n}\n" for n in range(10)))
    server = apache(app)
    old = warm(server)
    # No request comes in while the burst is written, and a process acts only on a request.
    for n in range(10):
        app.write(f"webapp/m{n}.py", "X = 1\n")
    views = app.set_version("burst")
    seen(server, views)
    new = pids_answering(server, version="burst")
    assert not new & old
    assert all(answer(server)["version"] == "burst" for _ in range(10))
    assert restarts(server) == 2


def test_setenv_watch_enabled_and_no_spoofing(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """SetEnv keys configure it; request headers never do."""
    app = site()
    config_dir = app.root / "config"
    app.write("config/settings.ini", "a = 1\n")
    server = apache(app, location_config=f"SetEnv reload_middleware.watch {config_dir}")
    old = warm(server)
    seen(server, app.write("config/settings.ini", "a = 22\n"))
    assert answer(server)["pid"] not in old

    quiet = site()
    off = apache(quiet, location_config="SetEnv reload_middleware.enabled off")
    pids = warm(off)
    for n in range(3):
        quiet.set_version(f"ignored-{n}")
        holds(lambda: answer(off)["version"] == "1", 0.3, "reloading while enabled is off")
    assert off.daemon_pids() == pids

    spoofed = site()
    target = apache(spoofed)
    old = warm(target)
    seen(target, spoofed.set_version("2"))
    headers = {
        "reload_middleware.enabled": "off",
        "X-Reload-Middleware-Enabled": "off",
        "Reload-Middleware-Enabled": "off",
    }
    result = answer(target, headers=headers)
    assert result["version"] == "2" and result["pid"] not in old


# The script reads a template when it loads, as a template engine with its cache on does.
TEMPLATED = """\
import json, os, sys
from reload_middleware import ReloadMiddleware

with open(os.path.join(os.path.dirname(__file__), "templates", "page.txt")) as f:
    PAGE = f.read()

def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "page": PAGE}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app, settle=0.05)
print("templated app loaded", file=sys.stderr, flush=True)
"""


def first_pages(server: Apache, app: Site, *, young: bool) -> list[object]:
    """Save the template once both daemons have loaded it (and, unless `young`, are 2 s
    old), then 8 concurrent first requests: the page each one got (or its status)."""
    server.wait_for_log("templated app loaded", count=2)
    if not young:  # the hook decides alone on a daemon's first request (servers.py)
        older_than(server, tracking.YOUNG_NS / 1e9)
    app.write("templates/page.txt", "new")
    answers = together(8, lambda: follow(server)[0])
    return [a.json()["page"] if a.status == 200 else a.status for a in answers]


@pytest.mark.parametrize("young", [True, False], ids=["young-daemons", "older-daemons"])
def test_setenv_watch_path_saved_before_eight_concurrent_first_requests(
    young: bool, site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Preloaded daemons (2 x 4 threads) read a template of a SetEnv watch path, which is
    saved before any request; 8 concurrent first requests all get the new template,
    whether the daemons are younger than 2 s or not (3 runs)."""
    for run in range(3):
        app = site()
        app.write("templates/page.txt", "old")
        app.write("app.wsgi", TEMPLATED)
        server = apache(app, threads=4, ready_path="/probe",
                        location_config=f"SetEnv reload_middleware.watch {app.root / 'templates'}")
        pages = first_pages(server, app, young=young)
        server.stop()
        said = [line for line in server.error_log().splitlines() if "reload_middleware" in line]
        assert pages == ["new"] * 8, f"run {run + 1}: {pages}\n" + "\n".join(said)


def test_atomic_save(site: Callable[..., Site], apache: Callable[..., Apache]) -> None:
    """Write a temp file and rename it over the module: the next request has new code."""
    app = site()
    server = apache(app)
    warm(server)
    temp = app.write("webapp/.views.py.tmp1234", "VERSION = 'atomic'\n")
    os.replace(temp, app.root / "webapp" / "views.py")
    seen(server, app.root / "webapp" / "views.py")
    assert answer(server)["version"] == "atomic"


def test_syntax_error_keeps_daemon_and_fix_is_picked_up(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """A syntax error never restarts; debug shows file and line; the fix is served next."""
    app = site(debug=True)
    server = apache(app)
    pids = warm(server)
    seen(server, app.write("webapp/views.py", "VERSION = (\n"))
    response = server.get("/")
    assert response.status == 500
    assert "webapp/views.py:1" in response.text
    assert server.daemon_pids() == pids
    assert restarts(server) == 0
    app.set_version("fixed")
    wait_for(lambda: server.get("/").status == 200, 10, "the fix being served")
    assert answer(server)["version"] == "fixed"
    server.wait_for_log("new code not loaded, old code still serving")


def test_without_the_hook_get_retries_and_post_finishes_on_old_code(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """No hook (WSGIScriptReloading Off): GET through a 307, POST on old code first."""
    app = site()
    server = apache(app, script_reloading=False)
    old = warm(server)
    seen(server, app.set_version("2"))
    response, hops = follow(server)
    assert hops >= 1
    assert response.json()["version"] == "2" and response.json()["pid"] not in old

    pids = warm(server)
    seen(server, app.set_version("3"))
    post = server.get("/", method="POST", body=b"x=1")
    assert post.status == 200
    assert post.json()["version"] == "2" and post.json()["pid"] in pids
    response, _ = follow(server)
    assert response.json()["version"] == "3"


def test_a_save_of_the_wsgi_script_passes_the_import_preflight_by_path(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """No hook (WSGIScriptReloading Off), so the middleware acts on a save of `app.wsgi`
    itself: the import preflight runs it by path, as mod_wsgi loads it (no plain
    interpreter can import its module name, `_mod_wsgi_...`); both processes serve the
    new script, and no preflight keeps the old code."""
    app = site()
    server = apache(app, script_reloading=False)
    old = warm(server)
    seen(server, app.write("app.wsgi", app.script.read_text() + "views.VERSION = 'script'\n"))
    new: set[int] = set()

    def both_new() -> bool:
        response, _ = follow(server)
        assert response.json()["version"] == "script", response.text
        new.add(response.json()["pid"])
        return len(new) == 2

    wait_for(both_new, 10, "both processes serving the saved script")
    assert not new & old
    log = server.error_log()
    assert "new code not loaded" not in log, log
    assert "app.wsgi (1 file) changed: restart-by-sigint" in log


def stamp_of(script: Path) -> Path:
    """The control endpoint's stamp file, in the daemons' (user www-data) private
    directory: their home is not theirs, so the first temp-dir candidate that is."""
    uid = pwd.getpwnam("www-data").pw_uid
    for path in state_dir.candidates(uid, {}, None, tempfile.gettempdir()):
        info = os.lstat(path) if os.path.lexists(path) else None
        if info and stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
            return Path(path) / control.stamp_name(str(script))
    raise AssertionError("www-data has no private directory")


def test_control_post_restarts_every_daemon_process(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """POST with the token restarts both processes; without it: 403 and nothing happens."""
    secret = "integration-secret-0123456789"
    app = site(control="/__reload__", secret=secret)
    server = apache(app, extra_config="WSGIPassAuthorization On")
    old = warm(server)
    refused = server.get("/__reload__", method="POST")
    assert refused.status == 403
    assert pids_answering(server) == old  # the next requests: no process restarted
    accepted = server.get("/__reload__", method="POST",
                          headers={"Authorization": f"Bearer {secret}"})
    assert accepted.status == 202
    seen(server, stamp_of(app.script))  # both processes heard the stamp file change
    new = pids_answering(server)
    assert not new & old
    status = server.get("/__reload__", headers={"Authorization": f"Bearer {secret}"})
    assert status.status == 200 and status.json()["server"] == "mod_wsgi-daemon"


def test_control_path_only_as_the_client_spelled_it(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Under mod_wsgi the endpoint answers only the literal /__reload__ of REQUEST_URI:
    encoded and doubled-slash forms, and a mod_rewrite to it, get 404."""
    secret = "integration-secret-0123456789"
    app = site(control="/__reload__", secret=secret)
    server = apache(app, extra_config="\n".join([
        "WSGIPassAuthorization On",
        f'LoadModule rewrite_module "{MODULES}/mod_rewrite.so"',
        "RewriteEngine On",
        "RewriteRule ^/admin/reload$ /__reload__ [PT]",
    ]))
    token = {"Authorization": f"Bearer {secret}"}
    assert server.get("/__reload__?x=1", headers=token).status == 200
    for trick in ("/%5F%5Freload__", "/__reload%5F%5F", "//__reload__", "/admin/reload"):
        response = server.get(trick, headers=token)
        assert (response.status, response.body) == (404, b"Not Found\n"), trick
