"""How is it configured? Keywords, OS variables and environ keys -> one `Settings`.

Pure functions only: nothing here touches the filesystem, threads or watchdog.

>>> s = from_keywords({"settle": 0.2})
>>> s = overlay(s, {"RELOAD_MIDDLEWARE_DEBUG": "on"}, os_key, report=print)
>>> s.settle, s.debug
(0.2, True)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

FLAG_WORDS = {
    "on": True, "true": True, "yes": True, "1": True,
    "off": False, "false": False, "no": False, "0": False,
}  # fmt: skip
MIN_SECRET = 16
MAX_SETTLE = 10.0  # seconds
MAX_INTERVAL = 3600.0  # seconds


# The values of each enumerated option: the keyword's type, and what its text accepts.
Mode = Literal["auto", "restart", "reload"]
Modules = Literal["project", "all", "off"]
Preflight = Literal["auto", "compile", "import", "off"]
Retry = Literal["auto", "always", "never"]
Observer = Literal["auto", "native", "polling"]
Templates = Literal["auto", "off"]


@dataclass(frozen=True)
class Settings:
    """Every option of the middleware, validated. Field names are the option names, and
    `ReloadMiddleware`'s keywords (tests/test_config.py holds them to it)."""

    watch: tuple[str, ...] = ()
    enabled: bool = True
    mode: Mode = "auto"
    exclude: tuple[str, ...] = ()
    modules: Modules = "project"
    settle: float = 0.05
    # "auto": import before any restart, compile before an in-process reload.
    preflight: Preflight = "auto"
    # Production mode: only a change to this one file counts.
    trigger: str | None = None
    retry: Retry = "auto"
    # Development only: error pages show files, lines and tracebacks.
    debug: bool = False
    observer: Observer = "auto"
    interval: float = 1.0
    control: str | None = None
    secret: str | None = None
    # Also watch the template directories of frameworks that cache templates, and the
    # translation directories (templates.py).
    templates: Templates = "auto"
    # Development only: HTML pages get a script that reloads them after a change.
    live: bool = False
    # With live: directories of static files besides the frameworks' own (static_files.py).
    static: tuple[str, ...] = ()


def _flag(text: str) -> bool:
    try:
        return FLAG_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError("on/off, true/false, yes/no or 1/0") from None


def _choice(values: object) -> Callable[[str], str]:
    accepted = get_args(values)

    def parse(text: str) -> str:
        if text.strip().lower() not in accepted:
            raise ValueError(" or ".join(repr(a) for a in accepted))
        return text.strip().lower()

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # NaN fails both comparisons
            raise ValueError(f"a number of seconds, {low:g} to {high:g}")
        return value

    return parse


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("a non-empty string")
    return text.strip()


def _url_path(text: str) -> str:
    path = _text(text)
    if not path.startswith("/"):
        raise ValueError("a URL path starting with '/'")
    return path


def _split(sep: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split(sep) if part.strip())

    return parse


# The text form of a list: the character its items are split on (a PasteDeploy ini
# file also takes one item a line).
SEPARATORS: dict[str, str] = {"watch": os.pathsep, "exclude": ",", "static": os.pathsep}

# name -> parser of the text form. A parser raises ValueError with what is accepted.
PARSERS: dict[str, Callable[[str], Any]] = {
    "watch": _split(SEPARATORS["watch"]),
    "enabled": _flag,
    "mode": _choice(Mode),
    "exclude": _split(SEPARATORS["exclude"]),
    "modules": _choice(Modules),
    # A wait longer than threading.TIMEOUT_MAX raises OverflowError in every request;
    # a quiet time over 10 s would hold every reload long after the save anyway.
    "settle": _seconds(0.0, MAX_SETTLE),
    "preflight": _choice(Preflight),
    "trigger": _text,
    "retry": _choice(Retry),
    "debug": _flag,
    "observer": _choice(Observer),
    # A larger interval kills the polling thread (its wait overflows): an hour at most.
    "interval": _seconds(0.01, MAX_INTERVAL),
    "control": _url_path,
    "secret": _text,
    "templates": _choice(Templates),
    "live": _flag,
    "static": _split(SEPARATORS["static"]),
}
LISTS = frozenset(SEPARATORS)

