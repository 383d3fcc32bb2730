"""Where are we running? Server detection and the choice of action (pure functions).

>>> detect({"mod_wsgi.process_group": "site"})
'mod_wsgi-daemon'
>>> choose("mod_wsgi-daemon", mode="auto", hook_active=True, forked=False, windows=False)
'restart-by-hook'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Literal

Server = Literal["mod_wsgi-daemon", "mod_wsgi-embedded", "gunicorn", "uwsgi", "other"]
# What to do, as verbs: reload in this process, or restart it by one of four means.
Action = Literal[
    "reload", "restart-by-hook", "restart-by-sigint", "restart-by-sigterm",
    "restart-uwsgi", "restart-apache",
]


def detect(environ: Mapping[str, Any]) -> Server:
    """The server that filled this WSGI environ."""
    if "mod_wsgi.process_group" in environ:
        return "mod_wsgi-daemon" if environ["mod_wsgi.process_group"] else "mod_wsgi-embedded"
    if "uwsgi.version" in environ or "uwsgi.node" in environ:
        return "uwsgi"
    if "gunicorn.socket" in environ or str(environ.get("SERVER_SOFTWARE", "")).startswith(
        "gunicorn"
    ):
        return "gunicorn"
    return "other"


def server_mount(
    environ: Mapping[str, Any], configured: Mapping[str, str] = os.environ
) -> str | None:
    """The mount (SCRIPT_NAME) when the server set it itself, or None when a request
    header may have set it.

    gunicorn takes SCRIPT_NAME from a `SCRIPT_NAME` request header sent from an address
    it trusts (127.0.0.1, ::1, `forwarded_allow_ips`: where a front proxy connects
    from), and then passes the header as HTTP_SCRIPT_NAME too. Its own mount is the
    SCRIPT_NAME of its environment (`--env SCRIPT_NAME=/app`), which the header
    overrides. So a request carrying the header has a mount we can believe only when it
    is that one: any other was chosen by whoever sent the request. Servers that never
    read the header (Apache drops it) pass no HTTP_SCRIPT_NAME, or one they ignored.

    >>> server_mount({"SCRIPT_NAME": "/app"}, {})
    '/app'
    >>> server_mount({"SCRIPT_NAME": "/x", "HTTP_SCRIPT_NAME": "/x"}, {}) is None
    True
    >>> server_mount({"SCRIPT_NAME": "/app", "HTTP_SCRIPT_NAME": "/app"}, {"SCRIPT_NAME": "/app"})
    '/app'
    """
    script = str(environ.get("SCRIPT_NAME", ""))
    if "HTTP_SCRIPT_NAME" in environ and script != configured.get("SCRIPT_NAME", ""):
        return None
    return script


def detect_from_modules(modules: Mapping[str, ModuleType] = sys.modules) -> Server:
    """The server as far as it can be told before the first request (from imported modules)."""
    mod_wsgi = modules.get("mod_wsgi")
    if mod_wsgi is not None and hasattr(mod_wsgi, "process_group"):
        return "mod_wsgi-daemon" if mod_wsgi.process_group else "mod_wsgi-embedded"
    if "uwsgi" in modules:
        return "uwsgi"
    if "gunicorn.workers.base" in modules:
        return "gunicorn"
    return "other"


# Development servers that restart their own serving process at each change, and how
# they mark that process: (the variable they set to "true", a module they import there).
SELF_RELOADING = {
    "Django's runserver": ("RUN_MAIN", "django.utils.autoreload"),
    "werkzeug's reloader": ("WERKZEUG_RUN_MAIN", "werkzeug._reloader"),
}


def reloaded_by(environ: Mapping[str, str], modules: Mapping[str, object] = sys.modules
                ) -> str | None:
    """The development server that already restarts this process at each change, or None.

    `manage.py runserver` serves from a child process its autoreloader restarts (unless
    `--noreload`); a middleware reloading there too would load the project twice.

    >>> reloaded_by({"RUN_MAIN": "true"}, {"django.utils.autoreload": object()})
    "Django's runserver"
    >>> reloaded_by({}, {"django.utils.autoreload": object()}) is None  # --noreload
    True
    """
    for name, (variable, module) in SELF_RELOADING.items():
        if environ.get(variable) == "true" and module in modules:
            return name
    return None


def choose(server: Server, *, mode: str, hook_active: bool, forked: bool, windows: bool) -> Action:
    """What to do about a confirmed change (docs/how-it-works.md: the table of step 4).

    `forked`: the middleware was built in a parent process (gunicorn --preload), so a
    fresh worker would start from the parent's old code: only an in-process reload helps.
    """
    if mode == "reload":
        return "reload"
    if server == "mod_wsgi-daemon":
        return "restart-by-hook" if hook_active else "restart-by-sigint"
    if server == "mod_wsgi-embedded":
        # A signal to an Apache child does nothing or worse; Windows can restart Apache.
        return "restart-apache" if windows and mode == "restart" else "reload"
    if server == "gunicorn":
        return "reload" if forked and mode == "auto" else "restart-by-sigterm"
    if server == "uwsgi":
        return "restart-uwsgi"
    return "reload"


def preflight_for(action: Action, option: str) -> str:
    """What must succeed before `action` ("compile", "import" or "off"), for the
    `preflight` option; "auto" imports before every restart (docs/configuration.md).

    A restarted process that cannot import the app stays broken: gunicorn halts, and a
    mod_wsgi daemon serves 500s even after the fix, as the half-imported modules stay in
    its sys.modules. An in-process reload keeps the old app when the import fails.

    >>> preflight_for("restart-by-hook", "auto"), preflight_for("reload", "auto")
    ('import', 'compile')
    """
    if option != "auto":
        return option
    return "compile" if action == "reload" else "import"


def wants_retry(retry: str, method: str) -> bool:
    """Whether the request that triggers a restart gets a 307 to itself."""
    if retry == "always":
        return True
    return retry == "auto" and method in ("GET", "HEAD")


def acting_here(action: Action, *, hook: bool, first: bool, young: bool,
                handed_over: bool, older: bool) -> tuple[Action | None, bool]:
    """Where to act: (the action to take here or None, whether the decision is handed
    over to the next request). `hook`: asked from mod_wsgi's hook, else from a request;
    `first`: the hook's first call in this process; `young`: the process is less than
    2 s old; `older`: the request started before this process did.

    The hook acts for itself, requests for everything else. mod_wsgi hands the request
    a restart was for to the next process, and gives up after 2 x processes + 1
    restarts for one request (docs/how-it-works.md). So a young daemon's first hook
    call leaves the decision to that request, which knows when it started: older than
    this process's code, it is answered by it; newer, the process restarts after
    answering.

    >>> acting_here("restart-by-hook", hook=True, first=True, young=True,
    ...             handed_over=False, older=False)
    (None, True)
    >>> acting_here("restart-by-hook", hook=False, first=False, young=True,
    ...             handed_over=True, older=False)
    ('restart-by-sigint', False)
    """
    if hook:
        if action != "restart-by-hook":
            return None, handed_over
        if first and young:
            return None, True
        return action, handed_over
    if action != "restart-by-hook":
        return action, handed_over
    if not handed_over:
        return None, False
    return (None if older else "restart-by-sigint"), False
