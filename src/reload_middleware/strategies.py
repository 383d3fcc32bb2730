"""What to do about a change: one class per action, one table, one method each.

A strategy's `act()` runs on the request that found the change, under the action lock,
after settle and preflight. It returns what is to happen and calls nothing back: a
`Restart` when this process is on its way out (every later request of the process gets
`Restart.answer()`), or `IN_PROCESS` when the middleware is to reload the app here
(reloading.py).

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
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from . import bodies, pages, servers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

InProcess = Literal["in-process"]
IN_PROCESS: Final[InProcess] = "in-process"


class Restart:
    """A process that will be replaced: answer (307 or old code), then fire once."""

    def __init__(self, fire: Callable[[], None], retry: str) -> None:
        self._fire = fire
        self._retry = retry
        self._lock = threading.Lock()
        self._fired = False

    def answer(
        self, app: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """The retry page or `app`'s answer; the restart fires once it is delivered."""
        if servers.wants_retry(self._retry, environ.get("REQUEST_METHOD", "GET")):
            body = pages.retry(environ, start_response)
        else:
            body = app(environ, start_response)
        return bodies.then(body, environ, self.fire)

    def fire(self) -> None:
        """Run the restart, once, after the first response is delivered."""
        with self._lock:
            if self._fired:
                return
            self._fired = True
        self._fire()


Outcome = Restart | InProcess


class Strategy(Protocol):
    def act(self, retry: str) -> Outcome: ...


class Reload:
    """In-process: the middleware re-executes the script and swaps the app."""

    def act(self, retry: str) -> Outcome:
        return IN_PROCESS


class Hook:
    """mod_wsgi daemon mode, from its hook: returning True makes mod_wsgi restart us."""

    def act(self, retry: str) -> Outcome:
        return Restart(lambda: None, "never")


class Interrupt:
    """Signal our own process after the response: SIGINT restarts a mod_wsgi daemon."""

    signum = signal.SIGINT

    def __init__(self, kill: Callable[[int, int], None] = os.kill) -> None:
        self._kill = kill

    def act(self, retry: str) -> Outcome:
        pid = os.getpid()
        return Restart(lambda: self._kill(pid, self.signum), retry)


class Terminate(Interrupt):
    """SIGTERM: a gunicorn worker's graceful exit; the arbiter starts a fresh one."""

    signum = signal.SIGTERM


class Uwsgi:
    """uWSGI: every worker that confirmed a change acts itself; no marker, no waiting.

    The worker answers by the retry policy, then sends itself SIGHUP, uWSGI's graceful
    exit of one worker, so it takes no request after this one. Where the workers load
    the application themselves (`--lazy-apps`, `--lazy`) and nothing else runs it, the
    master's fresh worker loads the new code: the worker restarts alone, as under
    gunicorn. Otherwise it also calls `uwsgi.reload()`, the graceful reload of the
    instance: the master ignores further reload requests until it has re-executed
    (`grace_them_all` in uWSGI's core/uwsgi.c), so several workers asking is one
    reload. Without a master nothing would start a new worker: it reloads in-process.

        Uwsgi().act(retry="auto")                # under uWSGI
        Uwsgi(server=fake_uwsgi, kill=fake_kill).act(retry="auto")    # in a test
    """

    def __init__(self, server: Any = None, kill: Callable[[int, int], None] = os.kill) -> None:
        self._server = server
        self._kill = kill

    def act(self, retry: str) -> Outcome:
        server = self._server if self._server is not None else importlib.import_module("uwsgi")
        if not server.masterpid():
            return IN_PROCESS
        stop = functools.partial(self._kill, os.getpid(), signal.SIGHUP)
        if restarts_alone(getattr(server, "opt", {})):
            return Restart(stop, retry)

        def reload_instance() -> None:
            # The master first: by the time it reaps this worker it is reloading, and
            # does not fork a replacement from its old code.
            server.reload()
            stop()

        return Restart(reload_instance, retry)


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

    def act(self, retry: str) -> Outcome:
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
