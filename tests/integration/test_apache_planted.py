"""Real Apache daemon mode after another local account planted every name we wrote."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apache import Apache, wait_for
from support import Site, follow, require, warm

from reload_middleware.operations import state_dir

pytestmark = pytest.mark.integration

SECRET = "integration-secret-0123456789"
TOKEN = {"Authorization": f"Bearer {SECRET}"}
# The app keeps the template as it read it at import, as template engines cache them.
APP = """\
import json, os
from webapp import views
from reload_middleware import ReloadMiddleware

with open(os.path.join(os.path.dirname(__file__), "templates", "page.html")) as source:
    PAGE = source.read()


def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "version": views.VERSION, "page": PAGE}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


application = ReloadMiddleware(
    app, settle=0.05, control="/__reload__", secret="integration-secret-0123456789"
)
"""


def www_data() -> int:
    return pwd.getpwnam("www-data").pw_uid


def candidates() -> list[Path]:
    """The temp-dir candidates of www-data's private directory (its home is not its own)."""
    found = state_dir.candidates(www_data(), {}, None, tempfile.gettempdir())
    return [Path(p) for p in found]


def in_use() -> Path:
    """The candidate the daemons use: the first that is www-data's, mode 0700."""
    for path in candidates():
        info = os.lstat(path) if os.path.lexists(path) else None
        if info and stat.S_ISDIR(info.st_mode) and info.st_uid == www_data() \
                and stat.S_IMODE(info.st_mode) == 0o700:
            return path
    raise AssertionError("no private directory of www-data in use")


def old_names(script: Path) -> list[Path]:
    """Where earlier versions kept the stamp and the storm record: the shared temp dir."""
    digest = hashlib.sha256(f"{www_data()}:{script}".encode()).hexdigest()[:16]
    temp = Path(tempfile.gettempdir())
    return [temp / f"reload-middleware-stamp-{digest}",
            temp / f"reload-middleware-storms-{digest}.json"]


def as_nobody(*argv: str) -> None:
    """Run `argv` as another local account, as a neighbour on a shared host would."""
    setpriv = shutil.which("setpriv")
    require(None if setpriv else "setpriv (util-linux) is not installed")
    require(None if os.geteuid() == 0 else "planting as another uid needs root")
    assert setpriv is not None
    subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
                   check=True, timeout=10)


def clear(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()


def served_within(what: str, check: Callable[[], bool]) -> None:
    wait_for(check, 5, what)


def answer(server: Apache) -> dict[str, Any]:
    """What a browser gets: 307s to the same URL followed (a restart under way)."""
    response, _ = follow(server)
    assert response.status == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_names_planted_by_another_account_change_nothing(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Every name an earlier run wrote is a FIFO or a world-writable directory of another
    account when the server starts: an edit, a template change and a control POST are
    each served within 5 s."""
    require(None if os.geteuid() == 0 else "planting as another uid needs root")
    app = site()
    app.write("templates/page.html", "page 1")
    app.write("app.wsgi", APP)
    templates = f"SetEnv reload_middleware.watch {app.root / 'templates'}"
    spares = candidates()
    names = old_names(app.script)
    clear(spares + names)
    try:
        first = apache(app, location_config=templates, extra_config="WSGIPassAuthorization On")
        warm(first)
        app.set_version("1b")
        wait_for(lambda: answer(first)["version"] == "1b", 5, "the first run's edit")
        app.write("templates/page.html", "page 1b")  # a template: the storm guard notes it
        wait_for(lambda: answer(first)["page"] == "page 1b", 5, "the first run's template")
        assert first.get("/__reload__", method="POST", headers=TOKEN).status == 202
        used = in_use()
        assert used == spares[0]
        wait_for(lambda: {p.name[:6] for p in used.iterdir()} >= {"stamp-", "storms"}, 5,
                 "the stamp and the storm record")
        first.stop()

        clear(spares + names)  # the directory is gone (a reboot cleaned the temp dir)
        for name in names:
            as_nobody("mkfifo", "-m", "0666", str(name))
        for n, path in enumerate(spares[:-1]):
            if n % 2:
                as_nobody("mkfifo", "-m", "0666", str(path))
            else:
                as_nobody("mkdir", "-m", "0777", str(path))

        server = apache(app, location_config=templates, extra_config="WSGIPassAuthorization On")
        old = warm(server)
        assert in_use() == spares[-1]

        app.set_version("2")
        served_within("the edit", lambda: answer(server)["version"] == "2")
        app.write("templates/page.html", "page 2")
        served_within("the template", lambda: answer(server)["page"] == "page 2")
        before: set[int] = set()

        def both_new_code() -> bool:
            result = answer(server)
            assert (result["version"], result["page"]) == ("2", "page 2")
            before.add(result["pid"])
            return len(before) == 2

        wait_for(both_new_code, 20, "both processes answering")
        assert not before & old
        posted = server.get("/__reload__", method="POST", headers=TOKEN)
        assert posted.status == 202 and posted.json()["accepted"] is True
        fresh: set[int] = set()

        def both_restarted() -> bool:
            pid = answer(server)["pid"]
            if pid not in before:
                fresh.add(pid)
            return len(fresh) == 2

        served_within("the POST, in both processes", both_restarted)
        status = server.get("/__reload__", headers=TOKEN)
        assert status.status == 200 and status.json()["server"] == "mod_wsgi-daemon"
        log = server.error_log()
        assert "skipped" in log and "no private state directory" not in log
        assert all(stat.S_ISFIFO(os.lstat(name).st_mode) for name in names)
    finally:
        clear(spares + names)
