"""Never silently stale: the schedules that once served old code, with real watchers."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import helpers
from helpers import DAY, MakeProject, Project, Until, call, file_clock_after
from reload_middleware import interpreter, middleware, track, tracking
from reload_middleware.watching import read_times

SECOND = 10**9

LAZY_SCRIPT = """\
import importlib
from {package} import views
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    if environ["PATH_INFO"] == "/lazy":  # a function-level import, as Django's views
        return [importlib.import_module("{package}.lazy").TEXT.encode()]
    return [views.TEXT.encode()]


application = ReloadMiddleware(app, **{options!r})
"""

PAGE_SCRIPT = """\
import pathlib
from reload_middleware import ReloadMiddleware

PAGE = (pathlib.Path(__file__).parent / "data" / "page.txt").read_text()


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [PAGE.encode()]


application = ReloadMiddleware(app, **{options!r})
"""


def old_file(path: Path, text: str) -> Path:
    """A file written a day ago, as a checkout older than the process."""
    path.write_text(text)
    then = time.time_ns() - DAY
    os.utime(path, ns=(then, then))
    return path


def lazy_project(make: MakeProject, **options: object) -> Project:
    made = make(LAZY_SCRIPT, **options)
    old_file(made.views.parent / "lazy.py", "TEXT = 'old lazy'\n")
    return made


def actions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "changed:" in r.getMessage()]


class Gate(importlib.abc.MetaPathFinder):
    """A finder that holds the import of one module until released, then finds nothing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entered = threading.Event()
        self.release = threading.Event()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.name:
            self.entered.set()
            self.release.wait(5)
        return None


