"""What this machine says, for the doctor: /proc, the server's user, the script's import.

`gather()` is the doctor's one place with side effects: it reads /proc, walks the
watched directories, looks up users, and executes the script with reloading off.
`doctor.report()` turns what it found into the report.

    >>> facts = gather("/srv/myproject/app.wsgi", cli.execute)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import site
import sys
import sysconfig
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType

from .. import config, interpreter
from ..acting import entry, preflight
from ..watching import observers, paths, trust
from ..watching.project_modules import library_roots
from .doctor import (
    ENABLED,
    Chain,
    Facts,
    Preflight,
    Root,
    blocked,
    inotify_usage,
    left_out,
    plan,
    status_uid,
    tracked_files,
    watched_venvs,
)

SKIPPED = (".git", "node_modules", "__pycache__")  # never searched for a virtualenv


def gather(script: str | None, load: Callable[[str], ModuleType],
           python_path: Sequence[str] = ()) -> Facts:
    """The facts of this machine, and of `script` executed by `load` with reloading off,
    with the server's `python_path` directories added to sys.path as mod_wsgi adds them."""
    facts = Facts(backend=observers.native_backend(), uid=os.getuid(),
                  python_path=list(python_path))
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        facts.watchdog = importlib.metadata.version("watchdog")
    limits = [_read(f"/proc/sys/fs/inotify/max_user_{n}").strip() for n in ("watches", "instances")]
    facts.max_watches, facts.max_instances = (int(n) if n.isdigit() else None for n in limits)
    uid, gids, facts.server_user = _server_user()
    # The limits are per user: as root, count what the server's user holds.
    facts.uid = facts.uid if uid is None else uid
    fdinfos, facts.processes, facts.unreadable = _inotify_fdinfos(facts.uid)
    facts.instances_in_use, facts.watches_in_use = inotify_usage(fdinfos)
    facts.settings = config.overlay(config.Settings(), os.environ, config.os_key,
                                    facts.refused.append)
    if script is None:
        return facts
    facts.script = path = os.path.realpath(script)
    given, module = os.environ.get(ENABLED), None
    if config.FLAG_WORDS.get((given or "").strip().lower()) is False:
        facts.disabled_by = f"{ENABLED}={given}"
    os.environ[ENABLED] = "off"  # the middleware the script builds watches nothing
    for directory in python_path:  # .pth files included, as mod_wsgi's python-path=
        site.addsitedir(directory)
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
    if module is not None and facts.error is None:
        facts.preflight = check_import(module.__name__, path)
    # What the script gave the middleware (keywords, with the OS variables over them).
    if isinstance(settings := getattr(app, "settings", None), config.Settings):
        facts.settings = settings
    library = list(library_roots())
    fresh = {n: m for n, m in loaded.items() if n not in before}  # not ours, nor the CLI's
    files = tracked_files(fresh, path, facts.settings, library)
    tracked = interpreter.current().tracked
    extra = () if facts.settings.trigger else (*facts.settings.watch, *tracked)
    watch = paths.resolve(extra, os.path.dirname(path))
    mounts = paths.parse_mounts(_read("/proc/self/mounts"))
    for root, recursive in plan(files, watch).items():
        remote = paths.remote(paths.filesystem_of(root, mounts))
        polled = remote or facts.settings.observer == "polling"
        count, closed = _directories(root, uid, gids) if recursive else (1, [])
        facts.roots.append(Root(root, recursive, "polling" if polled else "native",
                                0 if polled else count, blocked(_chain(root), uid, gids),
                                closed))
    facts.tracked = sorted(_known(files, watch, facts.settings))
    # Who may write beside them: other than the server's account, root and the code's owner.
    trusted = trust.accounts(facts.uid, trust.code_owner(path))
    trigger = paths.trigger_path(facts.settings.trigger, os.path.dirname(path)) \
        if facts.settings.trigger else None
    facts.exposed = trust.exposures(trigger, watch, trusted)
    facts.left_out = left_out(fresh, _site_roots(), library)
    tops = [root.path for root in facts.roots if root.recursive]
    facts.venvs = watched_venvs(sorted({v for top in tops for v in _venvs(top)}), facts.roots)
    return facts


def check_import(name: str, path: str) -> Preflight:
    """The import preflight a server's process would run before a restart, for the
    script module `name` from the file `path`, in a fresh interpreter."""
    start = entry.of(name, path)
    failure = preflight.import_app(start, path)
    if failure is None:
        return Preflight(str(start))
    return Preflight(str(start), failure.summary, failure.own)


def _known(files: dict[str, str], watch: tuple[str, ...], settings: config.Settings) -> set[str]:
    """Every file a process would count at start: the tracked files, the watch paths that
    are files, and the files below the watch directories (as the server's start line)."""
    dirs = [p for p in watch if os.path.isdir(p)]
    below = paths.files_below(dirs, paths.DEFAULT_EXCLUDES + settings.exclude)
    return {*files, *(p for p in watch if os.path.isfile(p)), *below}


def _read(path: str) -> str:
    try:
        with open(path) as source:
            return source.read()
    except OSError:
        return ""  # not Linux, or not ours to read


def _inotify_fdinfos(uid: int) -> tuple[list[str], int, int]:
    """fdinfo texts of the inotify descriptors of `uid`'s processes, how many processes
    were read, and how many could not be (a process that changed its user, as a mod_wsgi
    daemon does, is not dumpable: only root reads its /proc/PID/fd)."""
    texts, processes, unreadable = [], 0, 0
    for pid in (p for p in (os.listdir("/proc") if os.path.isdir("/proc") else ()) if p.isdigit()):
        if status_uid(_read(f"/proc/{pid}/status")) != uid:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except PermissionError:
            unreadable += 1
            continue
        except OSError:
            continue  # gone meanwhile
        processes += 1
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                    texts.append(_read(f"/proc/{pid}/fdinfo/{fd}"))
    return texts, processes, unreadable


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


def _directories(root: str, uid: int | None, gids: Iterable[int]) -> tuple[int, list[str]]:
    """The inotify watches a recursive root takes (one for each directory), and the
    directories below it the server's user cannot read (doctor.blocked)."""
    count, closed = 1, []
    for directory, subdirs, _ in os.walk(root):
        count += len(subdirs)
        for name in subdirs:
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                info = os.stat(path)
                if blocked([(path, info.st_mode, info.st_uid, info.st_gid)], uid, gids):
                    closed.append(path)
    return count, closed


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
