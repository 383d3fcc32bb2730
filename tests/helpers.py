"""Helpers for the unit tests: a project on disk with a script that builds the middleware."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.util import setup_testing_defaults

import pytest

from reload_middleware import ReloadMiddleware, interpreter
from reload_middleware.watching import read_times, watcher

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment



class Until(Protocol):
    """The `until` fixture: until(condition, timeout=5.0), see `wait_until`."""

    def __call__(self, condition: Callable[[], object], timeout: float = 5.0) -> None: ...


def file_clock_after(moment: int, probe: Path) -> bool:
    """Whether a file written now is stamped after `moment` (file clocks lag by a tick)."""
    probe.write_text("")
    return probe.stat().st_ctime_ns > moment


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait for `condition()` to hold, polling every 10 ms; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout} s: {condition}")
        pause.wait(0.01)


DAY = 86_400 * 10**9  # nanoseconds

SCRIPT = """\
from {package} import views
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [views.TEXT.encode()]


application = ReloadMiddleware(app, **{options!r})
"""

# A page of HTML, for live reload (its tag goes before </body>).
HTML_SCRIPT = """\
from {package} import views
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    body = ("<html><body>" + views.TEXT + "</body></html>").encode()
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]


application = ReloadMiddleware(app, **{options!r})
"""


def new_process(
    monkeypatch: pytest.MonkeyPatch, started: Callable[[], int] = time.time_ns
) -> watcher.Watcher:
    """The interpreter's shared state as a new process has it (a watcher of its own, not
    started); `started()` is when the process started (ns). Put back by `monkeypatch`,
    with `sys.meta_path`; stopping the watcher is the caller's part.
    """
    place = interpreter.Interpreter()
    monkeypatch.setattr(interpreter, "_CURRENT", place)
    monkeypatch.setattr(read_times, "process_started_ns", started)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # the finder goes with it
    return place.watcher


def save(path: Path, text: str) -> None:
    """Save as editors do: write a temporary file, rename it over the real one."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text)
    os.replace(temp, path)


class Project:
    """A package `pkg_*` with views.TEXT, and a script module that builds the middleware.

    The files predate the test by a day, like a checkout older than the server process.
    """

    def __init__(self, root: Path, options: dict[str, Any], script: str = SCRIPT) -> None:
        tag = uuid.uuid4().hex[:8]
        self.root = root
        self.package = f"pkg_{tag}"
        self.name = f"app_{tag}"
        self.views = root / self.package / "views.py"
        self.script = root / f"{self.name}.py"
        self.views.parent.mkdir()
        files = {
            self.views.parent / "__init__.py": "",
            self.views: "TEXT = 'old'\n",
            self.script: script.format(package=self.package, options=options),
        }
        old = time.time_ns() - DAY
        for path, text in files.items():
            path.write_text(text)
            os.utime(path, ns=(old, old))
        self.module = self.execute()

    def execute(self) -> types.ModuleType:
        """Load the script file under its name, as a WSGI server loads an app module."""
        spec = importlib.util.spec_from_file_location(self.name, self.script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.name] = module
        spec.loader.exec_module(module)
        return module

    @property
    def application(self) -> ReloadMiddleware:
        app = sys.modules[self.name].application
        assert isinstance(app, ReloadMiddleware)
        return app

    def save_views(self, text: str) -> None:
        save(self.views, text)


MakeProject = Callable[..., Project]


@dataclass
class Response:
    status: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    iterable: Iterable[bytes] = ()

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        self.status, self.headers = status, dict(headers)
        return lambda data: None

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()


SECRET = "s3cret-token-0123456789"
CONTROL = {"control": "/__reload__", "secret": SECRET}  # the control endpoint's options


def status(app: WSGIApplication) -> Any:
    """The control endpoint's status report (the app was built with CONTROL)."""
    body = call(app, "GET", CONTROL["control"], {"HTTP_AUTHORIZATION": f"Bearer {SECRET}"}).body
    return json.loads(body)


def call(
    app: WSGIApplication,
    method: str = "GET",
    path: str = "/",
    extra: Mapping[str, str] | None = None,
    *,
    close: bool = True,
    environ: WSGIEnvironment | None = None,
) -> Response:
    """One request straight through the WSGI interface; the body is read, then closed."""
    environ = {} if environ is None else environ
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO=path, **(extra or {}))
    response = Response()
    response.iterable = app(environ, response.start_response)
    response.body = b"".join(response.iterable)
    if close:
        response.close()
    return response


