"""Real gunicorn, 2 workers: sync, gthread and --preload."""

from __future__ import annotations

import functools
import json
import threading
import time
from pathlib import Path

import pytest
from apache import free_port, wait_for
from procs import GUNICORN_KINDS, answer, fetch, gunicorn, running

pytestmark = pytest.mark.integration


def version_everywhere(port: int, version: str, checks: int = 20) -> bool:
    """True when `checks` requests in a row (redirects followed) all get `version`."""
    for _ in range(checks):
        status, body, _ = fetch(port)
        assert status == 200, body
        if answer_of(body)["version"] != version:
            return False
    return True


def answer_of(body: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(body)
    return result


def workers(port: int) -> set[object]:
    """Requests until both workers have answered; their pids."""
    pids: set[object] = set()

    def both() -> bool:
        status, body, _ = fetch(port)
        assert status == 200, body
        pids.add(answer_of(body)["pid"])
        return len(pids) == 2

    wait_for(both, 20, "both workers answering")
    return pids


@pytest.mark.parametrize("kind", list(GUNICORN_KINDS), ids=list(GUNICORN_KINDS))
def test_edit_is_served_by_every_worker(project: Path, kind: str) -> None:
    """After an edit every request gets new code and none fails.

    Workers are replaced, except under --preload, where each reloads in-process.
    """
    port = free_port()
    with running(gunicorn(port, kind), project, port) as printed:
        before = workers(port)
        (project / "webapp" / "views.py").write_text("VERSION = '2'\n")
        wait_for(lambda: version_everywhere(port, "2"), 20, "every worker serving the edit")
        after = workers(port)
        assert all(answer(port)["version"] == "2" for _ in range(20))
    if kind == "preload":
        assert after == before
        assert "changed: reload (gunicorn)" in printed[0]
    else:
        assert not after & before


def test_import_error_never_takes_the_server_down(project: Path) -> None:
    """A NameError at import restarts nothing: debug page, server up, the fix served next."""
    port = free_port()
    with running(gunicorn(port, "sync"), project, port) as printed:
        workers(port)
        (project / "webapp" / "views.py").write_text("VERSION = undefined_name\n")
        wait_for(lambda: fetch(port)[0] == 500, 20, "the debug page for the NameError")
        for _ in range(20):
            status, body, _ = fetch(port)
            assert (status, "views.py:1: NameError" in body) == (500, True), body[-300:]
        (project / "webapp" / "views.py").write_text("VERSION = 'fixed'\n")
        wait_for(lambda: fetch(port)[0] == 200, 20, "the fix being served")
        assert version_everywhere(port, "fixed")
    assert "new code not loaded, old code still serving" in printed[0]
    assert "Worker failed to boot" not in printed[0]
    # Only the fix restarted the workers: a worker that acted replaced the other too
    # (docs/getting-started.md, gunicorn), and nothing acted on the error.
    assert 1 <= printed[0].count("changed: restart-by-sigterm") <= 2


def sent_at_least(count: list[int], wanted: int) -> bool:
    return count[0] >= wanted


def test_load_while_editing(project: Path) -> None:
    """2,000 GETs from 8 clients while 20 edits land: none fails, the end is the last version."""
    port = free_port()
    failures: list[str] = []
    late: list[str] = []
    last_edit = [float("inf")]
    count = [0]
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if count[0] >= 2000:
                    return
                count[0] += 1
            started = time.monotonic()
            try:
                status, body, _ = fetch(port)
            except OSError as exc:
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(f"{status} {body[:200]}")
            elif started > last_edit[0] + 0.3 and answer_of(body)["version"] != "20":
                late.append(body)

    with running(gunicorn(port, "gthread"), project, port):
        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for n in range(1, 21):
            wait_for(functools.partial(sent_at_least, count, n * 80), 60, "requests flowing")
            (project / "webapp" / "views.py").write_text(f"VERSION = '{n}'\n")
        last_edit[0] = time.monotonic()
        for thread in threads:
            thread.join(120)
    assert count[0] == 2000
    assert failures == []
    assert late == []


def test_os_variables_configure_it(project: Path) -> None:
    """RELOAD_MIDDLEWARE_WATCH makes a data directory count; a bad value is only logged."""
    (project / "data").mkdir()
    (project / "data" / "settings.ini").write_text("a = 1\n")
    port = free_port()
    options = {"watch": "data", "settle": "soon"}
    with running(gunicorn(port, "sync"), project, port, options) as printed:
        before = workers(port)
        (project / "data" / "settings.ini").write_text("a = 22\n")
        wait_for(lambda: not workers(port) & before, 20, "workers replaced after the edit")
    assert "option 'RELOAD_MIDDLEWARE_SETTLE' got 'soon'" in printed[0]
    assert "settings.ini (1 file) changed: restart-by-sigterm" in printed[0]


IMPORTS = """\
import os as _os, sys as _sys
with open({log!r}, "a") as _log:  # who imported the app: a worker, or a preflight ("-c")
    _log.write(f"{{_os.getpid()}} {{_sys.argv[0]}}\\n")
"""


@pytest.mark.parametrize("saved", ["VERSION = '2'\n", "VERSION = undefined_name\n"],
                         ids=["loads", "fails"])
def test_the_import_preflight_runs_once_ahead_of_the_request(
    project: Path, tmp_path_factory: pytest.TempPathFactory, saved: str
) -> None:
    """A save is imported in a separate process as soon as it settles, once for both
    workers; the request after it restarts on that result (or keeps the old code for
    its failure) and imports nothing more (docs/how-it-works.md)."""
    log = tmp_path_factory.mktemp("imports") / "imports.log"
    script = project / "app.py"
    script.write_text(IMPORTS.format(log=str(log)) + script.read_text())

    def preflights() -> int:
        return sum(line.split()[1] == "-c" for line in log.read_text().splitlines())

    port = free_port()
    lines: list[str] = []
    with running(gunicorn(port, "sync"), project, port, live=lines) as printed:
        workers(port)
        (project / "webapp" / "views.py").write_text(saved)
        wait_for(lambda: any("imported ahead of the next request" in x for x in lines), 20,
                 "the preflight run ahead")
        assert preflights() == 1
        if saved.endswith("'2'\n"):
            wait_for(lambda: version_everywhere(port, "2"), 20, "every worker serving it")
        else:
            wait_for(lambda: fetch(port)[0] == 500, 20, "the debug page for the NameError")
        assert preflights() == 1, log.read_text()
    ahead = [x for x in lines if "imported ahead of the next request" in x]
    assert len(ahead) == 1, ahead
    assert ("new code loads" in ahead[0]) == saved.endswith("'2'\n"), ahead[0]
    assert "Worker failed to boot" not in printed[0]
