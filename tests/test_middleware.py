"""When to act: the request path, the latch, strategies, in-process reloads, the hook."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import threading
import time
import types
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import pytest
from watchdog.events import FileModifiedEvent

from helpers import DAY, MakeProject, Project, Until, call, save
from reload_middleware import ReloadMiddleware, config, track
from reload_middleware.acting import strategies
from reload_middleware.watching import changes
from reload_middleware.watching.watcher import Watcher

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

with warnings.catch_warnings():
    # WebOb 1.8 (under WebTest) imports the stdlib's deprecated cgi module.
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import webtest

class CountingReload(strategies.Reload):
    """The real in-process reload, counting how often it acts."""

    acts: ClassVar[list[int]] = []

    def act(self, retry: str, *, since: int | None = None) -> strategies.Outcome:
        self.acts.append(threading.get_ident())
        return super().act(retry, since=since)


@pytest.fixture
def reloads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The in-process reload strategy, counted: one entry per action."""
    acts: list[int] = []
    monkeypatch.setattr(CountingReload, "acts", acts)
    monkeypatch.setitem(strategies.STRATEGIES, "reload", CountingReload)
    return acts


# --- the hot path ---------------------------------------------------------------------------


def test_quiet_requests_make_no_filesystem_calls(
    project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing changed, 100 requests reach the app without a single stat call."""
    app = webtest.TestApp(project().application)
    assert app.get("/").text == "old"
    calls: list[str] = []
    requests = threading.get_ident()  # webtest calls the app in this thread

    def counting(real: Callable[..., Any], name: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == requests:
                calls.append(name)
            return real(*args, **kwargs)

        return wrapper

    with monkeypatch.context() as patch:
        patch.setattr(os, "stat", counting(os.stat, "os.stat"))
        patch.setattr(os, "lstat", counting(os.lstat, "os.lstat"))
        patch.setattr(changes, "stat_of", counting(changes.stat_of, "stat_of"))
        texts = {app.get("/").text for _ in range(100)}
    assert texts == {"old"}
    assert calls == []


class RecordingEnviron(dict[str, Any]):
    """A WSGI environ that notes every key the middleware looks up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def test_environ_keys_are_read_once_and_never_from_headers(
    project: MakeProject, until: Until
) -> None:
    """SetEnv options apply from the first request; no request header can change them."""
    made = project()
    app = made.application
    headers = {"HTTP_RELOAD_MIDDLEWARE_ENABLED": "off", "HTTP_RELOAD_MIDDLEWARE.ENABLED": "off"}
    first = RecordingEnviron(headers, **{"reload_middleware.settle": "0.02"})
    assert call(app, environ=first).body == b"old"
    assert {config.environ_key(name) for name in config.PARSERS} <= first.read

    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    second = RecordingEnviron(headers, **{"reload_middleware.enabled": "off"})
    assert call(app, environ=second).body == b"new"  # reloaded: the late 'off' was not read
    assert not {key for key in second.read if key.startswith("reload_middleware.")}
    assert not {key for key in first.read | second.read if key.startswith("HTTP_")}


@pytest.mark.parametrize("how", ["keyword", "environ-key", "os-variable", "django-runserver"])
def test_enabled_off_stops_reloading(
    how: str,
    project: MakeProject,
    reloads: list[int],
    fresh_process: Watcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """enabled=off, by keyword, SetEnv or environment variable, or in the process that
    Django's runserver restarts itself at each change: no watching, no reloads."""
    if how == "os-variable":
        monkeypatch.setenv("RELOAD_MIDDLEWARE_ENABLED", "off")
    if how == "django-runserver":  # its autoreloader's child, as `manage.py runserver` runs it
        monkeypatch.setenv("RUN_MAIN", "true")
        monkeypatch.setitem(sys.modules, "django.utils.autoreload", types.ModuleType("autoreload"))
    made = project(**({"enabled": False} if how == "keyword" else {}))
    extra = {"reload_middleware.enabled": "off"} if how == "environ-key" else {}
    threads = threading.active_count()
    assert call(made.application, extra=extra).body == b"old"

    made.save_views("TEXT = 'new'\n")
    # Even an event from a watcher that some other app in the process started:
    fresh_process.deliver(FileModifiedEvent(str(made.views)))
    assert call(made.application, extra=extra).body == b"old"
    assert reloads == []
    assert not fresh_process.started
    assert threading.active_count() == threads
    said = [r.getMessage() for r in caplog.records if "restarts this process" in r.getMessage()]
    assert len(said) == (how == "django-runserver"), said


def test_enabled_off_installs_nothing_even_after_imports(
    project: MakeProject, tmp_path: Path
) -> None:
    """A switched-off middleware adds no import finder and no thread, requests or not,
    and serves the app as it is."""
    finders, threads = list(sys.meta_path), threading.active_count()
    made = project(enabled=False)
    app = made.application
    assert call(app).body == b"old"
    (tmp_path / "late_import.py").write_text("")
    importlib.import_module("late_import")  # the app imports something on a request
    for _ in range(100):
        assert call(app).body == b"old"
    assert sys.meta_path == finders
    assert threading.active_count() == threads
    assert app.pending == frozenset()


# --- acting once --------------------------------------------------------------------------


def test_many_simultaneous_requests_reload_once_and_all_see_new_code(
    project: MakeProject, reloads: list[int], until: Until
) -> None:
    """50 requests arriving together after a save: one reload, and every one gets new code."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    reloads.clear()
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)

    barrier = threading.Barrier(50)
    bodies: list[bytes] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait(timeout=5)
            bodies.append(call(app).body)
        except BaseException as exc:  # reported below, not as a thread warning
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not [t for t in threads if t.is_alive()]
    assert errors == []
    assert bodies == [b"new"] * 50
    assert len(reloads) == 1
    assert app.pending == frozenset()


# --- in-process reload ---------------------------------------------------------------------


def test_in_process_reload_serves_new_code_from_the_same_process(
    project: MakeProject, until: Until
) -> None:
    """Edit a module, and the next request is answered by the new code, same process."""
    made = project()
    app = webtest.TestApp(made.application)
    assert app.get("/").text == "old"
    pid = os.getpid()

    made.save_views("TEXT = 'new and longer'\n")
    until(lambda: str(made.views) in made.application.pending)
    assert app.get("/").text == "new and longer"
    assert os.getpid() == pid
    assert made.application.pending == frozenset()
    assert sys.modules[made.name] is not made.module  # the script ran again
    assert sys.modules[made.name].application is made.module.application  # not wrapped twice


def test_a_second_save_within_the_same_second_is_not_served_stale(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two saves of the same size within one second: the second is loaded, not old bytecode."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    made = project()
    second = (time.time_ns() - DAY) // 10**9 * 10**9  # a whole second, long ago
    os.utime(made.views, ns=(second + 100_000_000,) * 2)
    app = webtest.TestApp(made.application)
    assert app.get("/").text == "old"
    assert made.application.pending == frozenset()
    made.save_views("TEXT = 'one'\n")
    os.utime(made.views, ns=(second + 200_000_000,) * 2)
    until(lambda: str(made.views) in made.application.pending)
    assert app.get("/").text == "one"
    assert os.path.exists(importlib.util.cache_from_source(str(made.views)))

    made.save_views("TEXT = 'two'\n")  # same size, same whole second as 'one'
    os.utime(made.views, ns=(second + 300_000_000,) * 2)
    until(lambda: str(made.views) in made.application.pending)
    assert app.get("/").text == "two"


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
def test_a_syntax_error_keeps_the_old_code_until_the_fix(
    debug: bool, project: MakeProject, reloads: list[int], until: Until
) -> None:
    """A broken save keeps old code serving (debug: a 500 naming file and line); a fix loads."""
    made = project(debug=debug)
    app = made.application
    assert call(app).body == b"old"
    reloads.clear()

    made.save_views("TEXT = 'new'\nBROKEN = (\n")
    until(lambda: str(made.views) in app.pending)
    response = call(app)
    if debug:
        assert response.status.startswith("500")
        assert f"{made.views}:2".encode() in response.body
        assert b"SyntaxError" in response.body
        assert call(app).status.startswith("500")  # until fixed
    else:
        assert (response.status, response.body) == ("200 OK", b"old")
    assert reloads == []  # the broken code was never executed

    made.save_views("TEXT = 'fixed'\n")
    until(lambda: call(app).body == b"fixed")
    assert len(reloads) == 1


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
def test_an_error_while_reloading_keeps_the_old_app_and_modules(
    debug: bool, project: MakeProject, until: Until
) -> None:
    """A module that compiles but raises on import: old code and old modules stay in place."""
    made = project(debug=debug)
    app = made.application
    assert call(app).body == b"old"
    views, script = sys.modules[f"{made.package}.views"], sys.modules[made.name]

    made.save_views("TEXT = 1 / 0\n")
    until(lambda: str(made.views) in app.pending)
    response = call(app)
    if debug:
        assert response.status.startswith("500")
        assert f"{made.views}:1".encode() in response.body
        assert b"ZeroDivisionError" in response.body
    else:
        assert (response.status, response.body) == ("200 OK", b"old")
    assert sys.modules[f"{made.package}.views"] is views
    assert sys.modules[made.name] is script

    made.save_views("TEXT = 'fixed'\n")
    until(lambda: call(app).body == b"fixed")


def test_a_new_module_that_fails_to_import_is_watched_until_fixed(
    project: MakeProject, until: Until
) -> None:
    """A new module broken on its first import: saving its fix is what loads the new code."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    helpers = made.views.with_name("helpers.py")
    helpers.write_text("VALUE = 1 / 0\n")  # imported by nobody yet: not tracked
    made.save_views("from . import helpers\nTEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"old"

    save(helpers, "VALUE = 1\n")
    until(lambda: call(app).body == b"new")


def test_a_watched_directory_relative_to_the_script_reloads(
    project: MakeProject, reloads: list[int], tmp_path: Path, until: Until
) -> None:
    """watch=['templates'] next to the script: saving a template reloads."""
    template = tmp_path.resolve() / "templates" / "blog" / "post.html"
    template.parent.mkdir(parents=True)
    template.write_text("<p>old</p>")
    made = project(watch=["templates"])
    assert call(made.application).body == b"old"
    reloads.clear()
    save(template, "<p>new</p>")
    until(lambda: str(template) in made.application.pending)
    assert call(made.application).body == b"old"
    assert len(reloads) == 1


def test_with_a_trigger_file_only_touching_it_reloads(
    project: MakeProject, fresh_process: Watcher, tmp_path: Path, until: Until
) -> None:
    """trigger='reload.trigger': code edits wait until the file is touched, then all load."""
    trigger = tmp_path.resolve() / "reload.trigger"
    trigger.write_text("")
    os.utime(trigger, ns=(time.time_ns() - DAY,) * 2)
    made = project(trigger="reload.trigger")
    app = made.application
    assert call(app).body == b"old"
    made.save_views("TEXT = 'new'\n")
    fresh_process.deliver(FileModifiedEvent(str(made.views)))
    assert app.pending == frozenset()
    assert call(app).body == b"old"

    os.utime(trigger)  # touch
    until(lambda: str(trigger) in app.pending)
    assert call(app).body == b"new"


def test_a_save_that_lands_during_the_reload_is_loaded_next(
    project: MakeProject, until: Until
) -> None:
    """A save made while the reload runs (a formatter on save) is served by a later request."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    # This version is saved again while it is being loaded: the reload runs 'v2', disk has 'v3'.
    made.save_views(
        "import os\nTEXT = 'v2'\n"
        "with open(__file__ + '.tmp', 'w') as f:\n    f.write(\"TEXT = 'v3'\\n\")\n"
        "os.replace(__file__ + '.tmp', __file__)\n"
    )
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"v2"
    until(lambda: call(app).body == b"v3", timeout=2.0)


def test_a_package_directory_replaced_by_a_checkout_stays_watched(
    project: MakeProject, until: Until
) -> None:
    """After `git checkout` removes and recreates a package directory, saving in it reloads."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    shutil.rmtree(made.views.parent)  # the checkout removes the package ...
    made.views.parent.mkdir()  # ... and writes it anew
    (made.views.parent / "__init__.py").write_text("")
    made.views.write_text("TEXT = 'checked out'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"checked out"

    for text in ("edited after", "edited again"):  # the second: no late checkout event helps
        made.save_views(f"TEXT = {text!r}\n")
        until(lambda: str(made.views) in app.pending, timeout=2.0)
        assert call(app).body == text.encode()


def test_reloads_add_no_threads(project: MakeProject, until: Until) -> None:
    """Ten reloads later the process runs as many threads as after the first request."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    threads = threading.active_count()
    for n in range(10):
        made.save_views(f"TEXT = 'v{n}'\n")
        until(lambda: str(made.views) in app.pending)
        assert call(app).body == f"v{n}".encode()
        assert threading.active_count() == threads


def test_executing_the_script_again_adds_no_threads_or_watches(
    project: MakeProject, fresh_process: Watcher, until: Until
) -> None:
    """mod_wsgi re-running the script file (its own reload) piles up no threads or watches."""
    made = project()
    assert call(made.application).body == b"old"
    threads, directories = threading.active_count(), fresh_process.directories
    for _ in range(10):
        made.execute()
        assert call(made.application).body == b"old"
        assert threading.active_count() == threads
        assert fresh_process.directories == directories
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in made.application.pending)
    assert call(made.application).body == b"new"


def test_track_adds_a_file_to_every_middleware(
    project: MakeProject, reloads: list[int], until: Until
) -> None:
    """reload_middleware.track('settings.ini'): saving that file reloads too."""
    made = project()
    settings = made.root / "settings.ini"
    settings.write_text("[app]\n")
    assert call(made.application).body == b"old"
    reloads.clear()
    track(str(settings))
    save(settings, "[app]\ndebug = true\n")
    until(lambda: str(settings) in made.application.pending)
    assert call(made.application).body == b"old"
    assert len(reloads) == 1


CLOSABLE = """\
from {package} import views
from reload_middleware import ReloadMiddleware


class App:
    closed = 0

    def __call__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [views.TEXT.encode()]

    def close(self):
        self.closed += 1


app = App()
application = ReloadMiddleware(app, **{options!r})
"""


def test_the_replaced_app_is_closed_once_no_request_uses_it(
    fresh_process: Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, until: Until
) -> None:
    """An app with close() (a pool, a cache) is closed after its last request, not during it."""
    monkeypatch.syspath_prepend(str(tmp_path.resolve()))
    made = Project(tmp_path.resolve(), {"settle": 0.01}, CLOSABLE)
    app = made.application
    assert call(app).body == b"old"
    old = sys.modules[made.name].app
    in_flight = call(app, close=False)  # a response still being sent

    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"new"
    new = sys.modules[made.name].app
    assert (old.closed, new.closed) == (0, 0)
    in_flight.close()
    assert (old.closed, new.closed) == (1, 0)
    call(app)
    assert (old.closed, new.closed) == (1, 0)


SHARED_APP = """\
from {package} import views
from reload_middleware import ReloadMiddleware
from shared_app import app  # an installed package: not reloaded

application = ReloadMiddleware(app, **{options!r})
"""


class ClosableApp:
    """An app object that outlives the script (it comes from an installed package)."""

    def __init__(self) -> None:
        self.closed = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"closed" if self.closed else b"open"]

    def close(self) -> None:
        self.closed += 1


def test_an_app_kept_across_a_reload_is_not_closed(
    fresh_process: Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, until: Until
) -> None:
    """An app object from an installed package stays open when the script reloads."""
    shared = types.ModuleType("shared_app")  # no file: never dropped by a reload
    shared.app = ClosableApp()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shared_app", shared)
    monkeypatch.syspath_prepend(str(tmp_path.resolve()))
    made = Project(tmp_path.resolve(), {"settle": 0.01}, SHARED_APP)
    app = made.application
    assert call(app).body == b"open"
    save(made.script, made.script.read_text() + "# edited\n")
    until(lambda: str(made.script) in app.pending)
    assert call(app).body == b"open"
    assert shared.app.closed == 0


# --- mod_wsgi's hook --------------------------------------------------------------------------


def fake_mod_wsgi(monkeypatch: pytest.MonkeyPatch, process_group: str) -> None:
    """Pretend to run under mod_wsgi: daemon mode when `process_group` is not empty."""
    module = types.ModuleType("mod_wsgi")
    module.process_group = process_group  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mod_wsgi", module)


def test_the_hook_asks_mod_wsgi_to_restart_a_daemon_after_a_confirmed_change(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In daemon mode the hook says 'restart' once something really changed, and keeps saying it."""
    fake_mod_wsgi(monkeypatch, "site")
    made = project()
    app, script = made.application, str(made.script)
    assert app.reload_required(script) is False

    os.chmod(made.views, 0o600)  # an attribute event that changes nothing compared
    until(lambda: str(made.views) in app.pending)
    assert app.reload_required(script) is False

    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    assert app.reload_required(script) is True
    assert app.reload_required(script) is True


def test_the_hook_never_restarts_in_embedded_mode(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded mode: the hook says no; the next request reloads in-process instead."""
    fake_mod_wsgi(monkeypatch, "")
    made = project()
    app, script = made.application, str(made.script)
    assert app.reload_required(script) is False
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    assert app.reload_required(script) is False
    assert call(app, extra={"mod_wsgi.process_group": ""}).body == b"new"


@pytest.mark.parametrize("own", [False, True], ids=["offered", "own-hook-kept"])
def test_a_mod_wsgi_script_gets_the_hook_without_an_extra_line(
    own: bool, project: MakeProject
) -> None:
    """A .wsgi script that builds the middleware exposes reload_required, unless it has one."""
    made = project()
    name = f"_mod_wsgi_{uuid.uuid4().hex}"
    source = made.script.read_text()
    if own:
        source = "def reload_required(resource):\n    return False\n\n" + source
    module = types.ModuleType(name)  # what mod_wsgi makes of a script file
    module.__file__ = str(made.script)
    sys.modules[name] = module
    exec(compile(source, str(made.script), "exec"), vars(module))
    assert (module.reload_required == module.application.reload_required) is not own


def test_a_mod_wsgi_script_reloads_in_process_in_embedded_mode(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded mode: a .wsgi script is re-run in-process, and mod_wsgi sees it as current."""
    fake_mod_wsgi(monkeypatch, "")
    made = project()
    name = f"_mod_wsgi_{uuid.uuid4().hex}"
    module = types.ModuleType(name)  # what mod_wsgi makes of a script file
    module.__file__ = str(made.script)
    module.__mtime__ = os.stat(made.script).st_mtime_ns // 1000  # type: ignore[attr-defined]
    sys.modules[name] = module
    exec(compile(made.script.read_text(), str(made.script), "exec"), vars(module))
    app = module.application
    embedded = {"mod_wsgi.process_group": ""}
    assert call(app, extra=embedded).body == b"old"

    save(made.script, made.script.read_text() + "# edited\n")
    made.save_views("TEXT = 'new'\n")
    until(lambda: {str(made.views), str(made.script)} <= app.pending)
    assert call(app, extra=embedded).body == b"new"
    reloaded = sys.modules[name]
    assert reloaded is not module and reloaded.application is app
    assert reloaded.__mtime__ == os.stat(made.script).st_mtime_ns // 1000


def test_an_importable_script_runs_again_where_its_modules_can_import_it_back(
    project: MakeProject, until: Until
) -> None:
    """A script imported by name (gunicorn's `app:application`) runs again in
    sys.modules, as an import runs it: a module it imports may import it back."""
    made = project()
    assert call(made.application).body == b"old"
    made.save_views(f"import {made.name} as script\nTEXT = 'new'\n")
    until(lambda: str(made.views) in made.application.pending)
    assert call(made.application).body == b"new"
    assert sys.modules[f"{made.package}.views"].script is sys.modules[made.name]


def test_mod_wsgi_finds_the_old_script_module_until_the_new_one_is_complete(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded mode: mod_wsgi looks the script module up by name for every request.
    While the script runs again (here: as it imports views) that lookup finds the old
    module, complete, never a half-executed one without `application` (mod_wsgi's 404)
    or none (mod_wsgi would execute the script itself); afterwards, the new one."""
    fake_mod_wsgi(monkeypatch, "")
    made = project()
    name = f"_mod_wsgi_{uuid.uuid4().hex}"
    module = types.ModuleType(name)  # what mod_wsgi makes of a script file
    module.__file__ = str(made.script)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(made.script.read_text(), str(made.script), "exec"), vars(module))
    app = module.application
    embedded = {"mod_wsgi.process_group": ""}
    assert call(app, extra=embedded).body == b"old"

    made.save_views(f"import sys\nFOUND = sys.modules.get({name!r})\nTEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app, extra=embedded).body == b"new"
    views = sys.modules[f"{made.package}.views"]
    assert views.FOUND is module and module.application is app
    assert sys.modules[name] is not module and sys.modules[name].application is app


def test_other_mod_wsgi_script_modules_stay_loaded_across_a_reload(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mod_wsgi-express: its handler.wsgi (a mod_wsgi script module that executed the app
    script) stays in sys.modules, so mod_wsgi does not execute the app a second time."""
    fake_mod_wsgi(monkeypatch, "")
    made = project()
    handler = made.root / "handler.wsgi"
    handler.write_text("handler = None\n")
    name = f"_mod_wsgi_{uuid.uuid4().hex}"
    module = types.ModuleType(name)  # what mod_wsgi makes of express's handler script
    module.__file__ = str(handler)
    monkeypatch.setitem(sys.modules, name, module)
    app = made.application
    embedded = {"mod_wsgi.process_group": ""}
    assert call(app, extra=embedded).body == b"old"
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app, extra=embedded).body == b"new"
    assert sys.modules.get(name) is module


# --- restarts by signal ---------------------------------------------------------------------


DAEMON = {"mod_wsgi.process_group": "site"}  # mod_wsgi daemon mode, hook not in use


def changed_daemon(make: MakeProject, until: Until, **options: Any) -> ReloadMiddleware:
    """A daemon-mode app that served one request, then saw a confirmed change."""
    made = make(**options)
    assert call(made.application, extra=DAEMON).body == b"old"
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in made.application.pending)
    return made.application


RETRIES = [
    # (id, retry option, method, whether the triggering request gets a 307 to itself)
    ("auto-GET", "auto", "GET", True),
    ("auto-HEAD", "auto", "HEAD", True),
    ("auto-POST", "auto", "POST", False),
    ("always-POST", "always", "POST", True),
    ("never-GET", "never", "GET", False),
]


@pytest.mark.parametrize(
    ("retry", "method", "redirected"),
    [r[1:] for r in RETRIES],
    ids=[r[0] for r in RETRIES],
)
def test_a_signal_restart_answers_first_then_kills_once(
    retry: str,
    method: str,
    redirected: bool,
    project: MakeProject,
    kills: list[tuple[int, int]],
    until: Until,
) -> None:
    """The request that finds the change is answered (307 or old code) before SIGINT, sent once."""
    app = changed_daemon(project, until, retry=retry)
    response = call(app, method, "/blog", {**DAEMON, "QUERY_STRING": "page=2"}, close=False)
    if redirected:
        assert response.status == "307 Temporary Redirect"
        assert response.headers["Location"] == "/blog?page=2"
    else:
        assert (response.status, response.body) == ("200 OK", b"old")
    assert kills == []
    response.close()
    assert kills == [(os.getpid(), signal.SIGINT)]
    response.close()
    call(app, method, "/blog", DAEMON)
    assert kills == [(os.getpid(), signal.SIGINT)]


def test_a_gunicorn_worker_exits_gracefully_after_the_response(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under gunicorn a POST is answered by the old code, then the worker gets SIGTERM."""
    sent: list[tuple[int, int]] = []

    def kill(pid: int, signum: int) -> None:
        sent.append((pid, signum))

    monkeypatch.setitem(
        strategies.STRATEGIES, "restart-by-sigterm",
        lambda: strategies.Terminate(kill=kill, workers=set)
    )
    gunicorn = {"SERVER_SOFTWARE": "gunicorn/23.0.0"}
    made = project()
    assert call(made.application, extra=gunicorn).body == b"old"
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in made.application.pending)
    response = call(made.application, "POST", extra=gunicorn, close=False)
    assert (response.status, response.body, sent) == ("200 OK", b"old", [])
    response.close()
    assert sent == [(os.getpid(), signal.SIGTERM)]


def test_windows_apache_restarts_through_its_parent_after_the_response(
    project: MakeProject, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows, embedded, mode=restart: Apache is asked to restart once the answer is sent."""
    calls: list[int] = []

    class Httpd:
        def ap_signal_parent(self, how: int) -> None:
            calls.append(how)

    loaded: list[str] = []

    def load(name: str) -> Httpd:
        loaded.append(name)
        return Httpd()

    fake_mod_wsgi(monkeypatch, "")
    monkeypatch.setattr(strategies, "WINDOWS", True)
    monkeypatch.setitem(
        strategies.STRATEGIES, "restart-apache", lambda: strategies.ApacheWindows(load=load)
    )
    embedded = {"mod_wsgi.process_group": ""}
    made = project(mode="restart")
    assert call(made.application, extra=embedded).body == b"old"
    made.save_views("TEXT = 'new'\n")
    until(lambda: str(made.views) in made.application.pending)
    response = call(made.application, extra=embedded, close=False)
    assert (response.body, calls) == (b"old", [])
    response.close()
    call(made.application, extra=embedded)
    assert (loaded, calls) == (["libhttpd.dll"], [strategies.ApacheWindows.RESTART])


LOCATIONS = [
    # (id, SCRIPT_NAME, PATH_INFO, QUERY_STRING, Location)
    ("plain", "", "/x", "", "/x"),
    ("query", "", "/x", "a=1&b=2", "/x?a=1&b=2"),
    ("mounted", "/app", "/x", "", "/app/x"),
    ("root", "", "", "", "/"),
    ("double-slash", "", "//evil.example/x", "", "/evil.example/x"),
    ("triple-slash", "", "///evil.example/x", "", "/evil.example/x"),
    ("backslash", "", "/\\evil.example/x", "", "/%5Cevil.example/x"),
]


@pytest.mark.parametrize(
    ("script_name", "path_info", "query", "expected"),
    [r[1:] for r in LOCATIONS],
    ids=[r[0] for r in LOCATIONS],
)
def test_the_retry_location_is_relative_to_this_site(
    script_name: str,
    path_info: str,
    query: str,
    expected: str,
    project: MakeProject,
    kills: list[tuple[int, int]],
    until: Until,
) -> None:
    """The 307 goes back to the same path on the same site, never to another host."""
    app = changed_daemon(project, until)
    extra = {**DAEMON, "SCRIPT_NAME": script_name, "QUERY_STRING": query}
    response = call(app, "GET", path_info, extra)
    location = response.headers["Location"]
    assert response.status == "307 Temporary Redirect"
    assert location.startswith("/") and location[1:2] not in ("/", "\\")
    assert urlsplit(location).netloc == "" and urlsplit(location).scheme == ""
    assert location == expected
    assert len(kills) == 1