# name -> what the option does, in one short sentence or two. The documentation's
# configuration reference is rendered from these, PARSERS and Settings (docs/hooks.py),
# so the reference and the code cannot disagree.
DESCRIPTIONS: dict[str, str] = {
    "watch": "More files or directories to watch (directories recursively). A relative "
    "path is relative to the script's directory. The keyword, the environ key and the "
    "OS variable all add to the list.",
    "enabled": "Master switch. Off, requests go straight to the app and nothing is "
    "watched; a `SetEnv` key or OS variable can still turn it on at the first request.",
    "mode": "Force one action where you know better: `restart` the process or `reload` "
    "in process. `auto` takes the server's action (see How it works, step 4).",
    "exclude": "Glob patterns that never count as a change, on top of the built-in list "
    "below. A pattern with a `/` matches the whole path, any other a file or directory "
    "name. The keyword, the environ key and the OS variable all add to the list.",
    "modules": "Which loaded modules' source files are tracked: `project` (outside the "
    "stdlib and site-packages; editable installs count), `all`, or `off`.",
    "settle": "Quiet time in seconds before acting, so that a save of several files is "
    "one change.",
    "preflight": "What must succeed before acting: `import` (the app, in a separate "
    "process), `compile`, or `off`. `auto` imports before a restart (mod_wsgi daemon, "
    "gunicorn, uWSGI) and compiles before an in-process reload. The import runs as soon "
    "as a change settles, before any request, once for all processes of the script.",
    "trigger": "Production mode: only a change to this one file counts, so a deploy tool "
    "decides when (a `touch` of it). It counts only as a regular file of the server's "
    "account, root or the script's owner that no other account may write; the path is "
    "used as given, never through a link. Keep it in a directory only the deploy account "
    "can write (never the shared temp directory: anyone can create names there); the log "
    "at start and `reload-middleware doctor` name one that others can write.",
    "retry": "Whether the request that finds a change gets a 307 to itself when the "
    "process restarts without mod_wsgi's hook: `auto` for GET and HEAD, `always`, "
    "`never`.",
    "debug": "Error pages show the file, line and traceback of new code that does not "
    "load. Development only.",
    "observer": "Where file events come from: `native` (inotify and the like) or "
    "`polling`. `auto` polls remote filesystems (network shares) only.",
    "interval": "Polling interval in seconds, for the directories that are polled.",
    "control": "URL path of the control endpoint; off unless set, and it needs a "
    "`secret`.",
    "secret": f"Bearer token the control endpoint demands: {MIN_SECRET} characters or "
    "more.",
    "templates": "Also watch the template directories of loaded frameworks that keep "
    "compiled templates, and their translation directories (`auto`), or not (`off`).",
    "live": "Open HTML pages reload themselves after a change. Development only; on "
    "under `reload-middleware serve`.",
    "static": "With `live`: more directories of static files, besides Django's and "
    "Flask's own. A stylesheet saved there is swapped in open pages, keeping their state; "
    "any other file there reloads them. Nothing restarts. A relative path is relative to "
    "the script's directory.",
}


def environ_key(name: str) -> str:
    """The WSGI environ key for an option (Apache: `SetEnv reload_middleware.NAME`)."""
    return f"reload_middleware.{name}"


def os_key(name: str) -> str:
    """The OS environment variable for an option."""
    return f"RELOAD_MIDDLEWARE_{name.upper()}"


def _message(name: str, value: object, accepted: str) -> str:
    return f"reload_middleware: option {name!r} got {value!r}; accepted: {accepted}"


def _keyword_value(name: str, value: object) -> Any:
    """Validate a keyword value; text is accepted in its text form as well."""
    if name in LISTS:
        items = [value] if isinstance(value, str | os.PathLike) else value
        if not isinstance(items, Iterable) or not all(
            isinstance(i, str | os.PathLike) for i in items
        ):
            raise ValueError(_message(name, value, "a path or pattern, or a list of them"))
        return tuple(os.fspath(i) for i in items)
    if isinstance(value, bool) and PARSERS[name] is _flag:
        return value
    if name in ("settle", "interval") and isinstance(value, int | float) and not isinstance(
        value, bool
    ):
        try:
            value = repr(float(value))
        except OverflowError:  # an int too large for a float
            raise ValueError(_message(name, value, _accepted(name))) from None
    if value is None and name in ("trigger", "control", "secret"):
        return None
    if not isinstance(value, str | os.PathLike):
        raise ValueError(_message(name, value, _accepted(name)))
    try:
        return PARSERS[name](os.fspath(value))
    except ValueError as exc:
        raise ValueError(_message(name, value, str(exc))) from None


def accepted(name: str) -> str:
    """What an option's text form accepts, in the words of its error message.

    >>> accepted("settle"), accepted("exclude")
    ('a number of seconds, 0 to 10', "items separated by ','")
    """
    if name in LISTS:
        return f"items separated by {SEPARATORS[name]!r}"
    return _accepted(name)


def _accepted(name: str) -> str:
    try:
        PARSERS[name]("\0")
    except ValueError as exc:
        return str(exc)
    return "a string"  # pragma: no cover - every parser refuses a NUL


def from_keywords(options: Mapping[str, object]) -> Settings:
    """Settings from keyword arguments; raises ValueError (bad value) or TypeError (bad name)."""
    unknown = sorted(set(options) - set(PARSERS))
    if unknown:
        raise TypeError(
            f"reload_middleware: unknown option(s) {', '.join(unknown)}; "
            f"known: {', '.join(PARSERS)}"
        )
    values = {name: _keyword_value(name, value) for name, value in options.items()}
    settings = Settings(**values)
    problem = control_problem(settings)
    if problem:
        raise ValueError(problem)
    return settings


def overlay(
    base: Settings,
    source: Mapping[str, Any],
    key: Callable[[str], str],
    report: Callable[[str], None],
) -> Settings:
    """`base` with the options found in `source` under `key(name)` applied on top.

    Only the exact keys are read, never anything else (so never an HTTP_* header).
    Lists are joined; a bad value is reported and ignored. Never raises.
    """
    changes: dict[str, Any] = {}
    for name, parse in PARSERS.items():
        raw = source.get(key(name))
        if raw is None:
            continue
        try:
            value = parse(str(raw))
        except ValueError as exc:
            report(_message(key(name), raw, str(exc)) + "; ignored")
            continue
        changes[name] = getattr(base, name) + value if name in LISTS else value
    settings = dataclasses.replace(base, **changes)
    problem = control_problem(settings)
    if problem:
        report(problem + "; the control endpoint stays off")
        settings = dataclasses.replace(settings, control=None)
    return settings


def control_problem(settings: Settings) -> str | None:
    """Why the control endpoint cannot be enabled as configured, or None."""
    if settings.control is None:
        return None
    if settings.secret is None or len(settings.secret) < MIN_SECRET:
        return (
            f"reload_middleware: option 'control' needs a 'secret' of {MIN_SECRET} "
            "characters or more"
        )
    return None
