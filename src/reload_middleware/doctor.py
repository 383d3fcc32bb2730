"""`reload-middleware doctor [SCRIPT]`: why a change would or would not reload, no server.

The script is executed with the middleware switched off (nothing is watched), and the
report is computed from what its import loaded; without a script, the machine alone.

    $ reload-middleware doctor /srv/myproject/app.wsgi
    $ reload-middleware doctor /srv/myproject/app.wsgi --json | jq .warnings
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import site
import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import config, paths, servers, watcher
from ._version import __version__
from .modules import is_library, library_roots, module_file, project_modules
from .tracking import Tracking

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
    "hook": "reload_required() is True: mod_wsgi restarts the daemon, the new one serves it",
    "signal": "SIGINT to the daemon after a 307 (GET, HEAD) or the old code's answer",
    "reload": "the script is executed again in the same process",
    "gunicorn": "SIGTERM to the worker after a 307 or the answer; gunicorn starts a new one",
    "uwsgi": "uwsgi.reload(): one graceful reload of the instance",
    "apache-windows": "Apache restarts through ap_signal_parent",
}
ENABLED = "RELOAD_MIDDLEWARE_ENABLED"
SKIPPED = (".git", "node_modules", "__pycache__")  # never searched for a virtualenv
Chain = Sequence[tuple[str, int, int, int]]  # (path, mode, owner, group) from / down


@dataclass
class Root:
    """A directory the middleware would watch."""

    path: str
    recursive: bool
    backend: str = "native"  # "polling" on a remote filesystem or with observer=polling
    watches: int = 1  # inotify watches it takes: one per directory, none when polled
    blocked: str | None = None  # the first directory the server's user cannot get through


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
    uid: int = 0
    server_user: str = "other users"
    script: str | None = None
    error: str | None = None  # what went wrong executing the script
    disabled_by: str | None = None
    refused: list[str] = field(default_factory=list)  # bad RELOAD_MIDDLEWARE_* values
    settings: config.Settings = field(default_factory=config.Settings)
    tracked: list[str] = field(default_factory=list)
    roots: list[Root] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    venvs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Advice:
    problem: str
    fix: str


def inotify_usage(fdinfos: Iterable[str]) -> tuple[int, int]:
    """(instances, watches) from the /proc/PID/fdinfo texts of inotify descriptors."""
    texts = list(fdinfos)
    return len(texts), sum(text.count("inotify wd:") for text in texts)


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
    """{file: module name or ""} that the middleware would track (as Tracking.update)."""
    if settings.trigger:
        return {paths.resolve([settings.trigger], os.path.dirname(script))[0]: ""}
    if settings.modules == "off":
        return {}
    found = project_modules(modules, settings.modules, library)
    return {script: "", **{path: name for name, path in found.items()}}


def plan(files: Mapping[str, str], watch: Iterable[str]) -> dict[str, bool]:
    """{directory: recursive}: the roots the middleware would schedule for these."""
    roots = [paths.watch_root(p, n) if n else (os.path.dirname(p), False) for p, n in files.items()]
    roots += [(os.path.dirname(p), False) if os.path.isfile(p) else (p, True) for p in watch]
    return paths.merge_roots(roots)


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
        auto = "import" if action in ("gunicorn", "uwsgi") else "compile"
        rows.append({"server": label, "action": action, "meaning": MEANING[action],
                     "preflight": auto if preflight == "auto" else preflight})
    return rows


def advise(facts: Facts) -> list[Advice]:
    """Every warning the facts call for, each with its fix."""
    found = [Advice(f"{facts.script} did not load: {facts.error}",
                    "correct it and run doctor again: the server would fail the same way")
             ] if facts.error else []
    found += [Advice(message, "set it to an accepted value, or unset it")
              for message in facts.refused]
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
    if facts.max_instances is not None and facts.instances_in_use >= facts.max_instances:
        found.append(Advice(
            f"all {facts.max_instances} inotify instances (fs.inotify.max_user_instances) are"
            " in use: each new process would poll instead",
            "sysctl fs.inotify.max_user_instances=512 (and the same line in /etc/sysctl.d/)"))
    found += [Advice(
        f"a virtualenv inside the app directory: {venv} (a watch over the app directory covers"
        " every installed package, and `pip install` counts as a code change)",
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
    return found


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
    if data["script"]:
        shown = {k: ", ".join(v) if isinstance(v, list | tuple) else v
                 for k, v in data["settings"].items()}
        lines += [f"script     {data['script']}",
                  "settings   " + ", ".join(f"{k} {v}" for k, v in shown.items() if v),
                  f"tracked    {data['tracked']['count']} files, e.g. " + ", ".join(
                      os.path.relpath(f, os.path.dirname(data["script"]))
                      for f in data["tracked"]["examples"])]
        for n, root in enumerate(data["roots"]):
            kind = "recursive" if root["recursive"] else "this directory only"
            lines.append(f"{'' if n else 'watched':11}{root['path']} ({kind}, {root['backend']}"
                         f", inotify watches: {root['watches']})")
        for n, (kind, names) in enumerate(data["left_out"].items()):
            examples = ", e.g. " + ", ".join(names["examples"]) if names["examples"] else ""
            lines.append(f"{'' if n else 'left out':11}{kind}: {names['count']} modules it"
                         f" loaded{examples}")
    lines += ["on a change:", f"  {'server':35}{'action':10}{'check':9}what happens"]
    lines += [f"  {row['server']:35}{row['action']:10}{row['preflight']:9}{row['meaning']}"
              for row in data["actions"]]
    lines.append(f"warnings: {len(data['warnings'])}" if data["warnings"] else "no warnings")
    for advice in data["warnings"]:
        lines += [f"  ! {advice['problem']}", f"    fix: {advice['fix']}"]
    return "\n".join(lines)


def gather(script: str | None, load: Callable[[str], ModuleType]) -> Facts:
    """The facts of this machine, and of `script` executed by `load` with reloading off."""
    facts = Facts(backend=watcher.native_backend(), uid=os.getuid())
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        facts.watchdog = importlib.metadata.version("watchdog")
    limits = [_read(f"/proc/sys/fs/inotify/max_user_{n}").strip() for n in ("watches", "instances")]
    facts.max_watches, facts.max_instances = (int(n) if n.isdigit() else None for n in limits)
    fdinfos, facts.processes = _inotify_fdinfos(facts.uid)
    facts.instances_in_use, facts.watches_in_use = inotify_usage(fdinfos)
    uid, gids, facts.server_user = _server_user()
    facts.settings = config.overlay(config.Settings(), os.environ, config.os_key,
                                    facts.refused.append)
    if script is None:
        return facts
    facts.script = path = os.path.realpath(script)
    given, module = os.environ.get(ENABLED), None
    if config.FLAG_WORDS.get((given or "").strip().lower()) is False:
        facts.disabled_by = f"{ENABLED}={given}"
    os.environ[ENABLED] = "off"  # the middleware the script builds watches nothing
    before = set(sys.modules)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # --json output stays clean
            module = load(path)
    except Exception as exc:
        facts.error = f"{type(exc).__name__}: {exc}"
    finally:
        if given is None:
            del os.environ[ENABLED]
        else:
            os.environ[ENABLED] = given
    # All of sys.modules, as the middleware looks at it (a server's own modules are library).
    loaded = {n: m for n, m in list(sys.modules.items()) if m is not None}
    app = getattr(module, "application", None)
    if module is not None and app is None:
        facts.error = "it defines no 'application'"
    # What the script gave the middleware (keywords, with the OS variables over them).
    if isinstance(settings := getattr(app, "_settings", None), config.Settings):
        facts.settings = settings
    library = list(library_roots())
    files = tracked_files(loaded, path, facts.settings, library)
    extra = () if facts.settings.trigger else (*facts.settings.watch, *Tracking.extra)
    mounts = paths.parse_mounts(_read("/proc/self/mounts"))
    for root, recursive in plan(files, paths.resolve(extra, os.path.dirname(path))).items():
        remote = paths.remote(paths.filesystem_of(root, mounts))
        polled = remote or facts.settings.observer == "polling"
        watches = 0 if polled else _directories(root) if recursive else 1
        facts.roots.append(Root(root, recursive, "polling" if polled else "native", watches,
                                blocked(_chain(root), uid, gids)))
    facts.tracked = sorted(files)
    fresh = {n: m for n, m in loaded.items() if n not in before}  # not ours, nor the CLI's
    facts.left_out = left_out(fresh, _site_roots(), library)
    facts.venvs = _venvs(os.path.dirname(path))
    return facts


def main(script: str | None, *, as_json: bool, load: Callable[[str], ModuleType]) -> int:
    """Print the report; 1 when there are warnings, else 0."""
    data = report(gather(script, load))
    print(json.dumps(data, indent=2) if as_json else render(data))
    return 1 if data["warnings"] else 0


def _read(path: str) -> str:
    try:
        with open(path) as source:
            return source.read()
    except OSError:
        return ""  # not Linux, or not ours to read


def _inotify_fdinfos(uid: int) -> tuple[list[str], int]:
    """fdinfo texts of the inotify descriptors of `uid`'s readable processes, and their count."""
    texts, processes = [], 0
    for pid in (p for p in (os.listdir("/proc") if os.path.isdir("/proc") else ()) if p.isdigit()):
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}").st_uid == uid:
                fds = os.listdir(f"/proc/{pid}/fd")
                processes += 1
                for fd in fds:
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                            texts.append(_read(f"/proc/{pid}/fdinfo/{fd}"))
    return texts, processes


