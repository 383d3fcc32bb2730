"""What the real-server tests share: the test app, its probe, and request helpers."""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from apache import Apache, ApacheSite, Response, wait_for

APP = """\
import json, os
from webapp import views
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    body = json.dumps({{"pid": os.getpid(), "version": views.VERSION,
                       "method": environ["REQUEST_METHOD"]}}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

application = ReloadMiddleware(app, **{options})
"""


# Served by the same daemon processes as the app, without going through the middleware:
# tells which paths the middleware of this process has seen change (`.pending`).
PROBE = """\
import json, os, sys

def application(environ, start_response):
    pending = set()
    for module in list(sys.modules.values()):
        app = getattr(module, "application", None)
        if type(app).__name__ == "ReloadMiddleware":
            pending |= app.pending
    body = json.dumps({"pid": os.getpid(), "pending": sorted(pending)}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


T = TypeVar("T")


def together(count: int, call: Callable[[], T]) -> list[T]:
    """`call` on `count` threads released at the same moment, as concurrent clients; the
    results in the order they were started."""
    start = threading.Barrier(count)

    def one() -> T:
        start.wait(10)
        return call()

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one) for _ in range(count)]
        return [future.result(60) for future in futures]


def file_clock_after(moment: int) -> bool:
    """Whether a file written now is stamped after `moment` (file clocks lag by a tick)."""
    with tempfile.TemporaryFile() as probe:
        return os.fstat(probe.fileno()).st_ctime_ns > moment


def require(reason: str | None) -> None:
    """Skip with the reason here; in CI a skipped server test is a failure."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"server test cannot run in CI: {reason}")
    pytest.skip(reason)


class Site(ApacheSite):
    """The test app: webapp/views.py holds VERSION; app.wsgi wraps it in the middleware."""

    def set_version(self, version: str, module: str = "webapp/views.py") -> Path:
        return self.write(module, f"VERSION = {version!r}\n")


def holds(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Assert `predicate` stays true for a whole observation window."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while time.monotonic() < deadline:
        assert predicate(), what
        pause.wait(0.05)


def answer(server: Apache, **kw: Any) -> dict[str, Any]:
    response = server.get("/", **kw)
    assert response.status == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def pids_answering(server: Apache, count: int = 2, **expect: Any) -> set[int]:
    """Requests until `count` daemon processes have answered; returns their pids."""
    seen: set[int] = set()

    def enough() -> bool:
        result = answer(server)
        assert all(result[k] == v for k, v in expect.items()), result
        seen.add(result["pid"])
        return len(seen) == count

    wait_for(enough, 20, f"{count} daemon processes answering")
    return seen


warm = pids_answering


def seen(server: Apache, path: Path, count: int = 2) -> None:
    """Wait until `count` processes have seen `path` change (the probe reads `.pending`)."""
    saw: set[int] = set()

    def enough() -> bool:
        report = server.get("/probe").json()
        if str(path) in report["pending"]:
            saw.add(report["pid"])
        return len(saw) == count

    wait_for(enough, 10, f"{count} processes seeing {path} change")


def follow(server: Apache, method: str = "GET", hops: int = 8) -> tuple[Response, int]:
    """One request, following 307s to the same URL as a browser would."""
    for hop in range(hops):
        response = server.get("/", method=method)
        if response.status != 307:
            return response, hop
        assert response.headers["location"] == "/"
    raise AssertionError(f"more than {hops} redirects")


# mod_wsgi's line when a daemon asks for its own restart: "Forcing restart of daemon
# process" from 4.9 and 6.x, "Force restart of process" from 5.0.
FORCED = "(?:Forcing restart|Force restart of process)"
# Its line when it loads a script: "Loading WSGI script 'PATH'" or, in some versions,
# "Loading Python script file 'PATH'".
LOADING = "(?:WSGI script|Python script file) '{path}'"


def restarts(server: Apache) -> int:
    """Daemon processes that asked mod_wsgi for a restart (each of a process's threads
    that got the answer logs the line once)."""
    return len(set(re.findall(rf"\[pid (\d+):tid \d+\] .*?{FORCED}", server.error_log())))
