"""`reload-middleware doctor [SCRIPT]`: why a change would or would not reload, no server.

The script is executed with the middleware switched off (nothing is watched), and the
report is computed from what its import loaded; without a script, the machine alone.
Here: from `Facts` to advice, report and text, with no side effect; `probe.gather()`
collects the facts.

    $ reload-middleware doctor /srv/myproject/app.wsgi
    $ reload-middleware doctor /srv/myproject/app.wsgi --json | jq .warnings
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .. import config
from .._version import __version__
from ..integrations import servers
from ..watching import paths, trust
from ..watching.project_modules import ProjectModules, is_library, module_file, project_modules

# (label, server, hook active, middleware built before a fork): servers.choose's cases.
SCENARIOS: tuple[tuple[str, servers.Server, bool, bool], ...] = (
    ("mod_wsgi daemon, hook", "mod_wsgi-daemon", True, False),
    ("mod_wsgi daemon, no hook", "mod_wsgi-daemon", False, False),
    ("mod_wsgi embedded", "mod_wsgi-embedded", False, False),
    ("gunicorn", "gunicorn", False, False),
    ("gunicorn --preload", "gunicorn", False, True),
    ("uWSGI", "uwsgi", False, False),
    ("other (waitress, serve)", "other", False, False),
)
MEANING = {
    "restart-by-hook": "reload_required() is True: mod_wsgi restarts the daemon, the new one "
                       "serves it",
    "restart-by-sigint": "SIGINT to the daemon after a 307 (GET, HEAD) or the old code's answer",
    "reload": "the script is executed again in the same process",
    "restart-by-sigterm": "SIGTERM to the worker after a 307 or the answer; gunicorn starts "
                          "a new one",
    "restart-uwsgi": "a 307 or the answer, then the worker exits: alone under --lazy-apps, "
                     "else with uwsgi.reload(), the instance's graceful reload",
    "restart-apache": "Apache restarts through ap_signal_parent",
}
ENABLED = "RELOAD_MIDDLEWARE_ENABLED"
# What only the server's processes know, and where they tell it.
UNKNOWABLE = (
    "SetEnv values: each process reads them on its first request",
    "modules imported lazily (Django's views, for one): tracked from the first request "
    "that imports them",
    "template directories the frameworks find at run time",
)
TOLD_BY = ("the line each process logs when it starts watching ('watching for code changes:"
           " ... N files, M directories') and the control endpoint's GET status")
Chain = Sequence[tuple[str, int, int, int]]  # (path, mode, owner, group) from / down


@dataclass
class Root:
    """A directory the middleware would watch."""

    path: str
    recursive: bool
    backend: str = "native"  # "polling" on a remote filesystem or with observer=polling
    watches: int = 1  # inotify watches it takes: one per directory, none when polled
    blocked: str | None = None  # the first directory the server's user cannot get through
    closed: list[str] = field(default_factory=list)  # directories below it they cannot read


@dataclass
class Preflight:
    """The import preflight, run on the script as the runtime runs it (entry.py)."""

    loads: str  # "runs /srv/app/app.wsgi by path"
    failure: str | None = None  # its summary, when it failed
    own: str = ""  # why the failure is the preflight's own (preflight.own_reason)


@dataclass
class Facts:
    """What the report is computed from; `gather()` fills it in from this machine."""

    watchdog: str | None = None
    backend: str = "unknown"
    max_watches: int | None = None
    max_instances: int | None = None
    watches_in_use: int = 0
    instances_in_use: int = 0
    processes: int = 0  # readable processes of this uid, counted for the two above
    unreadable: int = 0  # processes of this uid whose descriptors could not be read
    uid: int = 0
    server_user: str = "other users"
    script: str | None = None
    python_path: list[str] = field(default_factory=list)  # the server's, as given to doctor
    error: str | None = None  # what went wrong executing the script
    disabled_by: str | None = None
    refused: list[str] = field(default_factory=list)  # bad RELOAD_MIDDLEWARE_* values
    settings: config.Settings = field(default_factory=config.Settings)
    tracked: list[str] = field(default_factory=list)
    roots: list[Root] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    venvs: list[str] = field(default_factory=list)
    preflight: Preflight | None = None  # None: the script did not load, or none given
    # The trigger or watch paths other accounts can write beside (trust.py).
    exposed: list[trust.Exposed] = field(default_factory=list)


@dataclass(frozen=True)
class Advice:
    problem: str
    fix: str


def inotify_usage(fdinfos: Iterable[str]) -> tuple[int, int]:
    """(instances, watches) from the /proc/PID/fdinfo texts of inotify descriptors."""
    texts = list(fdinfos)
    return len(texts), sum(text.count("inotify wd:") for text in texts)


def status_uid(text: str) -> int | None:
    r"""The real uid in a /proc/PID/status text (readable even where /proc/PID/fd is not).

    >>> status_uid("Name:\tapache2\nUid:\t33\t33\t33\t33\n")
    33
    """
    for line in text.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return None


def blocked(chain: Chain, uid: int | None, gids: Iterable[int]) -> str | None:
    """The first directory of `chain` the user cannot pass (x) or, the last, read (r, x).

    `uid` None stands for any other user: the o bits decide.
    """
    groups = set(gids)
    for index, (path, mode, owner, group) in enumerate(chain if uid != 0 else ()):
        bits = mode >> 6 if uid == owner else mode >> 3 if group in groups else mode
        need = 0o5 if index == len(chain) - 1 else 0o1
        if bits & need != need:
            return path
    return None


def tracked_files(
    modules: Mapping[str, ModuleType], script: str, settings: config.Settings, library: list[str]
) -> dict[str, str]:
    """{file: module name or ""} that the middleware would track (as Tracking.update):
    the same classification of modules as the running middleware's."""
    if settings.trigger:
        return {paths.trigger_path(settings.trigger, os.path.dirname(script)): ""}
    if settings.modules == "off":
        return {}
    if settings.modules == "project":
        found = ProjectModules(library)(modules)
    else:
        found = project_modules(modules, settings.modules, library)
    return {script: "", **{path: name for name, path in found.items()}}


