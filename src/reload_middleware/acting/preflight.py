"""What must succeed before a restart or reload: compile, or import in a fresh process.

>>> failure = compile_files(["/srv/app/views.py"])             # doctest: +SKIP
>>> failure.summary if failure else "ok"                        # doctest: +SKIP
'/srv/app/views.py:12: invalid syntax'
>>> import_app(entry.Entry("path", "/srv/app/app.wsgi"), "/srv/app/app.wsgi")  # doctest: +SKIP

An import that fails for a reason of its own, not the app's, says why in `Failure.own`
(see `own_reason`); `check()` then goes ahead on the compile preflight alone, and logs it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from .. import file_reads, logs
from ..watching import paths
from ..watching.project_modules import library_roots
from . import entry

if TYPE_CHECKING:
    from ..script import Script


@dataclass(frozen=True)
class Failure:
    """Why new code cannot be loaded: the file and line to blame, and the traceback."""

    file: str
    line: int | None
    message: str
    traceback: str
    files: tuple[str, ...] = ()  # every file named in the traceback
    missing: str | None = None  # the module an import could not find
    own: str = ""  # why the preflight failed for a reason of its own; empty: the app did

    @property
    def summary(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


def compile_files(
    files: Iterable[str],
    read: Callable[[str], bytes] = file_reads.read,
    unreadable: Callable[[str, OSError], None] | None = None,
    *,
    told: logs.Once | None = None,
) -> Failure | None:
    """Compile each existing .py file in memory (no .pyc is written); first failure wins.

    Read by `file_reads.read`: never waiting on a FIFO, never through a symlink as the
    last component (what the app imported is tracked by its real path), a regular file
    of at most 1 MiB. A file that cannot be read, or is not read, is skipped, never a
    failure: one file dropped in a watched directory (and never imported) must not block
    every reload. It is reported through `unreadable`; by default it is logged once per
    file and error remembered in `told` (the interpreter's, as every change compiles it
    again; None: logged every time). A file that is gone is skipped silently.
    """
    report = unreadable or functools.partial(_log_unreadable, told)
    for path in sorted(files):
        if not path.endswith((".py", ".wsgi")):
            continue
        try:
            source = read(path)
        except (FileNotFoundError, NotADirectoryError):
            continue  # deleted or moved away: the import preflight or the reload tells
        except OSError as exc:
            report(path, exc)
            continue
        try:
            compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            return from_exception(exc, default_file=path)
    return None


def _log_unreadable(told: logs.Once | None, path: str, exc: OSError) -> None:
    """Say that `path` cannot be read, unless `told` remembers saying it."""
    if told is not None and not told.first(("unreadable", path, exc.errno)):
        return
    why = "%s is not read (%s)" if isinstance(exc, file_reads.Refused) else "cannot read %s (%s)"
    logs.error(why + ": not compiled before acting; other changes go ahead",
               path, exc.strerror or exc)


def from_exception(exc: BaseException, default_file: str = "?") -> Failure:
    """A Failure naming the innermost project frame (or the file of a SyntaxError)."""
    text = "".join(traceback.format_exception(exc))
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.isfile(f.filename)]
    library = library_roots()
    project = [f for f in frames if not paths.under(os.path.realpath(f.filename), library)]
    file, line = (project[-1].filename, project[-1].lineno) if project else (default_file, None)
    named = [f.filename for f in frames]
    if isinstance(exc, SyntaxError) and exc.filename:
        file, line = exc.filename, exc.lineno
        named.append(exc.filename)
    detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    message = f"{type(exc).__name__}: {detail}"
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    return Failure(file, line, message, text, tuple(dict.fromkeys(named)), missing)


# Run in the child: load the application as the server did (entry.py), report as JSON.
_CHILD = r"""
import json, runpy, sys, traceback, importlib
how, target, blame = sys.argv[1:4]
try:
    if how == "name":
        importlib.import_module(target)
    elif how == "ini":  # a PasteDeploy file is the script: load its main app
        from paste.deploy import loadapp
        loadapp("config:" + target)
    else:
        runpy.run_path(target, run_name="__reload_middleware_preflight__")
    for more in sys.argv[4:]:  # changed modules the app imports later (Django's views)
        importlib.import_module(more)
except BaseException as exc:
    from dataclasses import asdict
    from reload_middleware.acting.preflight import from_exception
    print(json.dumps(asdict(from_exception(exc, blame))))
    sys.exit(1)
