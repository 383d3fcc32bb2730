"""Real Apache, mod_wsgi embedded mode, one child: in-process reloads, no leaks."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from apache import Apache, Response, process_resources, wait_for
from support import LOADING, Site, answer, seen, together

pytestmark = pytest.mark.integration


def test_edit_reloads_in_the_same_child(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """An edit is served by the same Apache child, reloaded in-process, no signal."""
    app = site(debug=True)
    server = apache(app, mode="embedded")
    pid = answer(server)["pid"]
    seen(server, app.set_version("2"), count=1)
    assert answer(server) == {"pid": pid, "version": "2", "method": "GET"}

    seen(server, app.write("webapp/views.py", "VERSION = undefined_name\n"), count=1)
    broken = server.get("/")
    assert broken.status == 500 and "NameError" in broken.text and "views.py:1" in broken.text
    app.set_version("3")
    wait_for(lambda: server.get("/").status == 200, 10, "the fix being served")
    assert answer(server) == {"pid": pid, "version": "3", "method": "GET"}


def test_broken_edit_without_debug_keeps_old_code(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Without debug a broken edit leaves the old code serving; the fix is picked up."""
    app = site()
    server = apache(app, mode="embedded")
    seen(server, app.write("webapp/views.py", "import no_such_module\nVERSION = 'x'\n"), count=1)
    assert answer(server)["version"] == "1"
    server.wait_for_log("ModuleNotFoundError")
    app.set_version("4")
    wait_for(lambda: answer(server)["version"] == "4", 10, "the fix being served")


LAZY_APP = """\
import importlib, json
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    name = "webapp.lazy" if environ["PATH_INFO"] == "/lazy" else "webapp.views"
    body = json.dumps({"version": importlib.import_module(name).VERSION}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app, settle=0.05)
"""


def test_a_lazily_imported_module_that_cannot_be_imported_keeps_old_code(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """A module imported on a request only (Django's models and views) saved with an
    import error: every page keeps the old code, the log says why, the fix loads."""
    app = site()
    app.write("app.wsgi", LAZY_APP)
    app.set_version("1", "webapp/lazy.py")
    server = apache(app, mode="embedded")
    assert version(server, "/lazy") == "1"
    assert version(server) == "1"  # its look tracks webapp/lazy.py
    seen(server, app.write("webapp/lazy.py", "from .missing import VERSION\n"), count=1)
    assert (version(server, "/lazy"), version(server)) == ("1", "1")
    server.wait_for_log("new code not loaded")
    assert "ModuleNotFoundError: No module named 'webapp.missing'" in server.error_log()
    app.set_version("2", "webapp/lazy.py")  # pending already: no probe can tell it came
    wait_for(lambda: version(server, "/lazy") == "2", 10, "the fix being served")


def version(server: Apache, path: str = "/") -> str:
    response = server.get(path)
    assert response.status == 200, response.text
    return str(response.json()["version"])


def test_thirty_reloads_leak_nothing(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """Thirty edit-and-request cycles keep the child's threads and inotify watches flat."""
    app = site()
    server = apache(app, mode="embedded")
    pid = answer(server)["pid"]
    seen(server, app.set_version("0"), count=1)
    assert answer(server)["version"] == "0"
    before = process_resources(pid)
    for n in range(1, 31):
        seen(server, app.set_version(str(n)), count=1)
        assert answer(server) == {"pid": pid, "version": str(n), "method": "GET"}
    assert process_resources(pid) == before
    assert before[1] == 1  # one inotify instance for the process


def test_one_script_execution_per_change(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """After an in-process reload mod_wsgi finds nothing to reload: three edits, three
    executions of the script, one middleware that keeps watching."""
    app = site()
    server = apache(app, mode="embedded")
    answer(server)
    for n in range(2, 5):
        seen(server, app.set_version(str(n)), count=1)
        assert answer(server)["version"] == str(n)
        assert answer(server)["version"] == str(n)
    log = server.error_log()
    assert log.count("reloaded in") == 3
    assert "Reloading WSGI script" not in log
    assert log.count("watching for code changes") == 1


# The package takes a while to load, as a framework project's does (Django's settings,
# apps and URLs): requests that arrive meanwhile meet the reload under way.
SLOW_PACKAGE = """\
import threading

threading.Event().wait(0.3)
"""


def test_requests_during_a_reload_wait_for_it(
    site: Callable[..., Site], apache: Callable[..., Apache]
) -> None:
    """8 concurrent clients on each of 3 saves (one request starts the reload, 7 arrive
    while it runs): no 404 or 500 (mod_wsgi finds the new script module only once it
    is complete), no old code, and mod_wsgi never executes the script itself again."""
    app = site()
    app.write("webapp/__init__.py", SLOW_PACKAGE)
    server = apache(app, mode="embedded", threads=8)
    answer(server)
    answers: list[tuple[str, Response]] = []
    with ThreadPoolExecutor(1) as first:
        for n in range(2, 5):
            version = str(n)
            seen(server, app.set_version(version), count=1)
            started = first.submit(server.get, "/")
            server.wait_for_log(" changed: reload", count=n - 1)  # the reload is under way
            during = together(7, server.get)
            answers += [(version, r) for r in [started.result(30), *during]]
    wrong = [(version, r.status, r.text[:80]) for version, r in answers
             if r.status != 200 or r.json()["version"] != version]
    log = server.error_log()
    assert not wrong, f"{len(wrong)} of {len(answers)} wrong: {wrong[:5]}"
    assert log.count("reloaded in") == 3
    assert "does not contain WSGI application" not in log
    loads = re.findall(LOADING.format(path=re.escape(str(app.script))), log)
    assert len(loads) == 1  # its first load, by mod_wsgi
