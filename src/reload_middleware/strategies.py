"""What to do about a change: one class per action, one table, one method each.

A strategy's `act()` runs on the request that found the change, under the action lock,
after settle and preflight: it returns a `Restart` when this process is on its way out
(every later request of the process gets `Restart.answer()`), or None when the
request can go on to the (possibly new) application.

>>> STRATEGIES["signal"]                                        # doctest: +ELLIPSIS
<class '...Signal'>
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from . import pages, servers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class Actor(Protocol):
    """What strategies may use of the middleware."""

    @property
    def app(self) -> WSGIApplication: ...

    @property
    def retry(self) -> str: ...

    def reload(self) -> bool: ...


class Restart:
    """A process that will be replaced: answer (307 or old code), then fire once."""

    def __init__(self, fire: Callable[[], None], retry: str) -> None:
        self._fire = fire
        self._retry = retry
        self._lock = threading.Lock()
        self._fired = False

    def answer(
        self, actor: Actor, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if servers.wants_retry(self._retry, environ.get("REQUEST_METHOD", "GET")):
            body = pages.retry(environ, start_response)
        else:
            body = actor.app(environ, start_response)
        return _Closing(body, self.fire)

    def fire(self) -> None:
        """Run the restart, once, after the first response is delivered."""
        with self._lock:
            if self._fired:
                return
            self._fired = True
        self._fire()


class _Closing:
    """Wraps a response iterable so something runs after the server closes it."""

    def __init__(self, body: Iterable[bytes], after: Callable[[], None]) -> None:
        self._body = body
        self._after = after

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._after()


class Strategy(Protocol):
    def act(self, actor: Actor) -> Restart | None: ...


class Reload:
    """In-process: the middleware re-executes the script and swaps the app."""

    def act(self, actor: Actor) -> Restart | None:
        actor.reload()
        return None


class Hook:
    """mod_wsgi daemon mode, from its hook: returning True makes mod_wsgi restart us."""

    def act(self, actor: Actor) -> Restart | None:
        return Restart(lambda: None, "never")


class Signal:
    """Signal our own process after the response: SIGINT restarts a mod_wsgi daemon."""

    signum = signal.SIGINT

    def __init__(self, kill: Callable[[int, int], None] = os.kill) -> None:
        self._kill = kill

    def act(self, actor: Actor) -> Restart | None:
        pid = os.getpid()
        return Restart(lambda: self._kill(pid, self.signum), actor.retry)


class Gunicorn(Signal):
    """SIGTERM: a gunicorn worker's graceful exit; the arbiter starts a fresh one."""

    signum = signal.SIGTERM


class Uwsgi:
    """uWSGI's graceful reload of the whole instance, asked for once per change.

    Every worker sees the change; the first to act leaves a marker named after the
    master and its start, so the others wait for the reload instead of asking again.
    """

    def __init__(self, tmp: str | None = None) -> None:
        self._tmp = tmp or tempfile.gettempdir()

    def act(self, actor: Actor) -> Restart | None:
        import uwsgi

        prefix = f"reload-middleware-uwsgi-{uwsgi.masterpid()}-"
        marker = os.path.join(self._tmp, f"{prefix}{uwsgi.started_on}")
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return Restart(lambda: None, "never")  # another worker asked already
        for old in glob.glob(os.path.join(self._tmp, prefix + "*")):
            if old != marker:
                with contextlib.suppress(OSError):
                    os.remove(old)
        return Restart(uwsgi.reload, "never")


class ApacheWindows:
    """Windows embedded mode, mode=restart: ask the Apache parent to restart gracefully."""

    RESTART = 1  # ap_signal_parent's SIGNAL_PARENT_RESTART

    def __init__(self, load: Callable[[str], Any] | None = None) -> None:
        self._load = load or (lambda name: ctypes.CDLL(name))

    def act(self, actor: Actor) -> Restart | None:
        httpd = self._load("libhttpd.dll")
        return Restart(lambda: httpd.ap_signal_parent(self.RESTART), "never")


STRATEGIES: dict[servers.Action, Callable[[], Strategy]] = {
    "reload": Reload,
    "hook": Hook,
    "signal": Signal,
    "gunicorn": Gunicorn,
    "uwsgi": Uwsgi,
    "apache-windows": ApacheWindows,
}

WINDOWS = sys.platform == "win32"