"""


def python_executable() -> str:
    """An interpreter for this environment (uWSGI and mod_wsgi are not Python themselves)."""
    if os.path.basename(sys.executable).startswith("python"):
        return sys.executable
    candidate = os.path.join(sys.exec_prefix, "bin", f"python{sys.version_info[0]}")
    return candidate if os.path.exists(candidate) else sys.executable


def import_app(
    start: entry.Entry,
    blame: str,
    also: Iterable[str] = (),
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    timeout: float = 60.0,
    loaded: Mapping[str, ModuleType | None] | None = None,
) -> Failure | None:
    """Load the application as `start` says in a separate process with this interpreter
    and sys.path, then import the modules named in `also` (changed ones the app may
    import only on a request). A failure names the file `blame` (the script) when its
    traceback names no project file; one of the preflight's own says why in `own`, from
    what this process has `loaded` (by default sys.modules)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # The middleware the script builds there checks its options and tracks nothing: the
    # child only tells whether the app loads (no classification, no baseline of every file).
    env["RELOAD_MIDDLEWARE_ENABLED"] = "off"
    try:
        done = run(
            [python_executable(), "-c", _CHILD, start.how, start.target, blame, *also],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
            cwd=os.getcwd(), stdin=subprocess.DEVNULL,  # never a server's terminal
        )
    except subprocess.TimeoutExpired:
        # The app's own import is what ran this long: a restarted process would too.
        return Failure(blame, None, f"the import did not finish within {timeout:g} s", "")
    except OSError as exc:
        return Failure(blame, None, f"preflight import could not run: {exc}", "",
                       own="no interpreter to import the app in")
    if done.returncode == 0:
        return None
    return _reported(done, blame, sys.modules if loaded is None else loaded)


def _reported(done: subprocess.CompletedProcess[str], blame: str,
              loaded: Mapping[str, ModuleType | None]) -> Failure:
    """The failure the child reported on its last line, or why there is no report."""
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
        failure = Failure(
            report["file"], report["line"], report["message"], report["traceback"],
            tuple(f for f in report["files"] if not paths.under(f, library_roots())),
            report.get("missing"),
        )
    except (ValueError, LookupError, TypeError):
        # Killed by a signal, it may have crashed in the app's import (an extension
        # module): a restart would crash alike. Ended by itself without a report, its
        # interpreter could not even report: the preflight's environment, not the app.
        own = "" if done.returncode < 0 else f"the import's interpreter ended with " \
            f"status {done.returncode} before it could report"
        return Failure(blame, None, "preflight import failed", done.stderr[-4000:], own=own)
    return dataclasses.replace(failure, own=own_reason(failure.missing, loaded))


def own_reason(missing: str | None, loaded: Mapping[str, ModuleType | None],
               exists: Callable[[str], bool] = os.path.exists) -> str:
    """Why an import that could not find the module `missing` failed for a reason of its
    own, or "" when it is the app's failure.

    The server has that module (it is in this process's `loaded` modules, from a file
    still there, or with no file: built into the server, as uWSGI's `uwsgi`), so the
    preflight, not the app, failed to find it: a name the server made up, a path the
    server has and a plain interpreter has not. A module this process never loaded, or
    whose file is gone (deleted, moved away), is missing for a restarted process too.

    >>> own_reason("uwsgi", {"uwsgi": ModuleType("uwsgi")})
    'the server has uwsgi with no file, where a plain interpreter does not find it'
    >>> own_reason("myproject.gone", {})
    ''
    """
    module = loaded.get(missing) if missing else None
    if module is None:
        return ""
    file = getattr(module, "__file__", None)
    if isinstance(file, str) and not exists(file):
        return ""
    where = f"from {file}" if isinstance(file, str) else "with no file"
    return f"the server has {missing} {where}, where a plain interpreter does not find it"


def check(kind: str, changed: Iterable[str], script: Script | None,
          modules: Iterable[str] = (),
          importer: Callable[..., Failure | None] = import_app,
          *, told: logs.Once | None = None) -> Failure | None:
    """What `kind` of preflight ("compile", "import" or "off", see
    `servers.preflight_for`) finds wrong with the changed files and the script; an
    import loads the app as the server did (entry.py) and then imports the changed
    `modules` importable by name (Django's views load later). An unreadable file is
    said once as far as `told` remembers (`compile_files`).

    An import that fails for a reason of its own is no failure: the changed files
    compile, the change goes ahead, and the log says why the import could not tell
    (docs/promise.md). Holding old code for it would hold it for good.
    """
    if kind == "off":
        return None
    failure = compile_files({*changed, *([script.path] if script else [])}, told=told)
    if failure is not None or kind != "import" or script is None:
        return failure
    start = entry.of(script.name, script.given)
    failure = importer(start, script.given, also=entry.after(start, modules))
    if failure is None or not failure.own:
        return failure
    logs.error("import preflight failed for a reason of its own, not the app's (%s): %s. It "
               "%s; the changed files compile, so the change goes ahead on that alone%s",
               failure.own, failure.summary, start, _indented(failure.traceback))
    return None


def _indented(traceback: str) -> logs.Lines | str:
    """A traceback for the end of a log line: on lines of its own, or nothing."""
    return logs.Lines("\n" + traceback.rstrip()) if traceback.strip() else ""