def test_a_module_imported_while_another_request_looks_is_tracked(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request imports a module while another request looks for new modules and lowers
    the flag: the module is still tracked, and its next save is served."""
    made = lazy_project(project)
    app = made.application
    assert call(app).body == b"old"
    gate = Gate(f"{made.package}.lazy")
    monkeypatch.setattr(sys, "meta_path", [sys.meta_path[0], gate, *sys.meta_path[1:]])
    lazy: list[bytes] = []
    importer = threading.Thread(target=lambda: lazy.append(call(app, path="/lazy").body))
    importer.start()
    assert gate.entered.wait(5)
    assert call(app).body == b"old"  # looks while the import is under way
    gate.release.set()
    importer.join(5)
    assert lazy == [b"old lazy"]
    helpers.save(made.views.parent / "lazy.py", "TEXT = 'new lazy'\n")
    until(lambda: call(app, path="/lazy").body == b"new lazy")


def test_a_lazily_imported_module_that_fails_to_import_keeps_the_old_code(
    project: MakeProject, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """A save of a module the app imports only on a request (Django's models and views),
    which compiles but cannot be imported: the reload fails as it would in the import
    preflight, and both pages keep their old code until the fix (README, "How it works")."""
    made = lazy_project(project)
    app = made.application
    lazy = made.views.parent / "lazy.py"
    assert call(app, path="/lazy").body == b"old lazy"
    assert call(app).body == b"old"  # its look tracks lazy.py, imported since the last
    helpers.save(lazy, "from .missing import TEXT\n")
    until(lambda: str(lazy) in app.pending)
    assert (call(app, path="/lazy").body, call(app).body) == (b"old lazy", b"old")
    assert any("new code not loaded" in r.getMessage() and "missing" in r.getMessage()
               for r in caplog.records)
    helpers.save(lazy, "TEXT = 'new lazy'\n")
    until(lambda: call(app, path="/lazy").body == b"new lazy")


def test_imports_under_concurrency_never_serve_old_code(
    project: MakeProject, until: Until
) -> None:
    """Eight threads request a lazily imported module of a fresh process at once, then
    saves follow: once a save is seen, every request gets it."""
    made = lazy_project(project)
    app = made.application
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(call(app, path="/lazy").body))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == [b"old lazy"] * 8
    # The look that tracks lazy.py may have come before every import of it: the next
    # request's does (a save before it would count by the import's time, seen then).
    assert call(app, path="/lazy").body == b"old lazy"
    for n in range(3):
        text = f"TEXT = 'lazy {n}'\n"
        helpers.save(made.views.parent / "lazy.py", text)
        until(lambda: str(made.views.parent / "lazy.py") in app.pending)
        assert call(app, path="/lazy").body == f"lazy {n}".encode()


def test_a_reload_while_another_request_imports_a_module_breaks_nothing(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module being imported by one request when another reloads is left to finish (no
    KeyError in the import system), and counts as changed, so it is loaded again."""
    made = lazy_project(project)
    gate = Gate("unused")
    monkeypatch.setitem(sys.modules, "gate_in_flight", gate)
    (made.views.parent / "lazy.py").write_text(
        "import sys\n"
        "gate = sys.modules['gate_in_flight']\n"
        "gate.entered.set()\n"
        "gate.release.wait(5)\n"
        "TEXT = 'lazy'\n"
    )
    app = made.application
    assert call(app).body == b"old"
    lazy: list[bytes] = []
    importer = threading.Thread(target=lambda: lazy.append(call(app, path="/lazy").body))
    importer.start()
    assert gate.entered.wait(5)
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"new"  # reloads while the import is under way
    gate.release.set()
    importer.join(5)
    assert lazy == [b"lazy"]
    assert call(app, path="/lazy").body == b"lazy"
    assert call(app).body == b"new"



def test_a_watch_path_given_by_the_environ_counts_from_the_build(
    project: MakeProject, tmp_path: Path, until: Until
) -> None:
    """A file read at import, under a watch path the first request names (SetEnv), saved
    between the build and that request: the first request serves the new file."""
    data = tmp_path.resolve() / "data"
    data.mkdir()
    page = old_file(data / "page.txt", "old page")
    made = project(PAGE_SCRIPT)
    built = time.time_ns()
    until(lambda: file_clock_after(built, tmp_path / "probe"))
    page.write_text("new page")
    environ = {"reload_middleware.watch": str(data)}
    assert call(made.application, extra=environ).body == b"new page"


def test_a_watch_path_file_saved_while_the_middleware_is_built_counts(
    project: MakeProject, tmp_path: Path, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save that lands after the app read the file, while the middleware is being
    built (choosing its state directory takes milliseconds, more with names planted in
    the temp directory): the first request, naming the watch path, serves the new file."""
    data = tmp_path.resolve() / "data"
    data.mkdir()
    page = old_file(data / "page.txt", "old page")
    chosen = interpreter.Interpreter.state_directory

    def saved_meanwhile(self: interpreter.Interpreter) -> Any:
        started = time.time_ns()
        until(lambda: file_clock_after(started, tmp_path / "probe"))
        page.write_text("new page")
        return chosen(self)

    monkeypatch.setattr(interpreter.Interpreter, "state_directory", saved_meanwhile)
    made = project(PAGE_SCRIPT)
    assert call(made.application, extra={"reload_middleware.watch": str(data)}).body == (
        b"new page")


def test_a_watch_path_given_by_the_environ_is_quiet_when_nothing_changed(
    project: MakeProject, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same with no save: no action, as with the keyword."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    data = tmp_path.resolve() / "data"
    data.mkdir()
    old_file(data / "page.txt", "old page")
    made = project(PAGE_SCRIPT)
    for _ in range(3):
        assert call(made.application, extra={"reload_middleware.watch": str(data)}).body == (
            b"old page")
    assert actions(caplog) == []


class FakeModWsgi(types.ModuleType):
    """mod_wsgi as a script loaded by a request sees it: `request_data()` works only on
    a thread that is serving a request."""

    def __init__(self) -> None:
        super().__init__("mod_wsgi")
        self.process_group = "site"
        self.serving = threading.local()

    def request_data(self) -> dict[str, object]:
        if not getattr(self.serving, "active", False):
            raise RuntimeError("no active request for thread")
        return {}


def loaded_by_a_request(
    make: MakeProject, monkeypatch: pytest.MonkeyPatch, until: Until, tmp_path: Path,
    *, save_while_loading: bool = False
) -> tuple[Project, dict[str, str], FakeModWsgi]:
    """A daemon that has just started; its files are written after that, then a request
    starts and loads the script on this thread (`save_while_loading`: a module is saved
    again after that request started, before the load read it)."""
    started = time.time_ns()
    monkeypatch.setattr(read_times, "process_started_ns", lambda: started)
    until(lambda: file_clock_after(started, tmp_path / "probe"))
    monkeypatch.setattr(read_times, "TICK_NS", 0)  # one clock for files and requests here
    monkeypatch.setattr(helpers, "DAY", 0)  # the files are written after the process start
    fake = FakeModWsgi()
    monkeypatch.setitem(sys.modules, "mod_wsgi", fake)
    request_start: list[int] = []
    execute = Project.execute

    def load(self: Project) -> types.ModuleType:
        request_start.append(time.time_ns() // 1000 * 1000)
        if save_while_loading:
            self.views.write_text("TEXT = 'old'\n")
        fake.serving.active = True
        return execute(self)

    monkeypatch.setattr(Project, "execute", load)
    made = make(mode="reload")  # in-process, so a test process is never signalled
    environ = {"mod_wsgi.process_group": "site",
               "mod_wsgi.request_start": str(request_start[0] // 1000)}
    return made, environ, fake


def test_a_script_loaded_by_a_request_counts_from_that_request(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    until: Until, tmp_path: Path,
) -> None:
    """Not preloaded: files saved after the daemon started but before the request that
    loaded them are no change; the first requests are served, no action."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made, environ, _ = loaded_by_a_request(project, monkeypatch, until, tmp_path)
    other: list[bytes] = []
    waiting = threading.Thread(target=lambda: other.append(call(made.application,
                                                                extra=environ).body))
    waiting.start()  # another thread may reach the middleware first: it waits for this one
    assert call(made.application, extra=environ).body == b"old"
    waiting.join(5)
    assert other == [b"old"]
    assert actions(caplog) == []


def test_a_save_while_a_request_loads_the_script_counts(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    until: Until, tmp_path: Path,
) -> None:
    """A file newer than the loading request's start may have changed after it was read."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made, environ, _ = loaded_by_a_request(project, monkeypatch, until, tmp_path,
                                            save_while_loading=True)
    call(made.application, extra=environ)
    assert len(actions(caplog)) == 1


def test_without_the_loading_request_the_process_start_decides(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    until: Until, tmp_path: Path,
) -> None:
    """If the request that loaded the script never reaches the middleware, another waits
    a bounded time, then judges by the process start: one action too many, not old code."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    monkeypatch.setattr(middleware, "LOAD_WAIT", 0.05)
    made, environ, fake = loaded_by_a_request(project, monkeypatch, until, tmp_path)
    fake.serving.active = False
    other = threading.Thread(target=call, args=(made.application,), kwargs={"extra": environ})
    other.start()
    other.join(5)
    assert len(actions(caplog)) == 1


def test_a_failed_change_is_retried_on_the_next_change_not_the_next_import(
    project: MakeProject, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """After a syntax error, imports made by requests do not run the preflight again."""
    made = lazy_project(project)
    app = made.application
    assert call(app).body == b"old"
    made.save_views("TEXT = (\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"old"
    assert call(app, path="/lazy").body == b"old lazy"  # a module imported afterwards
    assert call(app).body == b"old"
    failures = [r for r in caplog.records if "new code not loaded" in r.getMessage()]
    assert len(failures) == 1
    made.save_views("TEXT = 'fixed'\n")
    until(lambda: call(app).body == b"fixed")


TRACKING_SCRIPT = """\
import reload_middleware
from {package} import views
from reload_middleware import ReloadMiddleware

reload_middleware.track("settings.ini")


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [views.TEXT.encode()]


application = ReloadMiddleware(app, **{options!r})
"""


def test_track_in_the_script_adds_its_paths_once_however_many_reloads(
    project: MakeProject, until: Until
) -> None:
    """A script that calls track() and is executed again by each reload tracks it once."""
    made = project(TRACKING_SCRIPT)
    for n in range(3):
        made.save_views(f"TEXT = 'v{n}'\n")

        def shows(n: int = n) -> bool:
            return call(made.application).body == f"v{n}".encode()

        until(shows)
    assert list(interpreter.current().tracked) == [os.path.abspath("settings.ini")]
    track("settings.ini")
    assert len(interpreter.current().tracked) == 1


DAEMON = {"mod_wsgi.process_group": "site"}


def test_a_request_handed_over_after_a_restart_is_answered_without_another(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch,
    kills: list[tuple[int, int]],
) -> None:
    """A young daemon's first hook call leaves the decision to the request: one that
    started before the process is answered by it (mod_wsgi would otherwise chain
    restarts); the next request restarts through the hook."""
    monkeypatch.setitem(sys.modules, "mod_wsgi", FakeModWsgi())
    made = project()
    app = made.application
    assert app.reload_required(str(made.script)) is False  # first call: left to the request
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    started = read_times.process_started_ns()
    before = {**DAEMON, "mod_wsgi.request_start": str((started - SECOND) // 1000)}
    assert call(app, extra=before).body == b"old"
    assert kills == []
    assert app.reload_required(str(made.script)) is True


def test_a_first_request_that_came_since_the_process_started_restarts_it(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch,
    kills: list[tuple[int, int]],
) -> None:
    """The same first request, started after the process: the hook declined, so the
    process restarts by signal after a 307 that the new process answers."""
    monkeypatch.setitem(sys.modules, "mod_wsgi", FakeModWsgi())
    made = project()
    app = made.application
    made.save_views("TEXT = 'new'\n")
    assert app.reload_required(str(made.script)) is False
    until(lambda: str(made.views) in app.pending)
    since = {**DAEMON, "mod_wsgi.request_start": str(time.time_ns() // 1000)}
    response = call(app, extra=since)
    assert response.status.startswith("307")
    assert kills == [(os.getpid(), signal.SIGINT)]



def test_the_flag_stays_up_until_the_first_request_has_read_its_environ(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mod_wsgi's hook finds nothing changed before any request: the flag stays up all
    the same, or a request past its hook call would find it down and be served before
    the first request's environ (SetEnv watch paths) has been read and judged."""
    monkeypatch.setitem(sys.modules, "mod_wsgi", FakeModWsgi())
    monkeypatch.setattr(tracking, "YOUNG_NS", 0)
    made = project()
    app, latch = made.application, made.application._latch
    flags = []
    finish = latch.finish

    def watched(*args: object, **kwargs: bool) -> None:
        finish(*args, **kwargs)  # type: ignore[arg-type]
        flags.append(latch.dirty)

    monkeypatch.setattr(latch, "finish", watched)
    assert app.reload_required(str(made.script)) is False
    assert flags == [True]
    assert call(app, extra=DAEMON).body == b"old"  # reads its environ
    assert app.reload_required(str(made.script)) is False
    assert flags == [True, False] and not latch.dirty


def test_a_setenv_watch_path_changed_before_the_first_request_restarts_an_older_daemon(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch, kills: list[tuple[int, int]],
    tmp_path: Path,
) -> None:
    """A daemon past its first 2 s: its hook decided the first request knowing nothing of
    the SetEnv watch paths. A file there, saved since the app was built, is acted on by
    that request once its environ names them: a 307 the new process answers, not the
    old template."""
    monkeypatch.setitem(sys.modules, "mod_wsgi", FakeModWsgi())
    monkeypatch.setattr(tracking, "YOUNG_NS", 0)
    page = tmp_path.resolve() / "templates" / "page.txt"  # in the project's root
    page.parent.mkdir()
    page.write_text("old")
    os.utime(page, ns=(time.time_ns() - DAY,) * 2)
    made = project()
    page.write_text("new")
    app = made.application
    assert app.reload_required(str(made.script)) is False  # it knows no watch path yet
    first = {**DAEMON, "reload_middleware.watch": str(page.parent),
             "mod_wsgi.request_start": str(time.time_ns() // 1000)}
    assert call(app, extra=first).status.startswith("307")
    assert kills == [(os.getpid(), signal.SIGINT)]
