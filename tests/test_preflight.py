"""Preflight: compile changed files, name the failing file and line, import in a child."""

from __future__ import annotations

import importlib
import json
import logging
import os
import runpy
import subprocess
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

import pytest

from reload_middleware import logs
from reload_middleware.acting import entry, preflight
from reload_middleware.acting.entry import Entry
from reload_middleware.acting.preflight import Failure, compile_files, from_exception, import_app
from reload_middleware.script import Script


def write(path: Path, text: str) -> str:
    """Create `path` holding `text`; returns it as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def raised_by(path: str) -> BaseException:
    """The exception running the script at `path` raises."""
    try:
        runpy.run_path(path, run_name="__preflight_test__")
    except Exception as exc:
        return exc
    raise AssertionError(f"{path} ran without an error")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """tmp_path with symlinks resolved, as the middleware reports real paths."""
    return tmp_path.resolve()


# --- Failure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "summary"),
    [
        (Failure("/srv/app/views.py", 12, "SyntaxError: invalid syntax", ""),
         "/srv/app/views.py:12: SyntaxError: invalid syntax"),
        (Failure("/srv/app/app.wsgi", None, "ImportError: no module", ""),
         "/srv/app/app.wsgi: ImportError: no module"),
        (Failure("?", 0, "RuntimeError: boom", ""), "?: RuntimeError: boom"),
    ],
    ids=["with-line", "without-line", "line-zero"],
)
def test_failure_summary(failure: Failure, summary: str) -> None:
    """The error log and the debug page say `file:line: message`."""
    assert failure.summary == summary


# --- compile_files ----------------------------------------------------------------------


def test_compile_files_all_good(root: Path) -> None:
    """Saving valid code passes the compile preflight."""
    files = [
        write(root / "views.py", "def view():\n    return 1\n"),
        write(root / "app.wsgi", "application = None\n"),
    ]
    assert compile_files(files) is None


def test_compile_files_syntax_error(root: Path) -> None:
    """A save with a syntax error is reported with its file, line and Python's message."""
    good = write(root / "a_good.py", "x = 1\n")
    bad = write(root / "views.py", "def view():\n    return (\n\n")
    failure = compile_files([good, bad])
    assert failure is not None
    assert (failure.file, failure.line) == (bad, 2)
    assert failure.message == "SyntaxError: '(' was never closed"
    assert failure.summary == f"{bad}:2: SyntaxError: '(' was never closed"
    assert bad in failure.files
    assert "SyntaxError" in failure.traceback


def test_compile_files_checks_the_wsgi_script(root: Path) -> None:
    """A syntax error in the `.wsgi` script itself is caught before any restart."""
    script = write(root / "app.wsgi", "application = = None\n")
    failure = compile_files([script])
    assert failure is not None
    assert (failure.file, failure.line) == (script, 1)


def test_compile_files_first_failure_in_path_order(root: Path) -> None:
    """With several broken files the first by path is named, the same on every request."""
    b = write(root / "b.py", "b = (\n")
    a = write(root / "a.py", "a = ]\n")
    failure = compile_files({b, a})
    assert failure is not None
    assert failure.file == a


@pytest.mark.parametrize(
    "name",
    ["index.html", "settings.json", "views.pyc", "README", "style.css"],
    ids=["template", "json", "pyc", "no-suffix", "css"],
)
def test_compile_files_skips_non_python(root: Path, name: str) -> None:
    """Templates and data files are watched but never compiled."""
    assert compile_files([write(root / name, "{% if x %}\ndef (\n")]) is None


def test_compile_files_skips_missing_and_directories(root: Path) -> None:
    """A deleted file or a directory named like a module is not an error."""
    (root / "pkg.py").mkdir()
    assert compile_files([str(root / "gone.py"), str(root / "pkg.py")]) is None


def test_compile_files_writes_no_bytecode(root: Path) -> None:
    """Preflight leaves no `__pycache__` behind in the project."""
    compile_files([write(root / "views.py", "x = 1\n"), write(root / "bad.py", "x = (\n")])
    assert sorted(p.name for p in root.iterdir()) == ["bad.py", "views.py"]


