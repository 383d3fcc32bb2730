"""The strategies, each with fakes for what it would signal or call."""

from __future__ import annotations

import os
import signal
import typing
from collections.abc import Iterable
from typing import Any

import pytest

from reload_middleware.acting import strategies
from reload_middleware.integrations import servers
from reload_middleware.watching import read_times


def old_app(environ: Any, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"old code"]


def call(restart: strategies.Outcome, method: str = "GET") -> tuple[str, bytes, Any]:
    """Run one request through a Restart's answer; returns status, body and the iterable."""
    seen: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/x", "SCRIPT_NAME": "", "QUERY_STRING": ""}
    assert isinstance(restart, strategies.Restart)
    body = restart.answer(old_app, environ, lambda status, headers: seen.append(status))  # type: ignore[arg-type]
    return seen[0], b"".join(body), body


def test_signal_fires_after_close_and_only_once() -> None:
    """The restart signal is sent after the response is closed, and only once."""
    kills: list[tuple[int, int]] = []
    restart = strategies.Interrupt(kill=lambda pid, sig: kills.append((pid, sig))).act("auto")
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
    strategy = strategies.Terminate(kill=lambda pid, sig: kills.append(sig), workers=set)
    restart = strategy.act("auto")
    status, text, body = call(restart, "POST")
    assert (status, text, kills) == ("200 OK", b"old code", [])
    body.close()
    assert kills == [signal.SIGTERM]


def test_gunicorn_replaces_the_workers_older_than_the_change_before_its_307() -> None:
    """A GET: SIGTERM to the siblings that started before the change, then to this
    worker, before the 307 is sent, so that none of them takes the retried request."""
    old, fresh, since = before_and_since()
    kills: list[tuple[int, int]] = []
    strategy = strategies.Terminate(kill=lambda pid, sig: kills.append((pid, sig)),
                                    workers=lambda: {old, fresh})
    restart = strategy.act("auto", since=since)
    status, _, body = call(restart)
    assert status.startswith("307")
    assert kills == [(old, signal.SIGTERM), (os.getpid(), signal.SIGTERM)]
    body.close()
    call(restart)[2].close()  # a request it had taken meanwhile: no second round
    assert len(kills) == 2


def test_reload_strategy_reloads_in_process() -> None:
    """The in-process strategy says so, and the request goes on to the reloaded app."""
    assert strategies.Reload().act("auto") == strategies.IN_PROCESS


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

    restart = strategies.ApacheWindows(load=load).act("auto")
    assert restart is not None and loaded == ["libhttpd.dll"]
    status, text, body = call(restart)
    assert (status, text) == ("200 OK", b"old code")  # no 307: Apache restarts gracefully
    body.close()
    assert calls == [("ap_signal_parent", strategies.ApacheWindows.RESTART)]


class FakeUwsgi:
    """The parts of uWSGI's `uwsgi` module the strategy uses; calls go to `calls`."""

    def __init__(self, calls: list[str], opt: dict[str, object], master: int = 4242) -> None:
        self.calls = calls
        self.opt = opt
        self._master = master
        self.pids: list[int] = [os.getpid()]  # uwsgi.workers() lists this worker too

    def masterpid(self) -> int:
        return self._master

    def reload(self) -> bool:
        self.calls.append("reload")
        return True

    def workers(self) -> list[dict[str, int]]:
        return [{"pid": pid} for pid in self.pids]


def before_and_since() -> tuple[int, int, int]:
    """A sibling started before a change (init, pid 1), one started since (this
    process), and the change's time between them."""
    started = read_times.process_start_ns()
    assert started is not None
    return 1, os.getpid(), started - 5_000_000


def uwsgi_worker(
    opt: dict[str, object] | None = None, master: int = 4242, siblings: Iterable[int] = ()
) -> tuple[strategies.Uwsgi, list[str]]:
    """A Uwsgi strategy over a fake module; signals are recorded as 'SIGHUP to self'."""
    calls: list[str] = []

    def kill(pid: int, sig: int) -> None:
        who = "self" if pid == os.getpid() else "sibling"
        calls.append(f"{signal.Signals(sig).name} to {who}")

    server = FakeUwsgi(calls, opt if opt is not None else {}, master)
    server.pids.extend(siblings)
    return strategies.Uwsgi(server=server, kill=kill), calls


