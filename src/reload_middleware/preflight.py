"""What must succeed before a restart or reload: compile, or import in a fresh process.

>>> failure = compile_files(["/srv/app/views.py"])             # doctest: +SKIP
>>> failure.summary if failure else "ok"                        # doctest: +SKIP
'/srv/app/views.py:12: invalid syntax'
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import logs, paths
from .modules import library_roots

if TYPE_CHECKING:
    from .reloading import Script


@dataclass(frozen=True)
class Failure:
    """Why new code cannot be loaded: the file and line to blame, and the traceback."""

    file: str
    line: int | None
    message: str
    traceback: str
    files: tuple[str, ...] = ()  # every file named in the traceback

    @property
    def summary(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


def compile_files(
    files: Iterable[str],
    read: Callable[[str], bytes] = lambda path: pathlib.Path(path).read_bytes(),
    unreadable: Callable[[str, OSError], None] | None = None,
) -> Failure | None:
    """Compile each existing .py file in memory (no .pyc is written); first failure wins.

    A file that cannot be read is skipped, never a failure: one unreadable file dropped
    in a watched directory (and never imported) must not block every reload. It is
    reported through `unreadable` (by default: logged once per file and error).
    """
    report = unreadable or _log_unreadable_once
    for path in sorted(files):
        if not path.endswith((".py", ".wsgi")) or not os.path.isfile(path):
            continue
        try:
            source = read(path)
        except OSError as exc:
            report(path, exc)
            continue
        try:
            compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            return from_exception(exc, default_file=path)
    return None


_REPORTED: set[tuple[str, int | None]] = set()
_REPORTED_LOCK = threading.Lock()


def _log_unreadable_once(path: str, exc: OSError) -> None:
    with _REPORTED_LOCK:
        if (path, exc.errno) in _REPORTED:
            return
        _REPORTED.add((path, exc.errno))
    logs.error("cannot read %s (%s): not compiled before acting; other changes go ahead",
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
    return Failure(file, line, message, text, tuple(dict.fromkeys(named)))


# Run in the child: import the application the way the server will, report as JSON.
_CHILD = r"""
import json, runpy, sys, traceback, importlib
name, path = sys.argv[1], sys.argv[2]
try:
    if name:
        importlib.import_module(name)
    elif path.endswith(".ini"):  # a PasteDeploy file is the script: load its main app
        from paste.deploy import loadapp
        loadapp("config:" + path)
    else:
        runpy.run_path(path, run_name="__reload_middleware_preflight__")
    for more in sys.argv[3:]:  # changed modules the app imports later (Django's views)
        importlib.import_module(more)
except BaseException as exc:
    from dataclasses import asdict
    from reload_middleware.preflight import from_exception
    print(json.dumps(asdict(from_exception(exc, path))))
    sys.exit(1)
"""


def python_executable() -> str:
    """An interpreter for this environment (uWSGI and mod_wsgi are not Python themselves)."""
    if os.path.basename(sys.executable).startswith("python"):
        return sys.executable
    candidate = os.path.join(sys.exec_prefix, "bin", f"python{sys.version_info[0]}")
    return candidate if os.path.exists(candidate) else sys.executable


def import_app(
    module: str,
    path: str,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    timeout: float = 60.0,
    also: Iterable[str] = (),
) -> Failure | None:
    """Import the application in a separate process with this interpreter and sys.path,
    then the modules named in `also` (changed ones the app may import only on a request)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        done = run(
            [python_executable(), "-c", _CHILD, module, path, *also],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
            cwd=os.getcwd(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Failure(path, None, f"preflight import could not run: {exc}", "")
    if done.returncode == 0:
        return None
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
        return Failure(
            report["file"], report["line"], report["message"], report["traceback"],
            tuple(f for f in report["files"] if not paths.under(f, library_roots())),
        )
    except (ValueError, LookupError, TypeError):
        return Failure(path, None, "preflight import failed", done.stderr[-4000:])


def check(kind: str, changed: Iterable[str], script: Script | None,
          modules: Iterable[str] = ()) -> Failure | None:
    """What `kind` of preflight ("compile", "import" or "off", see
    `servers.preflight_for`) finds wrong with the changed files and the script; an
    import also imports the changed `modules` after the app (Django's views load later)."""
    if kind == "off":
        return None
    failure = compile_files({*changed, *([script.path] if script else [])})
    if failure is None and kind == "import" and script is not None:
        failure = import_app(script.name if script.importable else "", script.given,
                             also=modules)
    return failure
