"""ReloadMiddleware: when to act. Nothing happens without a request.

The watcher thread only records changed paths and raises the flag of `Tracking`. A
request that finds the flag down goes straight to the app; one that finds it up
settles, confirms, preflights and acts, once per change: the strategy for this server
says what is to happen (a restart, or a reload here) and the middleware carries it out.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from . import config, interpreter, logs
from .acting import ahead, preflight, reexecute, response_bodies, responses, strategies
from .integrations import framework_caches, servers, templates
from .operations import control
from .script import Script, find_script, offer_hook
from .tracking import RESTARTING, Change, Kept, Reset, Tracking
from .watching import read_times

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .live import browser

# How long a request waits for the one that loaded the script to reach the middleware
# (it is past mod_wsgi's module lock already: microseconds, unless it never comes).
LOAD_WAIT = 1.0


@dataclass(frozen=True)
class Failed:
    """New code did not load: the old serves on (with `debug`, requests get the error
    page instead). `events`: the latch's event count then; a later change retries."""

    failure: preflight.Failure
    events: int


# Where a middleware stands: serving the current app, failed to load the new code, or
# restarting (every request then gets the restart's answer, and the hook says True).
SERVING: Final = "serving"
Phase = Literal["serving"] | Failed | strategies.Restart


class ReloadMiddleware:
    """Serve `app`, and pick up code changes on the next request after them.

    In a mod_wsgi script (or any WSGI module)::

        from myproject import make_app
        from reload_middleware import ReloadMiddleware

        application = ReloadMiddleware(make_app(), watch=["templates"])

    Options are keywords, `RELOAD_MIDDLEWARE_*` variables or `reload_middleware.*`
    environ keys (Apache `SetEnv`); see docs/configuration.md for them. Development and
    staging only: it reloads code when files change.
    """

    def __init__(
        self,
        app: WSGIApplication,
        watch: Iterable[str | os.PathLike[str]] | str = (),
        *,
        enabled: bool = True,
        mode: config.Mode = "auto",
        exclude: Iterable[str] | str = (),
        modules: config.Modules = "project",
        settle: float = 0.05,
        preflight: config.Preflight = "auto",
        trigger: str | os.PathLike[str] | None = None,
        retry: config.Retry = "auto",
        debug: bool = False,
        observer: config.Observer = "auto",
        interval: float = 1.0,
        control: str | None = None,
        secret: str | None = None,
        templates: config.Templates = "auto",
        live: bool = False,
        static: Iterable[str | os.PathLike[str]] | str = (),
    ) -> None:
        """Each keyword is an option (docs/configuration.md), as `config.Settings`
        declares it: `watch` and `exclude` add to what is watched and left out, `mode`,
        `preflight` and `retry` change what happens at a change, `debug`, `live` and
        `static` are for development only. A bad value raises ValueError naming what is
        accepted."""
        # Every parameter but `app` is an option: one Settings value, checked once.
        given = {name: value for name, value in locals().items() if name in config.PARSERS}
        self._start(app, config.from_keywords(given), find_script())

    @classmethod
    def _for_script(cls, app: WSGIApplication, script: Script | None,
                    options: Mapping[str, object]) -> ReloadMiddleware:
        """For the callers that know which script the server ran when no frame tells
        (the `serve` command, PasteDeploy); `options` as keywords, text forms included."""
        middleware = cls.__new__(cls)
        middleware._start(app, config.from_keywords(options), script)
        return middleware

    def _start(self, app: WSGIApplication, settings: config.Settings,
               script: Script | None) -> None:
        self._settings = config.overlay(settings, os.environ, config.os_key, logs.error)
        if self._settings.enabled and (server := servers.reloaded_by(os.environ)):
            logs.info("%s restarts this process at each change: reloading is off here "
                      "(with --noreload the middleware does it)", server)
            self._settings = dataclasses.replace(self._settings, enabled=False)
        self._script = script
        self._place = place = interpreter.current()
        stand_in = self._script is not None and place.reexecuting(self._script.given)
        self._tracking = Tracking(self._script, place, stand_in=stand_in)
        # The one flag every request reads: a plain attribute of the latch, no call.
        self._latch = self._tracking.changes
        # The import preflight, run as soon as a change settles (acting/ahead.py).
        self._ahead = ahead.Ahead(self._tracking.key, self._tracking.state, self._latch,
                                  plan=self._tracking.preview, run=self._preflight_ahead,
                                  spawn=place.watcher.spawn)
        self._beacon: browser.Beacon | None = None  # live reload's, made when on: _light_beacon
        self._app = response_bodies.counted(app)  # what requests reach, counted when it can close
        self._serve = self._app  # what __call__ serves now: see _guarded()
        self._lock = threading.Lock()  # one request acts at a time
        self._configured = False
        self._server: servers.Server = servers.detect_from_modules()
        self._hook_called = False
        self._handed_over = False  # the hook left a young process's first request to us
        self._phase: Phase = SERVING
        self._reloaded: int | None = None  # when the reload a request has to serve began
        self._last_action: dict[str, Any] | None = None
        if stand_in or not self._settings.enabled:
            return  # off until SetEnv turns it on at the first request; installs nothing
        self._start_tracking()

    @property
    def pending(self) -> frozenset[str]:
        """Real paths recorded by the watcher and not acted on yet, in this process."""
        return self._tracking.pending

    @property
    def settings(self) -> config.Settings:
        """The options in effect in this process (SetEnv values from the first request)."""
        return self._settings

    @property
    def app(self) -> WSGIApplication:
        """The application being served now."""
        return response_bodies.inner(self._app)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._latch.dirty:
            return self._on_change(environ, start_response)
        return self._serve(environ, start_response)

    def reload_required(self, resource: str) -> bool:
        """mod_wsgi's hook: True restarts this daemon process, and the same request is
        served by the new one. Installed on the script module automatically; the
        explicit form is `reload_required = application.reload_required`.

        It runs under mod_wsgi's module lock, so every request of this interpreter
        waits for it, and knows no environ. So it does what must precede the request
        and nothing else (docs/how-it-works.md): wait for the settle time, stat the
        pending files, compile them and, before a restart, import the app in a
        subprocess, since a restart into code that cannot load leaves the site broken.
        New modules come from the import finder and new files from the watcher; only
        its first call in a process, which starts the watcher, lists the watch
        directories, as the changes made before it must be found.
        """
        first, self._hook_called = not self._hook_called, True
        if isinstance(self._phase, strategies.Restart):
            return True
        if not self._latch.dirty or not self._settings.enabled:
            return False
        self._tracking.judge_load(None, self._lock, LOAD_WAIT)
        with self._lock:
            self._act(first=first)
        return isinstance(self._phase, strategies.Restart)

    def arm(self) -> None:
        """Start watching now rather than on the first request (the `serve` command)."""
        if self._settings.enabled and not self._tracking.stand_in:
            with self._lock:
                self._tracking.start(self._server, self._settings)

    def _on_change(self, environ: WSGIEnvironment, start_response: StartResponse
                   ) -> Iterable[bytes]:
        began = time.time_ns()
        self._tracking.judge_load(environ, self._lock, LOAD_WAIT)
        with self._lock:
            first = not self._configured
            if first:
                self._configure(environ)
            if not (self._settings.live and _reserved(environ)):  # live: never acts
                self._act(environ)
            reloaded, self._reloaded = self._reloaded, None
            loaded = self._tracking.loading(began, first=first, reloaded=reloaded) if (
                self._settings.enabled) else None
        if isinstance(self._phase, Failed) and self._settings.debug:
            failed = self._phase.failure  # live reload: the page reloads itself once fixed
            page = self._front(lambda _, respond: responses.failure(failed, respond),
                               on=self._settings.live)
            return page(environ, start_response)
        body = self._serve(environ, start_response)
        # The storm guard looks at what changed while this request loaded code.
        return body if loaded is None else response_bodies.then(body, environ, loaded)

    def _configure(self, environ: WSGIEnvironment) -> None:
        """Read the environ keys, once per process, on its first request."""
        self._configured = True
        self._server = servers.detect(environ)
        settings = config.overlay(self._settings, environ, config.environ_key, logs.error)
        # Looked for again: Django's app registry may be ready only now (docs/templates.md).
        if settings != self._settings or self._tracking.templates_moved(settings, self.app):
            self._settings = settings
            if settings.enabled:
                self._start_tracking()
                # mod_wsgi's hook has decided for this request without these files: a
                # change to one is acted on here (servers.acting_here), else old code serves.
                self._handed_over = self._handed_over or self._hook_called
        if not settings.enabled:
            self._tracking.release()
            self._tracking.lower()
        elif self._action() == "reload" and (caveat := framework_caches.caveat(sys.modules)):
            logs.info("%s", caveat)

    def _start_tracking(self) -> None:
        self._tracking.update(self._settings, self.app)
        self._light_beacon()
        self._latch.listen(self._ahead.wake)
        self._serve = self._guarded(self._app)
        self._place.middlewares.add(self)
        offer_hook(self._script, self.reload_required)

    def _light_beacon(self) -> None:
        """Make the beacon of live reload once it is on (built so, or SetEnv at the first
        request): while it is off there is none, and mod_wsgi is asked nothing."""
        if self._settings.live and self._beacon is None:
            from .live import browser  # live reload's modules: only where it is on

            beacon = browser.Beacon(self._latch, self._tracking.ignored,
                                    self._tracking.stylesheet)
            self._beacon = self._place.beacons.add(beacon)

    def _front(self, app: WSGIApplication, *, on: bool) -> WSGIApplication:
        """`app` behind live reload's front (browser.front) when it is `on`."""
        if not on or self._beacon is None:
            return app
        from .live import browser

        return browser.front(app, self._beacon, on)

    def _act(self, environ: WSGIEnvironment | None = None, *, first: bool = False) -> None:
        """Under the lock: settle, confirm, preflight and act if this is the place to
        (`environ`: on the request path; else in mod_wsgi's hook, `first`: its first call)."""
        if not self._settings.enabled:
            self._tracking.lower()  # off for good: whatever raised the flag
            return
        if isinstance(self._phase, strategies.Restart):
            return  # on its way out
        self._tracking.start(self._server, self._settings)
        action = self._action_here(environ, first)
        if action is None:
            return
        kind = servers.preflight_for(action, self._settings.preflight)
        self._ahead.want(kind == "import", settle=self._settings.settle)
        change = self._tracking.next_change(
            self._server, self._settings,
            after=self._phase.events if isinstance(self._phase, Failed) else None,
            # The flag stays up for the first request: its environ may add files (SetEnv).
            keep_flag=not self._configured)
        if change is None:
            return
        self._phase = SERVING
        if self._tracking.resettable(change.paths):
            self._reset_templates(change)
            return
        self._say_unreachable(change)
        failure = self._preflight(kind, change)
        if failure is None:
            failure = self._carry_out(action, change)
        if failure is not None:
            self._fail(failure, change)

    def _preflight(self, kind: str, change: Change) -> preflight.Failure | None:
        """What the `kind` of preflight finds wrong with `change`: for an import, the
        result of the run ahead for these very files, waited for if under way."""
        run = functools.partial(self._check, kind, change.paths, change.names)
        if kind != "import":
            return run()
        return self._ahead.check(change.taken.states, change.names, run)

    def _preflight_ahead(self, plan: ahead.Plan, runner: ahead.Runner) -> preflight.Failure | None:
        return self._check("import", plan[0].keys(), plan[1], runner)

    def _check(self, kind: str, changed: Iterable[str], names: Iterable[str],
               runner: ahead.Runner = subprocess.run) -> preflight.Failure | None:
        importer = functools.partial(preflight.import_app, run=runner)
        return preflight.check(kind, changed, self._script, names, importer,
                               told=self._place.told)

    def _carry_out(self, action: servers.Action, change: Change) -> preflight.Failure | None:
        """Restart or reload for `change`; the failure of a reload that kept the old app."""
        logs.info("%s changed: %s (%s)", logs.describe(change.paths), action, self._server)
        self._last_action = {"action": action, "time": time.time(), "files": sorted(change.paths)}
        reexecute.drop_stale_bytecode(change.paths)
        outcome = strategies.STRATEGIES[action]().act(self._settings.retry,
                                                      since=change.saved_at(time.time_ns()))
        if outcome == strategies.IN_PROCESS:
            return self._reload(change)
        assert isinstance(outcome, strategies.Restart)
        self._tracking.outcome(change, RESTARTING)
        self._phase = outcome
        if self._beacon is not None:  # waiting events requests must not delay the restart
            self._beacon.release()
        self._serve = self._guarded(functools.partial(outcome.answer, self._app))
        return None

    def _reset_templates(self, change: Change) -> None:
        """Only templates, translation catalogs or static files changed: the caches of
        the first two are emptied in this process, and pages reload or swap stylesheets
        themselves for the last (live reload)."""
        started = time.time_ns()
        kinds = self._tracking.files.templates.kinds(change.paths)
        emptied = [what for kind, what in (("templates", "template caches"),
                                           ("catalogs", "translation catalogs")) if kind in kinds]
        done = f"{' and '.join(emptied)} emptied" if emptied else "static files, nothing to reload"
        logs.info("%s changed: %s (%s)", logs.describe(change.paths), done, self._server)
        self._last_action = {"action": "reset-templates", "time": started / 1e9,
                             "files": sorted(change.paths)}
        if emptied:
            templates.reset(self.app, self._tracking.files.library,
                            templates="templates" in kinds, catalogs="catalogs" in kinds)
        self._tracking.outcome(change, Reset(started))

    def _say_unreachable(self, change: Change) -> None:
        """Once per process: why a template save restarts or reloads after all."""
        if (self._tracking.files.templates.unreachable(change.paths)
                and self._place.told.first("unreachable templates")):
            logs.info("%s: Pyramid's renderers keep compiled templates where they cannot be "
                      "emptied, so a template save is acted on as code (with "
                      "pyramid.reload_templates on, Pyramid reads them again itself)",
                      logs.describe(change.paths))

    def _reload(self, change: Change) -> preflight.Failure | None:
        """Run the script again here and serve its app; or keep the old one and say why."""
        framework_caches.reset(sys.modules)  # what framework modules cached of the project
        outcome = reexecute.reload(self._script, self._tracking.project, self._place, live=self,
                                   changed=change.names)
        if isinstance(outcome, reexecute.Failed):
            return outcome.failure
        framework_caches.reset(sys.modules)  # and what the old app read meanwhile
        old, self._app = self._app, response_bodies.counted(outcome.app)
        self._serve = self._guarded(self._app)
        self._tracking.outcome(change, outcome)
        self._reloaded = outcome.started  # the request served next ends its window
        logs.info("reloaded in %.0f ms", (time.time_ns() - outcome.started) / 1e6)
        if outcome.app is not response_bodies.inner(old):
            response_bodies.retire(old)  # not when the script handed back the same app object
        return None

    def _action_here(self, environ: WSGIEnvironment | None, first: bool
                     ) -> servers.Action | None:
        """The action to take at this place (servers.acting_here), or None."""
        older = False
        if environ is not None:  # did the request start before this process (mod_wsgi)?
            started = read_times.request_start_ns(environ.get("mod_wsgi.request_start"))
            older = started is not None and started < self._tracking.started
        action, self._handed_over = servers.acting_here(
            self._action(), hook=environ is None, first=first, young=self._tracking.young,
            handed_over=self._handed_over, older=older)
        return action

    def _action(self) -> servers.Action:
        return servers.choose(self._server, mode=self._settings.mode, windows=strategies.WINDOWS,
                              hook_active=self._hook_called, forked=self._tracking.forked)

    def _fail(self, failure: preflight.Failure, change: Change) -> None:
        """Keep the old code; the change stays pending until the next change retries it."""
        logs.error("new code not loaded, old code still serving: %s\n%s",
                   failure.summary, logs.Lines(failure.traceback.rstrip()))
        self._phase = Failed(failure, change.taken.events)
        self._tracking.outcome(change, Kept(frozenset(failure.files)),
                               keep_flag=self._settings.debug or not self._configured)

    def _guarded(self, app: WSGIApplication) -> WSGIApplication:
        """`app` behind the control endpoint when that is on: the token must never reach
        the app, and a status request is no request to retry."""
        app = self._front(app, on=self._settings.live and self._settings.enabled)
        if not (self._settings.control and self._settings.secret):
            return app
        return control.Control(
            app, self._settings.control, self._settings.secret,
            status=self._status, force=self._tracking.force,
        )

    def _status(self) -> dict[str, Any]:
        """The control endpoint's GET: what this process watches and did (no secrets)."""
        return {
            "pid": os.getpid(), "mode": self._settings.mode, "server": self._server,
            "action": self._action(), **self._tracking.report(),
            "last_action": self._last_action,
            "last_error": self._phase.failure.summary if isinstance(self._phase, Failed)
            else None,
        }


def _reserved(environ: WSGIEnvironment) -> bool:
    """browser.reserved(), for a middleware with live reload on."""
    from .live import browser

    return browser.reserved(environ)


def track(*paths: str) -> None:
    """Track more files or directories in every middleware of this interpreter.

    The old recipe's `monitor.track(path)`, line for line::

        reload_middleware.track("/srv/myproject/settings.ini")
    """
    place = interpreter.current()
    if place.track([os.path.abspath(p) for p in paths]):  # a script run again adds nothing
        for middleware in list(place.middlewares):
            middleware._tracking.watch_more()
