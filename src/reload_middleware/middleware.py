"""ReloadMiddleware: when to act. Nothing happens without a request.

The watcher thread only records changed paths and raises `Changes.dirty`. A request
that finds the flag down goes straight to the app; one that finds it up settles,
confirms, preflights and lets the strategy for this server act, once per change.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import (
    bounds,
    bursts,
    config,
    control,
    live,
    logs,
    pages,
    preflight,
    reloading,
    servers,
    strategies,
)
from .changes import Taken
from .tracking import Tracking

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_LIVE: weakref.WeakSet[ReloadMiddleware] = weakref.WeakSet()
# How long a request waits for the one that loaded the script to reach the middleware
# (it is past mod_wsgi's module lock already: microseconds, unless it never comes).
LOAD_WAIT = 1.0


class ReloadMiddleware:
    """Serve `app`, and pick up code changes on the next request after them.

    In a mod_wsgi script (or any WSGI module)::

        from myproject import make_app
        from reload_middleware import ReloadMiddleware

        application = ReloadMiddleware(make_app(), watch=["templates"])

    Options are keywords, `RELOAD_MIDDLEWARE_*` variables or `reload_middleware.*`
    environ keys (Apache `SetEnv`); see the README for the table. Development and
    staging only: it reloads code when files change.
    """

    def __init__(
        self,
        app: WSGIApplication,
        watch: Iterable[str] | str = (),
        *,
        _script: reloading.Script | None = None,
        **options: Any,
    ) -> None:
        settings = config.from_keywords({"watch": watch, **options})
        self._settings = config.overlay(settings, os.environ, config.os_key, logs.error)
        self._inner = app
        self._counted = reloading.counted(app)
        self._app = self._counted  # what __call__ serves, see _front()
        self._leaving: WSGIApplication = self._answer_restart  # once a restart is decided
        self._script = _script or reloading.find_script()
        self._inert = self._script is not None and reloading.reexecuting(self._script.given)
        self._tracking = Tracking(self._script, inert=self._inert)
        self._changes = self._tracking.changes
        self._beacon = live.Beacon(self._changes, self._tracking.storms.ignored)  # live reload
        self._lock = threading.Lock()
        self._configured = False
        self._hook_called = False
        self._restart: strategies.Restart | None = None
        self._failure: tuple[preflight.Failure, int] | None = None
        self._server: servers.Server = servers.detect_from_modules()
        self._last_action: dict[str, Any] | None = None
        self._acting = Taken(frozenset(), 0)  # the change being acted on
        self._handed_over = False  # the hook left a young process's first request to us
        if self._inert:
            self._changes.dirty = False  # a stand-in, unwrapped by the live instance
            return
        self._tracking.update(self._settings)
        self._front()
        _LIVE.add(self)
        self._offer_hook()

    @property
    def pending(self) -> frozenset[str]:
        """Real paths recorded by the watcher and not acted on yet, in this process."""
        return self._changes.pending

    @property
    def app(self) -> WSGIApplication:
        """The application being served now."""
        return self._inner

    @property
    def retry(self) -> str:
        return self._settings.retry

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._changes.dirty:
            return self._attend(environ, start_response)
        return self._app(environ, start_response)

    def reload_required(self, resource: str) -> bool:
        """mod_wsgi's hook: True restarts this daemon process, and the same request is
        served by the new one. Installed on the script module automatically; the
        explicit form is `reload_required = application.reload_required`.
        """
        first, self._hook_called = not self._hook_called, True
        if self._restart is not None:
            return True
        if not self._changes.dirty or not self._settings.enabled:
            return False
        self._judge_load(None)
        with self._lock:
            self._look(first=first)
            if not self._configured:
                self._changes.poke()  # the first request still has to read its environ
        return self._restart is not None

    def arm(self) -> None:
        """Start watching now rather than on the first request (the `serve` command)."""
        if self._settings.enabled and not self._inert:
            with self._lock:
                self._tracking.start(self._server, self._settings)

    def _attend(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self._judge_load(environ)
        with self._lock:
            if not self._configured:
                self._configure(environ)
            if not (self._settings.live and live.reserved(environ)):  # live: never acts
                self._look(environ)
        if self._restart is not None:
            return self._leaving(environ, start_response)
        if self._failure is not None and self._settings.debug:
            failed = self._failure[0]  # live reload: the page reloads itself once fixed
            page = live.front(lambda _, respond: pages.failure(failed, respond), self._beacon,
                              self._settings.live)
            return page(environ, start_response)
        return self._app(environ, start_response)

    def _judge_load(self, environ: WSGIEnvironment | None) -> None:
        """Judge what a script loaded by a request read, by that request's start.

        Other requests wait for it (bounded): they may reach the middleware, or the
        hook, before the request that loaded the script does.
        """
        load = self._tracking.load
        loader = load.waiting_for
        if loader is None:
            return
        mine = environ is not None and loader == threading.get_ident()
        if not mine and load.judged.wait(LOAD_WAIT):
            return
        with self._lock:
            start = environ.get("mod_wsgi.request_start") if mine and environ else None
            load.judge(bounds.request_start_ns(start))

    def _configure(self, environ: WSGIEnvironment) -> None:
        """Read the environ keys, once per process, on its first request."""
        self._configured = True
        self._server = servers.detect(environ)
        settings = config.overlay(self._settings, environ, config.environ_key, logs.error)
        if settings != self._settings:
            self._settings = settings
            self._tracking.update(settings)
            self._front()
        if not settings.enabled:
            self._tracking.release()
            self._changes.dirty = False

    def _look(self, environ: WSGIEnvironment | None = None, *, first: bool = False) -> None:
        """Under the lock: settle, confirm, preflight and act if this is the place to
        (`environ`: on the request path; else in mod_wsgi's hook, `first`: its first call)."""
        if not self._settings.enabled:
            self._changes.dirty = False  # off for good: whatever raised the flag
            return
        if self._restart is not None:
            return
        self._tracking.start(self._server, self._settings)
        action = self._here(self._action(), environ, first)
        if action is None:
            return
        if self._failure is not None and self._failure[1] == self._changes.events:
            return  # nothing changed since the last failed attempt (imports do not count)
        if not self._settled():
            return
        self._tracking.start(self._server, self._settings)  # a root replaced while settling
        seq = self._changes.seq  # before looking for new modules: any later one keeps the flag
        self._tracking.refresh()
        taken = self._changes.take(ignore=self._tracking.storms.ignored, since=seq)
        if not taken.paths:
            self._changes.finish(taken, acted=False)
            return
        self._failure = None
        failure = self._preflight(taken, action)
        if failure is not None:
            self._fail(failure, taken)
            return
        logs.info("%s changed: %s (%s)", logs.describe(taken.paths), action, self._server)
        self._last_action = {"action": action, "time": time.time(), "files": sorted(taken.paths)}
        reloading.drop_stale_bytecode(taken.paths)
        self._acting = taken
        self._restart = strategies.STRATEGIES[action]().act(self)
        if self._restart is not None:
            self._beacon.release()  # waiting events requests must not delay the restart
        if self._failure is None:
            self._tracking.noted(taken)
            if self._restart is None:
                self._changes.finish(taken, acted=True)

    def _here(
        self, action: servers.Action, environ: WSGIEnvironment | None, first: bool
    ) -> servers.Action | None:
        """The action to take at this place, or None: the hook (no `environ`) acts for
        itself, requests for everything else.

        mod_wsgi hands the request a restart was for to the new process: restarting for
        it again and again ends in mod_wsgi's 503 after five. So a young daemon's first
        hook call leaves the decision to that request, which knows when it started.
        """
        if environ is None:
            if action != "hook":
                return None
            if first and self._tracking.young:
                self._handed_over = True
                return None
            return action
        if action != "hook":
            return action
        if not self._handed_over:
            return None
        self._handed_over = False
        # Older than this process's code: answered by it. Newer: restart after answering.
        return None if self._before_this_process(environ) else "signal"

    def _settled(self) -> bool:
        """Whether changes have stopped coming (settle); the log says when a storm holds."""
        holding = self._changes.holding
        if self._changes.settle(self._settings.settle, self._tracking.storms.ignored):
            return True
        if not holding:
            logs.info("changes keep coming: the current code serves until they stop "
                      "(%g s at most)", bursts.HOLD)
        return False

    def _before_this_process(self, environ: WSGIEnvironment) -> bool:
        """Whether the request started before this process did (mod_wsgi's clock)."""
        started = bounds.request_start_ns(environ.get("mod_wsgi.request_start"))
        return started is not None and started < self._tracking.started

    def _action(self) -> servers.Action:
        return servers.choose(
            self._server,
            mode=self._settings.mode,
            hook_active=self._hook_called,
            forked=self._tracking.forked,
            windows=strategies.WINDOWS,
        )

    def _preflight(self, taken: Taken, action: servers.Action) -> preflight.Failure | None:
        kind = servers.preflight_for(action, self._settings.preflight)
        if kind == "off":
            return None
        script = {self._script.path} if self._script else set()
        failure = preflight.compile_files(taken.paths | script)
        if failure is None and kind == "import" and self._script is not None:
            name = self._script.name if self._script.importable else ""
            failure = preflight.import_app(name, self._script.given)
        return failure

    def _fail(self, failure: preflight.Failure, taken: Taken) -> None:
        """Keep the old code; the change stays pending until the next change retries it."""
        logs.error("new code not loaded, old code still serving: %s\n%s",
                   failure.summary, logs.Lines(failure.traceback.rstrip()))
        self._tracking.add(failure.files)
        self._failure = (failure, taken.events)
        self._changes.finish(taken, acted=False, keep_flag=self._settings.debug)

    def reload(self) -> bool:
        """Re-execute the script in this process and serve its application (strategy hook)."""
        if self._script is None:
            self._fail(preflight.Failure("?", None, "no script module to re-execute", ""),
                       self._acting)
            return False
        started = time.time_ns()
        previous, old = self._inner, self._counted
        try:
            module, busy = reloading.reexecute(self._script, self._tracking.project)
            self._inner = self._adopt(module)
        except Exception as exc:
            self._fail(preflight.from_exception(exc, self._script.path), self._acting)
            return False
        self._counted = reloading.counted(self._inner)
        self._front()
        self._tracking.rebaseline(started, self._acting.states, kept=busy)
        logs.info("reloaded in %.0f ms", (time.time_ns() - started) / 1e6)
        if self._inner is not previous:
            reloading.retire(old)  # not when the script handed back the same app object
        return True

    def _front(self) -> None:
        """What __call__ serves: the app, behind the control endpoint when that is on;
        and once a restart is decided, its answer behind the same endpoint (the token
        must never reach the app, and a status request is no request to retry)."""
        self._app = self._guarded(self._counted)
        self._leaving = self._guarded(self._answer_restart)

    def _guarded(self, app: WSGIApplication) -> WSGIApplication:
        app = live.front(app, self._beacon, self._settings.live and self._settings.enabled)
        if not (self._settings.control and self._settings.secret):
            return app
        return control.Control(
            app, self._settings.control, self._settings.secret,
            status=self._status, force=self._tracking.force,
        )

    def _answer_restart(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        assert self._restart is not None  # only served once a restart is decided
        return self._restart.answer(self, environ, start_response)

    def _status(self) -> dict[str, Any]:
        """The control endpoint's GET: what this process watches and did (no secrets)."""
        files, directories = self._tracking.counts()
        return {
            "pid": os.getpid(), "mode": self._settings.mode, "server": self._server,
            "action": self._action(), "backend": self._tracking.backends,
            "files": files, "directories": directories, "pending": sorted(self.pending),
            "last_action": self._last_action,
            "last_error": self._failure[0].summary if self._failure else None,
        }

    def _adopt(self, module: Any) -> WSGIApplication:
        """The new module's application, unwrapped; the module is pointed back at us."""
        app = getattr(module, "application", None)
        if app is None:
            raise LookupError("the script defines no 'application'")
        if isinstance(app, ReloadMiddleware):
            if getattr(module, "reload_required", None) == app.reload_required:
                module.reload_required = self.reload_required
            module.application = self
            app = app.app
        return app

    def _offer_hook(self) -> None:
        """Give a mod_wsgi script module our hook unless it defines its own."""
        if self._script is None or not self._script.name.startswith("_mod_wsgi_"):
            return
        module = reloading.module_globals(self._script.name)
        if module is not None:
            module.setdefault("reload_required", self.reload_required)


def track(*paths: str) -> None:
    """Track more files or directories in every middleware of this process.

    The old recipe's `monitor.track(path)`, line for line::

        reload_middleware.track("/srv/myproject/settings.ini")
    """
    if Tracking.track_everywhere(paths):  # a script executed again adds nothing twice
        for middleware in list(_LIVE):
            middleware._tracking.watch_more()