def plan(files: Mapping[str, str], watch: Iterable[str]) -> dict[str, bool]:
    """{directory: recursive}: the roots the middleware would schedule for these (the
    running middleware's `paths.module_roots()`, and a watch directory recursively)."""
    roots = paths.module_roots(files)
    roots += [(os.path.dirname(p), False) if os.path.isfile(p) else (p, True) for p in watch]
    return paths.merge_roots(roots)


def watched_venvs(venvs: Iterable[str], roots: Iterable[Root]) -> list[str]:
    """The virtualenvs inside a directory watched recursively (the others cost nothing).

    >>> watched_venvs(["/srv/app/.venv", "/srv/app/web/venv"], [Root("/srv/app", False),
    ...                                                         Root("/srv/app/web", True)])
    ['/srv/app/web/venv']
    """
    recursive = [root.path for root in roots if root.recursive]
    return [venv for venv in venvs if paths.under(venv, recursive)]


def left_out(
    modules: Mapping[str, ModuleType], site_roots: list[str], library: list[str]
) -> dict[str, list[str]]:
    """Names of the modules never tracked, as "stdlib" or "site-packages"."""
    out: dict[str, list[str]] = {"stdlib": [], "site-packages": []}
    for name, module in modules.items():
        file = module_file(module, real=False)
        if file and not name.startswith("reload_middleware") and is_library(module, library):
            installed = any(paths.under(f, site_roots) for f in (file, os.path.realpath(file)))
            out["site-packages" if installed else "stdlib"].append(name)
    return {kind: sorted(names) for kind, names in out.items()}


def actions(mode: str, preflight: str) -> list[dict[str, str]]:
    """The action each common server would take (servers.choose), and the check before it."""
    rows = []
    for label, server, hook, forked in SCENARIOS:
        action = servers.choose(server, mode=mode, hook_active=hook, forked=forked, windows=False)
        rows.append({"server": label, "action": action, "meaning": MEANING[action],
                     "preflight": servers.preflight_for(action, preflight)})
    return rows


