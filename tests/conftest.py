"""Shared fakes for unit tests."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import SCRIPT, MakeProject, Project, Until, new_process, wait_until
from reload_middleware.acting import strategies
from reload_middleware.watching import watcher


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[watcher.Watcher]:
    """The package's process-wide state, new for one test and put back after it.

    A process watcher of its own (stopped at the end: no thread outlives the test), no
    shared latches or `track()` paths. The process counts as started when a middleware
    is built, after the test wrote its files, as a server starts after a checkout (a
    file changed since the process started counts as changed). Modules loaded from
    `tmp_path` leave sys.modules,
    and the modules an in-process reload dropped (every project module, these tests
    too) come back.
    """
    saved = dict(sys.modules)
    threads = threading.active_count()
    fresh = new_process(monkeypatch)
    yield fresh
    fresh.stop()
    for name, module in list(sys.modules.items()):
        if name not in saved and str(getattr(module, "__file__", "")).startswith(str(tmp_path)):
            del sys.modules[name]
    sys.modules.update(saved)
    left = threading.enumerate()
    assert len(left) <= threads, f"a thread outlived the test: {left}"


@pytest.fixture(autouse=True)
def private_state(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path | None:
    """A state directory of each unit test's own (the first candidate), outside its
    project; servers in integration tests find theirs as they would anywhere."""
    if request.node.get_closest_marker("integration"):
        return None
    runtime = tmp_path_factory.mktemp("runtime")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime / "reload-middleware"


@pytest.fixture
def until() -> Until:
    """until(condition, timeout=5.0): wait for it to hold, polling every 10 ms."""
    return wait_until


@pytest.fixture
def project(
    fresh_process: watcher.Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MakeProject:
    """make(script=SCRIPT, **options): a new project in tmp_path, importable, its script
    executed."""
    root = tmp_path.resolve()
    monkeypatch.syspath_prepend(str(root))

    def make(script: str = SCRIPT, **options: Any) -> Project:
        return Project(root, {"settle": 0.01, **options}, script)

    return make


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The signal strategy with a fake os.kill: one (pid, signal) entry per kill."""
    sent: list[tuple[int, int]] = []

    def kill(pid: int, signum: int) -> None:
        sent.append((pid, signum))

    monkeypatch.setitem(
        strategies.STRATEGIES, "restart-by-sigint", lambda: strategies.Interrupt(kill=kill)
    )
    return sent