@pytest.mark.parametrize(
    "content",
    [b"x = '\xff\xfe'\n", b"# -*- coding: klingon -*-\nx = 1\n"],
    ids=["not-utf8", "unknown-coding"],
)
def test_compile_files_unreadable_source(root: Path, content: bytes) -> None:
    """A file Python cannot even decode as source is a failure naming that file."""
    path = root / "views.py"
    path.write_bytes(content)
    failure = compile_files([str(path)])
    assert failure is not None
    assert failure.file == str(path)
    assert failure.message.startswith("SyntaxError: ")


def test_compile_files_null_byte_names_the_file(root: Path) -> None:
    """A stray NUL byte in a saved module is reported in that module, not in the middleware."""
    path = root / "views.py"
    path.write_bytes(b"x = 1\x00\n")
    failure = compile_files([str(path)])
    assert failure is not None
    assert "null bytes" in failure.message
    assert failure.file == str(path)


# --- from_exception ---------------------------------------------------------------------


def test_from_exception_names_the_raising_line(root: Path) -> None:
    """A module that raises while loading is reported at the line that raised."""
    script = write(root / "app.wsgi", "import os\n\nraise RuntimeError('no DATABASE_URL')\n")
    failure = from_exception(raised_by(script), default_file="/elsewhere")
    assert (failure.file, failure.line) == (script, 3)
    assert failure.message == "RuntimeError: no DATABASE_URL"
    assert script in failure.files
    assert "no DATABASE_URL" in failure.traceback


def test_from_exception_names_the_innermost_file(root: Path) -> None:
    """An error raised in a helper module is reported in the helper, both files tracked."""
    helper = write(root / "helpers.py", "def load():\n    raise LookupError('missing key')\n")
    views = write(root / "views.py", "x = 1\nload()\n")
    namespace: dict[str, Any] = {}
    exec(compile(Path(helper).read_text(), helper, "exec"), namespace)
    with pytest.raises(LookupError) as info:
        exec(compile(Path(views).read_text(), views, "exec"), namespace)
    failure = from_exception(info.value)
    assert (failure.file, failure.line) == (helper, 2)
    assert failure.message == "LookupError: missing key"
    assert helper in failure.files
    assert views in failure.files


def test_from_exception_syntax_error(root: Path) -> None:
    """A syntax error met while reloading is reported at its own file and line."""
    bad = write(root / "views.py", "x = 1\ny = (\n")
    exc = raised_by(bad)
    assert isinstance(exc, SyntaxError)
    failure = from_exception(exc, default_file="/srv/app/app.wsgi")
    assert (failure.file, failure.line) == (bad, 2)
    assert failure.message == "SyntaxError: '(' was never closed"
    assert bad in failure.files


def test_from_exception_without_traceback() -> None:
    """An error never raised from a file is blamed on the script given as default."""
    failure = from_exception(RuntimeError("boom"), default_file="/srv/app/app.wsgi")
    assert failure == Failure(
        "/srv/app/app.wsgi", None, "RuntimeError: boom", "RuntimeError: boom\n", ()
    )
    assert from_exception(ValueError("x")).file == "?"


def test_from_exception_syntax_error_without_file() -> None:
    """A syntax error from code without a file falls back to the default file."""
    failure = from_exception(SyntaxError("bad input"), default_file="/srv/app/app.wsgi")
    assert (failure.file, failure.line, failure.message) == (
        "/srv/app/app.wsgi", None, "SyntaxError: bad input",
    )


def test_from_exception_skips_frames_without_a_file(root: Path) -> None:
    """An error inside `exec()`'d text is reported at the project line that ran it."""
    script = write(root / "settings.py", "x = 1\nexec('1 / 0')\n")
    failure = from_exception(raised_by(script))
    assert (failure.file, failure.line) == (script, 2)


def test_from_exception_names_the_project_line_not_the_stdlib(root: Path) -> None:
    """Bad JSON read at import is reported at the project line, not inside the json module."""
    script = write(root / "settings.py", "import json\nCONFIG = json.loads('{')\n")
    failure = from_exception(raised_by(script))
    assert (failure.file, failure.line) == (script, 2)