def advise(facts: Facts) -> list[Advice]:
    """Every warning the facts call for, each with its fix."""
    found = [load_advice(facts)] if facts.error else []
    found += [Advice(message, "set it to an accepted value, or unset it")
              for message in facts.refused]
    if facts.settings.live and facts.settings.trigger:
        found.append(Advice(
            "live is on with a trigger set: live reload is for development, a trigger for "
            "servers others use (its pages would load a script and keep a request open)",
            "unset RELOAD_MIDDLEWARE_LIVE (or live=False) where the trigger is set"))
    if facts.disabled_by:
        found.append(Advice(f"reloading is switched off by {facts.disabled_by}",
                            f"unset {ENABLED} or set it to on"))
    needed = sum(root.watches for root in facts.roots if root.backend == "native")
    if facts.max_watches is not None and facts.watches_in_use + needed > facts.max_watches:
        found.append(Advice(
            f"{needed} inotify watches needed and {facts.watches_in_use} of {facts.max_watches}"
            " (fs.inotify.max_user_watches) in use: it would poll instead",
            f"sysctl fs.inotify.max_user_watches={max(524288, 2 * (facts.watches_in_use + needed))}"
            " (and the same line in /etc/sysctl.d/ to keep it)"))
    # Each natively watched root is an inotify instance (and a thread) in every process.
    instances = sum(1 for root in facts.roots if root.backend == "native")
    if facts.max_instances is not None and facts.instances_in_use >= facts.max_instances:
        found.append(Advice(
            f"all {facts.max_instances} inotify instances (fs.inotify.max_user_instances) are"
            " in use: each new process would poll instead",
            "sysctl fs.inotify.max_user_instances=512 (and the same line in /etc/sysctl.d/)"))
    elif facts.max_instances is not None and instances > (
            room := facts.max_instances - facts.instances_in_use) // 4:
        found.append(Advice(
            f"each process takes {instances} inotify instances (one per watched root) and"
            f" {room} of {facts.max_instances} (fs.inotify.max_user_instances) are free:"
            f" {room // instances} processes (workers, daemons) can watch natively, the"
            " next ones poll", "sysctl fs.inotify.max_user_instances=512 (and the same line"
            " in /etc/sysctl.d/), or fewer top-level packages and watch paths"))
    found += [Advice(
        f"a virtualenv inside a directory watched recursively: {venv} (each of its"
        " directories takes an inotify watch, and `pip install` counts as a code change)",
        "move it out (for mod_wsgi: python-home=/srv/venv), or exclude it: "
        f"RELOAD_MIDDLEWARE_EXCLUDE={os.path.basename(venv)}") for venv in facts.venvs]
    stuck: dict[str, list[str]] = {}
    for root in facts.roots:
        if root.blocked:
            stuck.setdefault(root.blocked, []).append(root.path)
    for directory, roots in stuck.items():
        bits = "rx" if directory in roots else "x"
        found.append(Advice(
            f"{facts.server_user} cannot read {', '.join(roots)} (no {bits} permission for them"
            f" on {directory}): a server running as them can neither import nor watch it",
            f"chmod o+{bits} {directory}, or keep the app in a directory like /srv"))
    found += [Advice(
        f"{facts.server_user} cannot read {directory}, inside the watched {root.path} (no rx"
        " permission for them): a server running as them can neither import from it nor"
        " watch it", f"chmod o+rx {directory}, or give the server's group access")
        for root in facts.roots for directory in root.closed]
    found += [Advice(exposed.describe(), trust.FIX) for exposed in facts.exposed]
    return found + preflight_advice(facts.preflight)


def load_advice(facts: Facts) -> Advice:
    """Why the script did not load here. A module doctor cannot find may be one the
    server finds through its own paths, which doctor knows only when told."""
    if (facts.error or "").startswith("ModuleNotFoundError") and not facts.python_path:
        return Advice(
            f"{facts.script} did not load here: {facts.error}",
            "if the server finds it through python-path= (WSGIDaemonProcess) or "
            "WSGIPythonPath, give doctor the same: --python-path DIR, or --apache-conf "
            "FILE to read them; else the server fails the same way")
    return Advice(f"{facts.script} did not load: {facts.error}",
                  "correct it and run doctor again: the server would fail the same way")


def apache_python_path(conf: str, script: str) -> list[str]:
    """The directories the Apache configuration text `conf` adds to sys.path for the
    WSGI script `script`: `python-path=` of the daemon process group its
    `WSGIScriptAlias` names, else `WSGIPythonPath` (embedded mode).

    >>> conf = '''
    ... WSGIDaemonProcess site processes=2 python-path=/srv/app:/srv/lib
    ... WSGIScriptAlias / /srv/app/app.wsgi process-group=site
    ... '''
    >>> apache_python_path(conf, "/srv/app/app.wsgi")
    ['/srv/app', '/srv/lib']
    >>> apache_python_path("WSGIPythonPath /srv/app", "/srv/app/app.wsgi")
    ['/srv/app']
    """
    lines = [line.split() for line in conf.splitlines() if line.strip()[:1] not in ("", "#")]
    groups = {words[1]: _option(words, "python-path") for words in lines
              if words[0].lower() == "wsgidaemonprocess" and len(words) > 1}
    for words in lines:
        if (words[0].lower() == "wsgiscriptalias" and len(words) > 2
                and os.path.realpath(words[2].strip('"')) == os.path.realpath(script)):
            group = _option(words, "process-group")
            if group and groups.get(group):
                return groups[group].split(":")
    embedded = [words[1] for words in lines if words[0].lower() == "wsgipythonpath"
                and len(words) > 1]
    return embedded[-1].split(":") if embedded else []


def _option(words: Sequence[str], name: str) -> str:
    """The value of `name=VALUE` among a directive's words, or ''."""
    return next((w.split("=", 1)[1].strip('"') for w in words
                 if w.lower().startswith(name + "=")), "")


