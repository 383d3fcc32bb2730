"""Never stuck: broken saves and deploys under real Apache daemon mode (preloaded)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from apache import Apache, wait_for
from support import PROBE, Site, answer, follow, holds, restarts, seen, warm

pytestmark = pytest.mark.integration

# The version is imported when the script loads: an edit that compiles but drops the
# name breaks the import, as a settings or config error does in a framework app.
IMPORTING_APP = """\
import json, os
from webapp.views import VERSION
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "version": VERSION}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app, settle=0.05)
"""


class Traffic:
    """Requests in a loop from one thread until stopped, following 307s as a browser
    does: every final status seen, in order."""

    def __init__(self, server: Apache, pause: float = 0.05) -> None:
        self.statuses: list[int] = []
        self._server, self._pause = server, pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(self._pause):
            try:
                status = 307
                for _ in range(8):
                    status = self._server.get("/", timeout=10).status
                    if status != 307:
                        break
                self.statuses.append(status)
            except OSError:
                self.statuses.append(0)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(15)


def test_an_edit_that_breaks_the_import_keeps_old_code_until_the_fix(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """It compiles but the app cannot import: no restart, old code serves, the log says
    why, and the fix is served within 5 s."""
    app = site()
    app.write("app.wsgi", IMPORTING_APP)
    server = apache(app)
    pids = warm(server)
    seen(server, app.write("webapp/views.py", "RENAMED = '2'\n"))
    holds(lambda: answer(server)["version"] == "1", 1.0, "old code while the import fails")
    assert server.daemon_pids() == pids
    assert restarts(server) == 0
    log = server.wait_for_log("new code not loaded, old code still serving")
    assert "cannot import name 'VERSION'" in log
    app.set_version("3")
    wait_for(lambda: answer(server)["version"] == "3", 5, "the fix being served")


def test_a_package_moved_away_and_back_under_load_gives_no_error(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """A deploy step that moves the package away for 1.5 s: the old code serves through
    it, no request fails, and nothing restarts once it is back unchanged."""
    app = site()
    server = apache(app)
    pids = warm(server)
    package, away = app.root / "webapp", app.root / "webapp.away"
    with Traffic(server) as traffic:
        os.rename(package, away)
        seen(server, package / "views.py")
        threading.Event().wait(1.5)  # the deploy's gap is the schedule itself
        os.rename(away, package)
        holds(lambda: answer(server)["version"] == "1", 1.0, "old code after the move back")
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.statuses
    assert server.daemon_pids() == pids
    assert restarts(server) == 0


def test_new_content_with_the_same_size_mtime_and_inode_is_served(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """rsync -a -c --inplace from a copy with the same sizes and times: served within 3 s."""
    app = site()
    server = apache(app)
    warm(server)
    views = app.root / "webapp" / "views.py"
    before = views.stat()
    with open(views, "r+") as target:
        target.write("VERSION = '2'\n")  # the same length as the old text
    os.utime(views, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert views.stat().st_size == before.st_size and views.stat().st_ino == before.st_ino
    wait_for(lambda: answer(server)["version"] == "2", 3, "the new content being served")


@pytest.mark.parametrize("age", [0.0, 3.0], ids=["fresh-daemons", "settled-daemons"])
def test_a_touch_storm_under_traffic_never_chains_restarts(
    site: Callable[..., Site], apache: Callable[..., Apache], age: float
) -> None:
    """A tool touching file after file for 8 s while 10 requests a second come: no 5xx,
    the current code serves meanwhile, no restart chains into mod_wsgi's limit, and each
    daemon restarts at most three times: on the first touches, until the storm shows in
    the files' times, and once after it."""
    app = site()
    for n in range(80):
        app.write(f"webapp/m{n}.py", "X = 0\n")
    app.write("webapp/__init__.py", "".join(f"from . import m{n}\n" for n in range(80)))
    server = apache(app)
    warm(server)
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started >= age, age + 1, "the daemons to age")
    pace = threading.Event()
    with Traffic(server, pause=0.1) as traffic:
        for n in range(80):
            os.utime(app.root / "webapp" / f"m{n}.py")
            pace.wait(0.1)  # the tool's pace is the schedule itself
        wait_for(lambda: restarts(server) >= 2, 10, "each daemon restarting after the storm")
        holds(lambda: answer(server)["version"] == "1", 1.0, "serving after the storm")
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.statuses
    assert restarts(server) <= 6
    assert "changes keep coming" in server.error_log()


def test_a_daemon_that_cannot_load_its_script_recovers_with_startup_timeout(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Restarted into an import error anyway (preflight off here): with mod_wsgi's
    startup-timeout, the advice of docs/getting-started.md, the daemon starts afresh and
    serves the fix."""
    app = site()
    app.write("app.wsgi", IMPORTING_APP)
    server = apache(app, processes=1, daemon_options="startup-timeout=2",
                    location_config="SetEnv reload_middleware.preflight off")
    warm(server, count=1)
    seen(server, app.write("webapp/views.py", "RENAMED = '2'\n"), count=1)
    wait_for(lambda: server.get("/").status == 500, 5, "the broken import being loaded")
    app.set_version("3")
    wait_for(lambda: server.get("/").status == 200, 10, "a fresh daemon loading the fix")
    assert answer(server)["version"] == "3"


def test_a_release_switch_of_a_flat_app_is_served(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """`current -> releases/1` switched to `releases/2` with `mv -T`, modules beside an
    identical app.wsgi: release 2 within 3 s, and then an edit in release 2."""
    app = site()
    for n in (1, 2):
        app.write(f"releases/{n}/app.wsgi", app.script.read_text())
        app.write(f"releases/{n}/probe/probe.wsgi", PROBE)
        app.write(f"releases/{n}/webapp/__init__.py", "")
        app.write(f"releases/{n}/webapp/views.py", f"VERSION = 'release {n}'\n")
    current = app.root / "current"
    current.symlink_to(app.root / "releases" / "1")
    released = Site(current)
    server = apache(released)
    assert answer(server)["version"] == "release 1"
    (app.root / "current.new").symlink_to(app.root / "releases" / "2")
    subprocess.run(["mv", "-T", str(app.root / "current.new"), str(current)], check=True)
    wait_for(lambda: version(server) == "release 2", 3, "release 2 being served")
    app.write("releases/2/webapp/views.py", "VERSION = 'hotfix'\n")
    wait_for(lambda: version(server) == "hotfix", 3, "the edit in release 2")


def version(server: Apache) -> str:
    """The version a browser is shown: 307s followed."""
    response, _ = follow(server)
    assert response.status == 200, response.text
    return str(response.json()["version"])
