"""What to do about a change: one class per action, one table, one method each.

A strategy's `act()` runs on the request that found the change, under the action lock,
after settle and preflight; `since` is when the change was made (wall clock ns). It
returns what is to happen and calls nothing back: a `Restart` when this process is on
its way out (every later request of the process gets `Restart.answer()`), or
`IN_PROCESS` when the middleware is to reload the app here (reexecute.py).

>>> STRATEGIES["restart-by-sigint"]                             # doctest: +ELLIPSIS
<class '...Interrupt'>
>>> Reload().act(retry="auto") is IN_PROCESS
True
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from ..integrations import servers
from . import response_bodies, responses, siblings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

InProcess = Literal["in-process"]
IN_PROCESS: Final[InProcess] = "in-process"


class Restart:
    """A process that will be replaced: answer (307 or old code), then fire once.

    `early`: a 307 fires before it is sent, where the restart is a graceful exit that
    lets the request in flight finish. The workers then take no more requests before
    the client comes back with it, so it is not bounced again by one of them.
    """

    def __init__(self, fire: Callable[[], None], retry: str, *, early: bool = False) -> None:
        self._fire = fire
        self._retry = retry
        self._early = early
        self._lock = threading.Lock()
        self._fired = False

    def answer(
        self, app: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """The retry page or `app`'s answer; the restart fires once it is delivered."""
        if servers.wants_retry(self._retry, environ.get("REQUEST_METHOD", "GET")):
            if self._early:
                self.fire()
            body = responses.retry(environ, start_response)
        else:
            body = app(environ, start_response)
        return response_bodies.then(body, environ, self.fire)

    def fire(self) -> None:
        """Run the restart, once, after the first response is delivered."""
        with self._lock:
            if self._fired:
                return
            self._fired = True
        self._fire()


Outcome = Restart | InProcess


class Strategy(Protocol):
    def act(self, retry: str, *, since: int | None = None) -> Outcome: ...


class Reload:
    """In-process: the middleware re-executes the script and swaps the app."""

    def act(self, retry: str, *, since: int | None = None) -> Outcome:
        return IN_PROCESS


class Hook:
    """mod_wsgi daemon mode, from its hook: returning True makes mod_wsgi restart us."""

    def act(self, retry: str, *, since: int | None = None) -> Outcome:
        return Restart(lambda: None, "never")


class Interrupt:
    """Signal our own process after the response: SIGINT restarts a mod_wsgi daemon."""

    signum = signal.SIGINT

    def __init__(self, kill: Callable[[int, int], None] = os.kill) -> None:
        self._kill = kill

    def act(self, retry: str, *, since: int | None = None) -> Outcome:
        pid = os.getpid()
        return Restart(lambda: self._kill(pid, self.signum), retry)


class Terminate:
    """SIGTERM, a gunicorn worker's graceful exit, to this worker and to the siblings
    that started before the change (siblings.py); the arbiter starts fresh ones."""

    def __init__(self, kill: Callable[[int, int], None] = os.kill,
                 workers: Callable[[], Iterable[int]] = siblings.gunicorn_workers) -> None:
        self._kill = kill
        self._workers = workers

    def act(self, retry: str, *, since: int | None = None) -> Outcome:
        pid, changed = os.getpid(), since or time.time_ns()

        def fire() -> None:
            siblings.replace(self._workers(), since=changed, signum=signal.SIGTERM,
                             kill=self._kill)
            self._kill(pid, signal.SIGTERM)

        return Restart(fire, retry, early=True)


class Uwsgi:
    """uWSGI: every worker that confirmed a change acts itself; no marker, no waiting.

    The worker sends itself SIGHUP, uWSGI's graceful exit of one worker, so it takes no
    request after this one (before a 307, after an answer of the old code). Where the
    workers load the application themselves (`--lazy-apps`, `--lazy`) and nothing else
    runs it, the master's fresh workers load the new code: the worker restarts with the
    siblings that started before the change (each finishing its own requests), as under
    gunicorn. Otherwise it first calls `uwsgi.reload()`, the graceful reload of the
    instance: the master ignores further reload requests until it has re-executed
    (`grace_them_all` in uWSGI's core/uwsgi.c), so several workers asking is one
    reload. Without a master nothing would start a new worker: it reloads in-process.

        Uwsgi().act(retry="auto")                # under uWSGI
        Uwsgi(server=fake_uwsgi, kill=fake_kill).act(retry="auto")    # in a test
    """

    def __init__(self, server: Any = None, kill: Callable[[int, int], None] = os.kill) -> None:
        self._server = server
        self._kill = kill

    def act(self, retry: str, *, since: int | None = None) -> Outcome:
        server = self._server if self._server is not None else importlib.import_module("uwsgi")
        if not server.masterpid():
            return IN_PROCESS
        stop = functools.partial(self._kill, os.getpid(), signal.SIGHUP)
        changed = since or time.time_ns()

        def restart() -> None:
            if restarts_alone(getattr(server, "opt", {})):
                siblings.replace(siblings.uwsgi_workers(server), since=changed,
                                 signum=signal.SIGHUP, kill=self._kill)
            else:
                # The master first: by the time it reaps this worker it is reloading,
                # and does not fork a replacement from its old code.
                server.reload()
            stop()

        return Restart(restart, retry, early=True)


# Application code that runs outside the workers' own loading: modules the master
# imports before it forks (a worker restarted alone inherits them as they were), and
# mules and spoolers, which only a reload of the instance restarts.
SHARED_CODE = frozenset({
    "shared-import", "shared-pyimport", "shared-py-import", "shared-python-import",
    "mule", "mules", "farm", "spooler", "spooler-import", "spooler-pyimport",
    "spooler-py-import", "spooler-python-import",
})


def restarts_alone(opt: Mapping[str, object]) -> bool:
    """Whether a worker restarted on its own comes back with all the new code.

    `opt` is `uwsgi.opt`: a bare flag is True, a value bytes, a repeated option a list.

    >>> restarts_alone({"lazy-apps": True}), restarts_alone({"lazy": b"1", "mule": True})
    (True, False)
    >>> restarts_alone({"lazy-apps": b"false"}), restarts_alone({})
    (False, False)
    """
    lazy = _flag(opt.get("lazy-apps")) or _flag(opt.get("lazy"))
    return lazy and SHARED_CODE.isdisjoint(opt)


def _flag(value: object) -> bool:
    """A flag's value as uWSGI reads it: the last one given; false, off, no and 0 are off."""
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        return value.strip().lower() not in (b"false", b"off", b"no", b"0")
    return value is True


class ApacheWindows:
    """Windows embedded mode, mode=restart: ask the Apache parent to restart gracefully."""

    RESTART = 1  # ap_signal_parent's SIGNAL_PARENT_RESTART

    def __init__(self, load: Callable[[str], Any] | None = None) -> None:
        self._load = load or (lambda name: ctypes.CDLL(name))

    def act(self, retry: str, *, since: int | None = None) -> Outcome:
        httpd = self._load("libhttpd.dll")
        return Restart(lambda: httpd.ap_signal_parent(self.RESTART), "never")


STRATEGIES: dict[servers.Action, Callable[[], Strategy]] = {
    "reload": Reload,
    "restart-by-hook": Hook,
    "restart-by-sigint": Interrupt,
    "restart-by-sigterm": Terminate,
    "restart-uwsgi": Uwsgi,
    "restart-apache": ApacheWindows,
}

WINDOWS = sys.platform == "win32"