def preflight_advice(check: Preflight | None) -> list[Advice]:
    """What a failed import preflight means before a restart (docs/promise.md)."""
    if check is None or check.failure is None:
        return []
    if check.own:
        return [Advice(
            f"the import preflight fails for a reason of its own ({check.own}): "
            f"{check.failure}; a change before a restart goes ahead on the compile check alone",
            "have the script import in a plain interpreter with the server's paths (a "
            "server's own module behind `try: ... except ImportError`), or set preflight=compile")]
    return [Advice(
        f"the import preflight fails: {check.failure} (it {check.loads} in a fresh "
        "interpreter); a change before a restart would keep the old code",
        "run the server's python on the script with the server's sys.path to see why")]


def report(facts: Facts) -> dict[str, Any]:
    """The report as JSON-ready data: facts, counts with examples, actions, warnings."""
    def sample(items: Sequence[str], tops: bool = False) -> dict[str, Any]:
        shown = sorted({i.partition(".")[0] for i in items if i[:1] != "_"}) if tops else items
        return {"count": len(items), "examples": list(shown[:5])}

    data = dataclasses.asdict(facts)
    names = ("mode", "modules", "observer", "watch", "exclude", "trigger", "preflight")
    data["settings"] = {name: data["settings"][name] for name in names}
    data["tracked"] = sample(facts.tracked)
    data["left_out"] = {kind: sample(names, True) for kind, names in facts.left_out.items()}
    data["actions"] = actions(facts.settings.mode, facts.settings.preflight)
    data["warnings"] = [dataclasses.asdict(advice) for advice in advise(facts)]
    data["not_known_here"] = {"items": list(UNKNOWABLE), "told_by": TOLD_BY}
    data.update(version=__version__, python=sys.version.split()[0], executable=sys.executable)
    return data


def render(data: Mapping[str, Any]) -> str:
    """The report for a person, from `report()`'s data."""
    def of(name: str) -> str:
        return "unknown" if data[name] is None else f"{data[name]:,}"

    lines = [
        f"reload-middleware {data['version']}, Python {data['python']} ({data['executable']})",
        f"watchdog   {data['watchdog'] or 'not installed'}, native backend {data['backend']}",
        f"inotify    watches {of('watches_in_use')} in use of {of('max_watches')}"
        " (fs.inotify.max_user_watches),",
        f"           instances {of('instances_in_use')} in use of {of('max_instances')}"
        f" (fs.inotify.max_user_instances), uid {data['uid']} ({data['processes']} processes)",
    ]
    if data["unreadable"]:
        lines.append(
            f"           not counted: {data['unreadable']} processes of uid {data['uid']} whose"
            " /proc/PID/fd cannot be read (mod_wsgi daemons, for one, even by their own user):"
            " run doctor as root to count them")
    if data["script"]:
        shown = {k: ", ".join(v) if isinstance(v, list | tuple) else v
                 for k, v in data["settings"].items()}
        lines += [f"script     {data['script']}",
                  *([f"python-path {':'.join(data['python_path'])}"]
                    if data.get("python_path") else []),
                  "settings   " + ", ".join(f"{k} {v}" for k, v in shown.items() if v),
                  f"tracked    {data['tracked']['count']} files, e.g. " + ", ".join(
                      os.path.relpath(f, os.path.dirname(data["script"]))
                      for f in data["tracked"]["examples"])]
        for n, root in enumerate(data["roots"]):
            kind = "recursive" if root["recursive"] else "this directory only"
            lines.append(f"{'' if n else 'watched':11}{root['path']} ({kind}, {root['backend']}"
                         f", inotify watches: {root['watches']})")
        if data["preflight"]:
            check = data["preflight"]
            lines.append(f"preflight  {check['loads']} in a fresh interpreter: "
                         f"{'fails (see warnings)' if check['failure'] else 'ok'}")
        for n, (kind, names) in enumerate(data["left_out"].items()):
            examples = ", e.g. " + ", ".join(names["examples"]) if names["examples"] else ""
            lines.append(f"{'' if n else 'left out':11}{kind}: {names['count']} modules it"
                         f" loaded{examples}")
        unknown = data["not_known_here"]
        lines += ["not known here (only the server's processes know):"]
        lines += [f"  - {item}" for item in unknown["items"]]
        lines += [f"  see {unknown['told_by']}"]
    lines += ["on a change:", f"  {'server':35}{'action':20}{'check':9}what happens"]
    lines += [f"  {row['server']:35}{row['action']:20}{row['preflight']:9}{row['meaning']}"
              for row in data["actions"]]
    lines.append(f"warnings: {len(data['warnings'])}" if data["warnings"] else "no warnings")
    for advice in data["warnings"]:
        lines += [f"  ! {advice['problem']}", f"    fix: {advice['fix']}"]
    return "\n".join(lines)
