"""The strategies, each with fakes for what it would signal or call."""

from __future__ import annotations

import signal
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from reload_middleware import strategies


class FakeActor:
    """Just enough of the middleware for a strategy: an app and the retry option."""

    def __init__(self, retry: str = "auto") -> None:
        self.retry = retry
        self.reloads = 0

    def app(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"old code"]

    def reload(self) -> bool:
        self.reloads += 1
        return True


def call(restart: strategies.Restart, method: str = "GET") -> tuple[str, bytes, Any]:
    """Run one request through a Restart's answer; returns status, body and the iterable."""
    seen: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/x", "SCRIPT_NAME": "", "QUERY_STRING": ""}
    body = restart.answer(FakeActor(), environ, lambda status, headers: seen.append(status))  # type: ignore[arg-type]
    return seen[0], b"".join(body), body


def test_signal_fires_after_close_and_only_once() -> None:
    """The restart signal is sent after the response is closed, and only once."""
    kills: list[tuple[int, int]] = []
    restart = strategies.Signal(kill=lambda pid, sig: kills.append((pid, sig))).act(FakeActor())
    assert restart is not None
    status, _, body = call(restart)
    assert status.startswith("307") and kills == []
    body.close()
    assert [sig for _, sig in kills] == [signal.SIGINT]
    call(restart)[2].close()
    assert len(kills) == 1


def test_gunicorn_uses_sigterm_and_post_gets_old_code() -> None:
    """gunicorn workers get SIGTERM; a POST is answered by the old code first."""
    kills: list[int] = []
    restart = strategies.Gunicorn(kill=lambda pid, sig: kills.append(sig)).act(FakeActor())
    assert restart is not None
    status, text, body = call(restart, "POST")
    assert (status, text) == ("200 OK", b"old code")
    body.close()
    assert kills == [signal.SIGTERM]


def test_reload_strategy_reloads_in_process() -> None:
    """The in-process strategy asks the middleware to reload and lets the request go on."""
    actor = FakeActor()
    assert strategies.Reload().act(actor) is None
    assert actor.reloads == 1


def test_windows_restart_calls_ap_signal_parent() -> None:
    """On Windows, mode=restart asks Apache's parent to restart through ap_signal_parent."""
    calls: list[tuple[str, int]] = []

    class Httpd:
        def ap_signal_parent(self, kind: int) -> None:
            calls.append(("ap_signal_parent", kind))

    loaded: list[str] = []

    def load(name: str) -> Httpd:
        loaded.append(name)
        return Httpd()

    restart = strategies.ApacheWindows(load=load).act(FakeActor())
    assert restart is not None and loaded == ["libhttpd.dll"]
    status, text, body = call(restart)
    assert (status, text) == ("200 OK", b"old code")  # no 307: Apache restarts gracefully
    body.close()
    assert calls == [("ap_signal_parent", strategies.ApacheWindows.RESTART)]


def test_uwsgi_asks_for_one_reload_per_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of several workers seeing one change, only the first asks uWSGI to reload."""
    reloads: list[int] = []
    fake = types.ModuleType("uwsgi")
    fake.masterpid = lambda: 4242  # type: ignore[attr-defined]
    fake.started_on = 1700000000  # type: ignore[attr-defined]
    fake.reload = lambda: reloads.append(1)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgi", fake)
    (tmp_path / "reload-middleware-uwsgi-4242-1699999999").write_text("")
    first = strategies.Uwsgi(tmp=str(tmp_path)).act(FakeActor())
    second = strategies.Uwsgi(tmp=str(tmp_path)).act(FakeActor())
    assert first is not None and second is not None
    call(first)[2].close()
    call(second)[2].close()
    assert reloads == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["reload-middleware-uwsgi-4242-1700000000"]
    fake.started_on = 1700000005  # type: ignore[attr-defined]  # after the reload
    third = strategies.Uwsgi(tmp=str(tmp_path)).act(FakeActor())
    assert third is not None
    call(third)[2].close()
    assert reloads == [1, 1]


def test_table_names_every_action() -> None:
    """Every action the server table can choose has a strategy."""
    assert set(strategies.STRATEGIES) == {
        "reload", "hook", "signal", "gunicorn", "uwsgi", "apache-windows"
    }
