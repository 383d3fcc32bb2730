"""examples/pyramid as its users run it: PasteDeploy's loadapp in a real mod_wsgi script
(daemon mode preloaded, and embedded mode), and under `pserve`."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apache import (
    DEFAULT_VENV,
    Apache,
    ApacheSite,
    apache_available,
    free_port,
    module_location,
    prepare_run_dir,
    wait_for,
)
from procs import get, running
from support import PROBE, require, seen

pytestmark = pytest.mark.integration
# Debian's packaged mod_wsgi (libapache2-mod-wsgi-py3, 4.9.4 on Debian 12).
DEBIAN_MOD_WSGI = Path("/usr/lib/apache2/modules/mod_wsgi.so")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pyramid"
# The example's view, with the word the tests change and the pid that serves it.
VIEW = """\
import os

from pyramid.view import view_config
{extra}

@view_config(route_name="home", renderer="string")
def home(request):
    return f"{{request.registry.settings['greeting']}} {word} {{os.getpid()}}"
"""


class PyramidSite(ApacheSite):
    """A copy of examples/pyramid that www-data can read, with the probe beside it."""

    @property
    def views(self) -> Path:
        return self.root / "hello" / "views.py"

    @property
    def ini(self) -> Path:
        return self.root / "development.ini"

    def view(self, word: str, extra: str = "") -> Path:
        return self.write("hello/views.py", VIEW.format(word=repr(word)[1:-1], extra=extra))

    def greeting(self, greeting: str) -> Path:
        text = self.ini.read_text().replace("greeting = Hello", f"greeting = {greeting}")
        return self.write("development.ini", text)


@pytest.fixture
def pyramid_site() -> Iterator[PyramidSite]:
    root = prepare_run_dir()
    site = PyramidSite(root)
    for path in EXAMPLE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            site.write(str(path.relative_to(EXAMPLE)), path.read_text())
    site.view("one")
    site.write("probe/probe.wsgi", PROBE)
    yield site
    shutil.rmtree(root, ignore_errors=True)


def page(server: Apache) -> tuple[str, int]:
    """The page's text without the pid, and the pid that served it."""
    response = server.get("/")
    assert response.status == 200, response.text
    text, _, pid = response.text.rpartition(" ")
    return text, int(pid)


def warm(server: Apache, count: int, expected: str) -> set[int]:
    """Requests until `count` processes have answered `expected`: a process starts
    watching on its first request, and a restart may replace every process."""
    pids: set[int] = set()

    def enough() -> bool:
        text, pid = page(server)
        assert text == expected, text
        pids.add(pid)
        return len(pids) == count

    wait_for(enough, 20, f"{count} processes answering")
    return pids


def test_pyramid_under_apache_daemon_mode(
    pyramid_site: PyramidSite, apache: Callable[..., Apache]
) -> None:
    """Preloaded daemons: a view edit, an ini edit, a syntax error and an import-time
    error, then their fixes, each checked on the next request."""
    site = pyramid_site
    server = apache(site, processes=2)
    before = warm(server, 2, "Hello one")
    assert server.daemon_pids() == before

    seen(server, site.view("two"))
    text, pid = page(server)
    assert text == "Hello two" and pid not in before
    server.wait_for_log("hello/views.py (1 file) changed: restart-by-hook")

    before = warm(server, 2, "Hello two")
    seen(server, site.greeting("Hi"))
    text, pid = page(server)
    assert text == "Hi two" and pid not in before
    server.wait_for_log("development.ini (1 file) changed: restart-by-hook")

    before = warm(server, 2, "Hi two")
    seen(server, site.write("hello/views.py", "def home(request:\n"))
    assert page(server)[0] == "Hi two"
    log = server.wait_for_log("new code not loaded, old code still serving")
    assert "hello/views.py:1" in log
    assert server.daemon_pids() == before
    seen(server, site.view("three"))
    assert page(server)[0] == "Hi three"

    before = warm(server, 2, "Hi three")
    seen(server, site.view("four", extra="BROKEN = undefined_name"))
    assert page(server)[0] == "Hi three"
    log = server.wait_for_log("new code not loaded, old code still serving", count=2)
    assert "hello/views.py:4: NameError" in log
    assert server.daemon_pids() == before
    seen(server, site.view("five"))
    assert page(server)[0] == "Hi five"