def test_uwsgi_preforked_reloads_the_instance_before_the_307() -> None:
    """Preforked: uwsgi.reload() and the worker's own graceful exit, in that order (the
    master must be reloading when it reaps us), before the 307 goes out: no worker of
    the old code takes the retried request."""
    strategy, calls = uwsgi_worker({"master": True, "processes": b"2"})
    restart = strategy.act("auto")
    status, _, body = call(restart)
    assert status.startswith("307") and calls == ["reload", "SIGHUP to self"]
    body.close()
    call(restart)[2].close()  # a request that arrived meanwhile: 307 again, no second ask
    assert calls == ["reload", "SIGHUP to self"]


def test_uwsgi_lazy_apps_replaces_the_workers_older_than_the_change() -> None:
    """--lazy-apps: SIGHUP, uWSGI's graceful exit of a worker, to the siblings started
    before the change, then to itself; no reload of the instance."""
    old, _, since = before_and_since()
    strategy, calls = uwsgi_worker({"lazy-apps": True}, siblings=[old])
    restart = strategy.act("auto", since=since)
    call(restart)[2].close()
    assert calls == ["SIGHUP to sibling", "SIGHUP to self"]


def test_uwsgi_every_worker_asks_no_marker() -> None:
    """Each worker that confirms a change asks for the reload itself (uWSGI's master
    ignores requests while it reloads): nothing shared decides that one may not."""
    first, calls_first = uwsgi_worker()
    second, calls_second = uwsgi_worker()
    for strategy in (first, second):
        restart = strategy.act("auto")
        assert restart is not None
        call(restart)[2].close()
    assert calls_first == calls_second == ["reload", "SIGHUP to self"]


@pytest.mark.parametrize(("retry", "method"), [("auto", "POST"), ("never", "GET")])
def test_uwsgi_old_code_answers_where_retry_says_so(retry: str, method: str) -> None:
    """retry=auto: a POST gets the old code, then the worker goes; retry=never: a GET too."""
    strategy, calls = uwsgi_worker()
    restart = strategy.act(retry)
    assert restart is not None
    status, text, body = call(restart, method)
    assert (status, text, calls) == ("200 OK", b"old code", [])
    body.close()
    assert calls == ["reload", "SIGHUP to self"]


@pytest.mark.parametrize(
    ("opt", "calls"),
    [
        ({"lazy-apps": True}, ["SIGHUP to self"]),  # no sibling older than the change
        ({"lazy": b"1"}, ["SIGHUP to self"]),
        ({"lazy-apps": True, "mule": True}, ["reload", "SIGHUP to self"]),
        ({"lazy-apps": True, "shared-import": b"myproject.tasks"}, ["reload", "SIGHUP to self"]),
        ({"lazy-apps": b"false"}, ["reload", "SIGHUP to self"]),
    ],
    ids=["lazy-apps", "lazy", "lazy-apps-with-a-mule", "lazy-apps-shared-import", "lazy-off"],
)
def test_uwsgi_worker_restarts_alone_where_it_loads_the_app(
    opt: dict[str, object], calls: list[str]
) -> None:
    """Workers that load the app themselves restart alone; the instance reloads when the
    master or mules and spoolers run the app's code too."""
    strategy, seen = uwsgi_worker(opt)
    restart = strategy.act("auto")
    assert restart is not None
    call(restart)[2].close()
    assert seen == calls


def test_uwsgi_without_a_master_reloads_in_process() -> None:
    """No master (masterpid() is 0): nothing would start a new worker, so reload here."""
    strategy, calls = uwsgi_worker(master=0)
    assert strategy.act("auto") == strategies.IN_PROCESS
    assert calls == []


@pytest.mark.parametrize(
    ("opt", "alone"),
    [
        ({}, False),
        ({"lazy-apps": True}, True),
        ({"lazy-apps": b"true"}, True),
        ({"lazy-apps": b"Off"}, False),
        ({"lazy-apps": [b"1", b"0"]}, False),
        ({"lazy-apps": [True, b"yes"]}, True),
        ({"lazy": True}, True),
        ({"lazy-apps": True, "spooler": b"/var/spool/app"}, False),
        ({"lazy-apps": True, "shared-python-import": b"tasks"}, False),
        ({"lazy-apps": True, "import": b"tasks"}, True),
    ],
    ids=["preforked", "flag", "true", "Off", "last-wins-off", "last-wins-on", "old-lazy",
         "spooler", "shared-import", "import-runs-in-each-worker"],
)
def test_restarts_alone(opt: dict[str, object], alone: bool) -> None:
    """uwsgi.opt as uWSGI exports it: True for a bare flag, bytes, lists when repeated."""
    assert strategies.restarts_alone(opt) is alone


def test_table_names_every_action() -> None:
    """Every action the server table can choose has a strategy."""
    assert set(strategies.STRATEGIES) == set(typing.get_args(servers.Action))