# --- import_app with a fake run ---------------------------------------------------------


class FakeRun:
    """Stands in for subprocess.run: records the call, returns a prepared result."""

    def __init__(self, returncode: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.result = (returncode, stdout, stderr)
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, kwargs))
        returncode, stdout, stderr = self.result
        return subprocess.CompletedProcess(args, returncode, stdout, stderr)


class RaisingRun:
    """A subprocess.run that cannot start the child."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise self.error


def child_report(**fields: Any) -> str:
    """The JSON line the child prints when the import fails."""
    report = {"file": "/srv/app/views.py", "line": 3, "message": "NameError: name 'x' is "
              "not defined", "traceback": "Traceback ...", "files": []}
    report.update(fields)
    return json.dumps(report)


SCRIPT = "/srv/app/app.wsgi"
BY_PATH = Entry("path", SCRIPT)


def test_import_app_success_runs_the_child_like_the_server() -> None:
    """A clean import passes, run with this interpreter, sys.path, cwd and no bytecode."""
    run = FakeRun(returncode=0)
    start = Entry("name", "myproject.wsgi")
    assert import_app(start, SCRIPT, also=["myproject.views"], run=run, timeout=12.5) is None
    [(args, kwargs)] = run.calls
    assert args[0] == preflight.python_executable()
    assert args[1] == "-c"
    assert args[3:] == ["name", "myproject.wsgi", SCRIPT, "myproject.views"]
    assert kwargs["stdin"] == subprocess.DEVNULL
    assert kwargs["env"]["PYTHONPATH"] == os.pathsep.join(p for p in sys.path if p)
    assert kwargs["env"]["PYTHONDONTWRITEBYTECODE"] == "1"
    assert kwargs["timeout"] == 12.5
    assert kwargs["cwd"] == os.getcwd()
    assert kwargs["capture_output"] is True
    assert kwargs["text"] is True
    assert kwargs["check"] is False


def test_import_app_failure_reads_the_last_line() -> None:
    """A failed import is reported at the file and line the child names, after any prints."""
    stdlib = os.path.join(sysconfig.get_paths()["stdlib"], "json", "decoder.py")
    stdout = "app starting\n" + child_report(
        files=["/srv/app/app.wsgi", stdlib, "/srv/app/views.py"]
    ) + "\n"
    failure = import_app(BY_PATH, SCRIPT, run=FakeRun(1, stdout, "ignored"))
    assert failure == Failure(
        "/srv/app/views.py", 3, "NameError: name 'x' is not defined", "Traceback ...",
        ("/srv/app/app.wsgi", "/srv/app/views.py"),
    )
    assert not failure.own


BAD_OUTPUT = [
    ("not-json", "Segmentation fault\n"),
    ("empty", ""),
    ("json-list", "[1, 2]\n"),
    ("json-null", "null\n"),
    ("json-string", '"oops"\n'),
    ("json-missing-key", json.dumps({"file": "/srv/app/views.py"}) + "\n"),
    ("json-files-null", child_report(files=None) + "\n"),
]


@pytest.mark.parametrize("stdout", [o for _, o in BAD_OUTPUT], ids=[i for i, _ in BAD_OUTPUT])
def test_import_app_unreadable_child_output(stdout: str) -> None:
    """A child that ends without its report fails the preflight, with its stderr, for a
    reason of its own: its interpreter could not even report."""
    failure = import_app(BY_PATH, SCRIPT, run=FakeRun(1, stdout, "Fatal Python error"))
    assert failure == Failure(
        SCRIPT, None, "preflight import failed", "Fatal Python error",
        own="the import's interpreter ended with status 1 before it could report",
    )


def test_import_app_a_child_killed_by_a_signal_is_the_app_s_failure() -> None:
    """A crash in the import (an extension module) would crash a restarted process too."""
    failure = import_app(BY_PATH, SCRIPT, run=FakeRun(-11, "", ""))
    assert failure is not None and failure.message == "preflight import failed"
    assert not failure.own


def test_import_app_keeps_the_end_of_a_long_stderr() -> None:
    """A long stderr is cut to its last 4000 characters, where the error is."""
    stderr = "x" * 10_000 + "MemoryError"
    failure = import_app(BY_PATH, SCRIPT, run=FakeRun(1, "", stderr))
    assert failure is not None
    assert len(failure.traceback) == 4000
    assert failure.traceback.endswith("MemoryError")


def test_import_app_child_cannot_start() -> None:
    """No interpreter to run the child: the preflight fails for a reason of its own."""
    error = FileNotFoundError(2, "No such file or directory")
    failure = import_app(BY_PATH, SCRIPT, run=RaisingRun(error))
    assert failure is not None
    assert failure.file == SCRIPT
    assert failure.message == f"preflight import could not run: {error}"
    assert failure.own == "no interpreter to import the app in"


def test_import_app_child_hangs() -> None:
    """An import that outlasts the timeout is the app's: a restarted process would hang."""
    failure = import_app(BY_PATH, SCRIPT, timeout=60,
                         run=RaisingRun(subprocess.TimeoutExpired(["python"], 60.0)))
    assert failure == Failure(SCRIPT, None, "the import did not finish within 60 s", "")