def _server_user() -> tuple[int | None, list[int], str]:
    """Who a server would run as: www-data when we are root (Apache's children), else others."""
    if os.name == "posix" and os.getuid() == 0:
        import grp
        import pwd

        with contextlib.suppress(KeyError):
            user = pwd.getpwnam("www-data")
            groups = [g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem]
            return user.pw_uid, [user.pw_gid, *groups], "www-data"
    return None, [], "other users"


def _chain(directory: str) -> Chain:
    """(path, mode, owner, group) of `/` and each directory down to `directory`."""
    parts = directory.rstrip(os.sep).split(os.sep)
    try:
        stats = [(p, os.stat(p)) for p in [os.sep, *(os.sep.join(parts[:i]) for i in
                                                       range(2, len(parts) + 1))]]
    except OSError:
        return []  # not there (yet): nothing to say about it
    return [(p, s.st_mode, s.st_uid, s.st_gid) for p, s in stats]


def _directories(root: str) -> int:
    """inotify watches a recursive root takes: one for each directory."""
    return 1 + sum(len(subdirs) for _, subdirs, _ in os.walk(root))


def _site_roots() -> list[str]:
    found = sysconfig.get_paths()
    roots = {found[k] for k in ("purelib", "platlib") if k in found}
    roots.update([*getattr(site, "getsitepackages", list)(), site.getusersitepackages()])
    return sorted(os.path.realpath(r) for r in roots)


def _venvs(top: str, depth: int = 3) -> list[str]:
    """Directories holding a pyvenv.cfg at most `depth` levels below `top`."""
    found = []
    for directory, subdirs, files in os.walk(top):
        if "pyvenv.cfg" in files:
            found.append(directory)
        deep = directory.count(os.sep) - top.count(os.sep) >= depth
        subdirs[:] = [] if deep or "pyvenv.cfg" in files else sorted(set(subdirs) - set(SKIPPED))
    return sorted(found)