def test_pyramid_under_apache_embedded_mode(
    pyramid_site: PyramidSite, apache: Callable[..., Apache]
) -> None:
    """One Apache child: a view edit and an ini edit are reloaded in-process (loadapp
    runs again in the script), a broken edit keeps the old code until the fix."""
    site = pyramid_site
    server = apache(site, mode="embedded")
    (pid,) = warm(server, 1, "Hello one")
    seen(server, site.view("two"), count=1)
    assert page(server) == ("Hello two", pid)
    seen(server, site.greeting("Hi"), count=1)
    assert page(server) == ("Hi two", pid)
    seen(server, site.view("three", extra="BROKEN = undefined_name"), count=1)
    assert page(server) == ("Hi two", pid)
    server.wait_for_log("NameError")
    site.view("four")  # the broken file is still pending: `seen` cannot tell the fix
    wait_for(lambda: page(server) == ("Hi four", pid), 10, "the fix served")
    assert server.error_log().count("reloaded in") == 3


def test_pyramid_under_pserve(pyramid_site: PyramidSite) -> None:
    """`pserve development.ini` (no --reload): edits are served by the same process."""
    site, port = pyramid_site, free_port()
    ini = site.ini.read_text().replace("127.0.0.1:6543", f"127.0.0.1:{port}")
    site.write("development.ini", ini)
    argv = [sys.executable, "-m", "pyramid.scripts.pserve", "development.ini"]

    def served() -> tuple[str, int]:
        status, body = get(port)
        assert status == 200, body
        text, _, pid = body.rpartition(" ")
        return text, int(pid)

    with running(argv, site.root, port) as printed:
        text, pid = served()
        assert text == "Hello one"
        site.view("two")
        wait_for(lambda: served() == ("Hello two", pid), 10, "the view edit")
        site.greeting("Hi")
        wait_for(lambda: served() == ("Hi two", pid), 10, "the ini edit")
    output = printed[0]
    assert "hello/views.py (1 file) changed: reload" in output
    assert "development.ini (1 file) changed: reload" in output


def test_pyramid_under_the_serve_command(pyramid_site: PyramidSite) -> None:
    """`reload-middleware serve examples/pyramid/app.wsgi`: the filter's middleware is
    used as it is, and edits are reloaded in the same process."""
    site, port = pyramid_site, free_port()
    argv = [sys.executable, "-m", "reload_middleware", "serve", "app.wsgi", "--port", str(port)]
    with running(argv, site.root, port) as printed:
        status, body = get(port)
        pid = body.rpartition(" ")[2]
        assert (status, body) == (200, f"Hello one {pid}")
        site.view("two")
        wait_for(lambda: get(port) == (200, f"Hello two {pid}"), 10, "the view edit")
    assert "hello/views.py (1 file) changed: reload" in printed[0]


class DebianApache(Apache):
    """The same server with Debian's packaged mod_wsgi instead of the one built by pip."""

    def config(self) -> str:
        return super().config().replace(str(module_location(self.venv)), str(DEBIAN_MOD_WSGI))


def test_pyramid_under_debian_s_mod_wsgi(pyramid_site: PyramidSite) -> None:
    """Debian's mod_wsgi 4.9.4, daemon mode preloaded: the hook restarts the daemon and
    the next request gets the edit; mod_wsgi logs its older restart line."""
    require(apache_available(DEFAULT_VENV))
    require(None if DEBIAN_MOD_WSGI.exists() else "apt-get install libapache2-mod-wsgi-py3")
    site = pyramid_site
    probe = site.root / "probe" / "probe.wsgi"
    server = DebianApache(
        DEFAULT_VENV, prepare_run_dir(), script=site.script, python_path=site.root,
        processes=1,
        aliases=f"WSGIScriptAlias /probe {probe} process-group=site application-group=%{{GLOBAL}}",
    )
    with server:
        (pid,) = warm(server, 1, "Hello one")
        seen(server, site.view("two"), count=1)
        text, new = page(server)
        assert text == "Hello two" and new != pid
        log = server.wait_for_log("hello/views.py (1 file) changed: restart-by-hook")
        assert "mod_wsgi/4." in log
        server.wait_for_log(f"mod_wsgi (pid={pid}): Force restart of process 'site'.")
    shutil.rmtree(server.run_dir, ignore_errors=True)