def test_python_executable_is_this_interpreter() -> None:
    """Under a plain Python server the child runs with the same interpreter."""
    assert os.path.basename(sys.executable).startswith("python")
    assert preflight.python_executable() == sys.executable


# --- import_app for real ----------------------------------------------------------------


def test_import_app_real_script_success(root: Path) -> None:
    """A script that imports cleanly passes the import preflight."""
    script = write(root / "app.wsgi", "import os\napplication = lambda e, s: [b'ok']\n")
    assert import_app(Entry("path", script), script) is None
    assert not (root / "__pycache__").exists()


def test_import_app_real_module_success(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app importable by name is imported by name, with this process's sys.path."""
    write(root / "preflight_tiny_app.py", "application = None\n")
    monkeypatch.syspath_prepend(str(root))
    start = entry.of("preflight_tiny_app", str(root / "preflight_tiny_app.py"))
    assert start == Entry("name", "preflight_tiny_app")
    assert import_app(start, str(root / "preflight_tiny_app.py")) is None


def test_import_app_real_script_failure(root: Path) -> None:
    """A script that raises on import fails the preflight at its file and line."""
    script = write(root / "app.wsgi", "import os\napplication = make_app()\n")
    failure = import_app(Entry("path", script), script)
    assert failure is not None
    assert (failure.file, failure.line) == (script, 2)
    assert failure.message == "NameError: name 'make_app' is not defined"
    assert script in failure.files
    assert "make_app" in failure.traceback


def test_import_app_real_syntax_error_in_imported_module(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A syntax error in a module the script imports is named, and that file is tracked."""
    bad = write(root / "preflight_broken_views.py", "def view(:\n    pass\n")
    script = write(root / "app.wsgi", "import preflight_broken_views\napplication = None\n")
    monkeypatch.syspath_prepend(str(root))
    failure = import_app(Entry("path", script), script)
    assert failure is not None
    assert (failure.file, failure.line) == (bad, 1)
    assert bad in failure.files
    assert all(os.path.isfile(f) for f in failure.files)


def test_import_app_real_names_the_project_line_not_the_stdlib(root: Path) -> None:
    """Bad JSON read while importing is reported at the script's line, not inside json."""
    script = write(root / "app.wsgi", "import json\nCONFIG = json.loads('{')\n")
    failure = import_app(Entry("path", script), script)
    assert failure is not None
    assert (failure.file, failure.line) == (script, 2)


def _unreadable(path: str) -> bytes:
    if path.endswith("secret.py"):
        raise PermissionError(13, "Permission denied", path)
    return Path(path).read_bytes()


def test_compile_files_skips_an_unreadable_file(root: Path) -> None:
    """A file that cannot be read is reported and skipped; the others are still checked."""
    secret = write(root / "secret.py", "x = 1\n")
    views = write(root / "views.py", "x = 2\n")
    reported: list[tuple[str, int | None]] = []
    unreadable = lambda path, exc: reported.append((path, exc.errno))  # noqa: E731
    assert compile_files([secret, views], _unreadable, unreadable) is None
    assert reported == [(secret, 13)]
    bad = write(root / "views.py", "x = (\n")
    failure = compile_files([secret, bad], _unreadable, unreadable)
    assert failure is not None and failure.file == bad


def test_compile_files_logs_an_unreadable_file_once(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """By default the unreadable file is one log line, however many changes follow, as
    far as the caller's memory (`told`, the interpreter's) goes."""
    secret = write(root / "secret.py", "x = 1\n")
    told = logs.Once()
    for _ in range(3):
        assert compile_files([secret], _unreadable, told=told) is None
    lines = [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(lines) == 1 and secret in lines[0] and "Permission denied" in lines[0]


# --- failures of the preflight's own ------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "missing"),
    [(ModuleNotFoundError("No module named 'x.y'", name="x.y"), "x.y"),
     (ImportError("cannot import name 'V' from 'views'", name="views"), None),
     (NameError("name 'v' is not defined"), None)],
    ids=["not-found", "name-not-in-module", "other"],
)
def test_from_exception_names_the_module_not_found(exc: Exception, missing: str | None) -> None:
    """Only a module that could not be found is `missing`: a name a found module lacks
    is the module's own error."""
    assert from_exception(exc).missing == missing


def module(name: str, file: str | None) -> types.ModuleType:
    """A loaded module as sys.modules holds it, from `file` or with none."""
    made = types.ModuleType(name)
    if file is not None:
        made.__file__ = file
    return made


MADE_UP = "uwsgi_file__srv_app_app_wsgi"
OWN = [
    ("uwsgi-wsgi-file-name", MADE_UP, {MADE_UP: module(MADE_UP, "/srv/app/app.wsgi")},
     f"the server has {MADE_UP} from /srv/app/app.wsgi, where a plain interpreter does "
     "not find it"),
    ("built-into-the-server", "uwsgi", {"uwsgi": module("uwsgi", None)},
     "the server has uwsgi with no file, where a plain interpreter does not find it"),
    ("path-only-the-server-has", "plugins.auth",
     {"plugins.auth": module("plugins.auth", "/opt/plugins/auth.py")},
     "the server has plugins.auth from /opt/plugins/auth.py, where a plain interpreter "
     "does not find it"),
    ("module-deleted-since", "webapp.views",
     {"webapp.views": module("webapp.views", "/srv/app/webapp/gone.py")}, ""),
    ("never-loaded-here", "requests", {}, ""),
    ("negative-cache-entry", "requests", {"requests": None}, ""),
    ("nothing-missing", None, {}, ""),
]


@pytest.mark.parametrize(("missing", "loaded", "reason"), [o[1:] for o in OWN],
                         ids=[o[0] for o in OWN])
def test_own_reason(missing: str | None, loaded: dict[str, types.ModuleType | None],
                    reason: str) -> None:
    """A module the server has, and the preflight's interpreter cannot find, is the
    preflight's failure; one this process never loaded, or whose file is gone, the app's."""
    exists = lambda path: not path.endswith("gone.py")  # noqa: E731
    assert preflight.own_reason(missing, loaded, exists) == reason


def test_import_app_real_module_only_the_server_has(root: Path) -> None:
    """A script importing a module built into its server (uWSGI's `uwsgi`) fails in a
    plain interpreter for a reason of the preflight's own, named with the module."""
    script = write(root / "app.wsgi", "import preflight_server_only\napplication = None\n")
    loaded = {"preflight_server_only": module("preflight_server_only", None)}
    failure = import_app(Entry("path", script), script, loaded=loaded)
    assert failure is not None
    assert (failure.file, failure.line, failure.missing) == (script, 1, "preflight_server_only")
    assert failure.own.startswith("the server has preflight_server_only with no file")


class Importer:
    """Stands in for import_app: records how it was asked, returns a prepared failure."""

    def __init__(self, failure: Failure | None = None) -> None:
        self.failure = failure
        self.calls: list[tuple[Entry, str, list[str]]] = []

    def __call__(self, start: Entry, blame: str, also: list[str]) -> Failure | None:
        self.calls.append((start, blame, also))
        return self.failure


@pytest.fixture
def uwsgi_site(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Script, str]:
    """A `.wsgi` script as uWSGI's --wsgi-file names it, and a package on sys.path."""
    script = write(root / "app.wsgi", "from webapp import views\napplication = None\n")
    write(root / "webapp" / "__init__.py", "")
    write(root / "webapp" / "views.py", "VERSION = 1\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    name = "uwsgi_file_" + script.replace("/", "_").replace(".", "_")
    return Script(name, script), name


def test_check_loads_a_uwsgi_script_by_path_and_never_imports_its_name(
    uwsgi_site: tuple[Script, str],
) -> None:
    """The script saved with a module: the app is run by path, and only the module is
    imported after it; uWSGI's made-up name is never asked for."""
    script, name = uwsgi_site
    importer = Importer()
    changed = [script.path, os.path.join(script.directory, "webapp", "views.py")]
    assert preflight.check("import", changed, script, [name, "webapp.views"], importer) is None
    assert importer.calls == [(Entry("path", script.given), script.given, ["webapp.views"])]


def test_check_passes_a_saved_uwsgi_script_for_real(uwsgi_site: tuple[Script, str]) -> None:
    """Run for real, as the uWSGI worker runs it: no failure for a name no interpreter has."""
    script, name = uwsgi_site
    assert preflight.check("import", [script.path], script, [name, "webapp.views"]) is None


def test_check_goes_ahead_on_a_failure_of_its_own(
    uwsgi_site: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The import failed for a reason of its own: no failure (the change goes ahead on
    the compile check), and the log says so, with the reason and how the app was loaded."""
    script, _ = uwsgi_site
    caplog.set_level(logging.INFO, logger="reload_middleware")
    own = Failure(script.given, 1, "ModuleNotFoundError: No module named 'uwsgi'", "Traceback",
                  missing="uwsgi", own="the server has uwsgi with no file, where ...")
    assert preflight.check("import", [script.path], script, (), Importer(own)) is None
    [line] = [r.getMessage() for r in caplog.records]
    assert "import preflight failed for a reason of its own, not the app's (the server " \
        "has uwsgi with no file, where ...)" in line
    assert f"It runs {script.given} by path; the changed files compile, so the change " \
        "goes ahead on that alone" in line
    assert line.endswith("\n    Traceback")


def test_check_keeps_the_app_s_failure(
    uwsgi_site: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A failure of the app's is returned as it is (the middleware keeps the old code)."""
    script, _ = uwsgi_site
    caplog.set_level(logging.INFO, logger="reload_middleware")
    app_s = Failure(script.given, 1, "NameError: name 'x' is not defined", "")
    assert preflight.check("import", [script.path], script, (), Importer(app_s)) is app_s
    assert not caplog.records


def test_check_compile_failure_comes_first(uwsgi_site: tuple[Script, str]) -> None:
    """A file that does not compile fails before any import runs."""
    script, _ = uwsgi_site
    Path(script.path).write_text("application = (\n")
    importer = Importer()
    failure = preflight.check("import", [script.path], script, (), importer)
    assert failure is not None and failure.message.startswith("SyntaxError")
    assert not importer.calls


def test_the_middleware_the_script_builds_in_the_import_preflight_tracks_nothing(
    tmp_path: Path,
) -> None:
    """The child only tells whether the app loads: its middleware is built, its options
    checked, and it is off (no module classified, no file's baseline taken)."""
    script = tmp_path / "app.wsgi"
    script.write_text(
        "from reload_middleware import ReloadMiddleware\n"
        "application = ReloadMiddleware(lambda environ, start_response: [])\n"
        "if application.settings.enabled:\n"
        "    raise RuntimeError('tracking in the preflight')\n"
    )
    assert import_app(Entry("path", str(script)), str(script)) is None
