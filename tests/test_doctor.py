"""`reload-middleware doctor`: the facts, the warnings and their fixes, the two outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from reload_middleware import config
from reload_middleware.operations import cli, doctor, machine_facts
from reload_middleware.operations.doctor import Facts, Preflight, Root
from reload_middleware.watching import watcher

FDINFO = "pos:\t0\nflags:\t02004000\nmnt_id:\t15\nino:\t1057\n"
WATCH = "inotify wd:{n} ino:4a1 sdev:800001 mask:fc6 ignored_mask:0 fhandle-bytes:8\n"

INOTIFY = [
    # (id, fdinfo texts of inotify descriptors, (instances, watches))
    ("none", [], (0, 0)),
    ("instance-without-watches", [FDINFO], (1, 0)),
    ("one-instance", [FDINFO + WATCH.format(n=1) + WATCH.format(n=2)], (1, 2)),
    ("two-processes", [FDINFO + WATCH.format(n=1), FDINFO + WATCH.format(n=7) * 3], (2, 4)),
]


@pytest.mark.parametrize(
    ("fdinfos", "expected"), [row[1:] for row in INOTIFY], ids=[row[0] for row in INOTIFY]
)
def test_inotify_usage(fdinfos: list[str], expected: tuple[int, int]) -> None:
    assert doctor.inotify_usage(fdinfos) == expected


ROOT, ME, WWW, STAFF = 0, 1000, 33, 50
OPEN = [("/", 0o40755, ROOT, ROOT), ("/srv", 0o40755, ROOT, ROOT), ("/srv/app", 0o40755, ME, ME)]
HOME = [("/", 0o40755, ROOT, ROOT), ("/home", 0o40755, ROOT, ROOT),
        ("/home/me", 0o40700, ME, ME), ("/home/me/app", 0o40755, ME, ME)]
SHARED = [("/", 0o40755, ROOT, ROOT), ("/srv", 0o40750, ROOT, STAFF),
          ("/srv/app", 0o40750, ME, STAFF)]
BLOCKED = [
    # (id, chain, uid (None: any other user), gids, the directory in the way)
    ("world-readable", OPEN, None, [], None),
    ("home-0700-stops-others", HOME, None, [], "/home/me"),
    ("home-0700-stops-www-data", HOME, WWW, [WWW], "/home/me"),
    ("the-owner-passes", HOME, ME, [ME], None),
    ("root-passes-anything", HOME, ROOT, [ROOT], None),
    ("group-member-passes", SHARED, WWW, [WWW, STAFF], None),
    ("not-in-the-group", SHARED, WWW, [WWW], "/srv"),
    ("x-is-enough-on-the-way", [("/", 0o40711, ROOT, ROOT), ("/a", 0o40755, ME, ME)], None, [],
     None),
    ("the-root-itself-needs-read", [("/", 0o40755, ROOT, ROOT), ("/a", 0o40711, ME, ME)], None, [],
     "/a"),
    ("missing-says-nothing", [], None, [], None),
]


@pytest.mark.parametrize(
    ("chain", "uid", "gids", "expected"), [r[1:] for r in BLOCKED], ids=[r[0] for r in BLOCKED]
)
def test_blocked(
    chain: doctor.Chain, uid: int | None, gids: list[int], expected: str | None
) -> None:
    assert doctor.blocked(chain, uid, gids) == expected


H, S, R, G, U = (
    "restart-by-hook", "restart-by-sigint", "reload", "restart-by-sigterm", "restart-uwsgi"
)
ACTIONS = [
    # (id, mode, preflight, actions in SCENARIOS order, checks in that order)
    ("auto", "auto", "auto", [H, S, R, G, R, U, R],
     ["import", "import", "compile", "import", "compile", "import", "compile"]),
    ("restart-even-preloaded", "restart", "auto", [H, S, R, G, G, U, R],
     ["import", "import", "compile", "import", "import", "import", "compile"]),
    ("reload-everywhere", "reload", "import", [R] * 7, ["import"] * 7),
    ("preflight-off", "auto", "off", [H, S, R, G, R, U, R], ["off"] * 7),
]


@pytest.mark.parametrize(
    ("mode", "preflight", "actions", "checks"),
    [r[1:] for r in ACTIONS],
    ids=[r[0] for r in ACTIONS],
)
def test_actions_follow_servers_choose(
    mode: str, preflight: str, actions: list[str], checks: list[str]
) -> None:
    rows = doctor.actions(mode, preflight)
    assert [row["server"] for row in rows] == [label for label, *_ in doctor.SCENARIOS]
    assert [row["action"] for row in rows] == actions
    assert [row["preflight"] for row in rows] == checks
    assert all(row["meaning"] == doctor.MEANING[row["action"]] for row in rows)


def limits(**kw: Any) -> Facts:
    """Facts of a machine with room to spare, changed by `kw`."""
    values: dict[str, Any] = dict(max_watches=8192, max_instances=128, watches_in_use=100,
                                  instances_in_use=3, script="/srv/app/app.wsgi")
    return Facts(**{**values, **kw})


APP_ROOTS = [Root("/srv/app", False), Root("/srv/app/pkg", True, watches=40)]
MONOREPO = [Root(f"/srv/repo/p{n:02}", True, watches=2) for n in range(30)]  # 30 packages
ADVICE = [
    # (id, facts, words each expected warning starts with or holds, in order)
    ("quiet", limits(roots=APP_ROOTS), []),
    ("no-proc-no-limits", Facts(max_watches=None, max_instances=None, roots=APP_ROOTS), []),
    ("watches-fit-exactly", limits(roots=APP_ROOTS, watches_in_use=8192 - 41), []),
    ("watches-one-short", limits(roots=APP_ROOTS, watches_in_use=8192 - 40),
     ["41 inotify watches needed"]),
    ("polled-roots-take-no-watches",
     limits(roots=[Root("/mnt/nfs/app", True, "polling", 0)], watches_in_use=8192), []),
    ("instances-all-taken", limits(instances_in_use=128), ["all 128 inotify instances"]),
    ("instances-for-4-processes", limits(roots=MONOREPO, instances_in_use=8), []),
    ("instances-for-3-processes", limits(roots=MONOREPO, instances_in_use=9),
     ["each process takes 30 inotify instances (one per watched root) and 119 of 128"]),
    ("venv-inside", limits(venvs=["/srv/app/.venv"]), ["a virtualenv inside a directory wa"]),
    ("unreadable-once-per-directory",
     limits(roots=[Root("/home/me/app", False, blocked="/home/me"),
                   Root("/home/me/app/pkg", True, blocked="/home/me")], server_user="www-data"),
     ["www-data cannot read /home/me/app, /home/me/app/pkg"]),
    ("import-error", limits(error="ImportError: no module named x"), ["/srv/app/app.wsgi did not"]),
    ("switched-off", limits(disabled_by="RELOAD_MIDDLEWARE_ENABLED=off"),
     ["reloading is switched off"]),
    ("live-with-trigger", limits(settings=config.Settings(live=True, trigger="/srv/touch")),
     ["live is on with a trigger set"]),
    ("live-alone", limits(settings=config.Settings(live=True)), []),
    ("preflight-ok", limits(preflight=Preflight("runs /srv/app/app.wsgi by path")), []),
    ("preflight-fails", limits(preflight=Preflight(
        "runs /srv/app/app.wsgi by path", "/srv/app/app.wsgi:2: NameError: name 'x' ...")),
     ["the import preflight fails: /srv/app/app.wsgi:2: NameError"]),
    ("preflight-fails-its-own-way", limits(preflight=Preflight(
        "runs /srv/app/app.wsgi by path", "/srv/app/app.wsgi:1: ModuleNotFoundError: ...",
        "the server has uwsgi with no file, where a plain interpreter does not find it")),
     ["the import preflight fails for a reason of its own (the server has uwsgi"]),
    ("bad-variable", limits(refused=["reload_middleware: option 'RELOAD_MIDDLEWARE_SETTLE'"
                                     " got 'soon'; accepted: a number of seconds; ignored"]),
     ["reload_middleware: option 'RELOAD_MIDDLEWARE_SETTLE' got 'soon'"]),
]


@pytest.mark.parametrize(
    ("facts", "expected"), [r[1:] for r in ADVICE], ids=[r[0] for r in ADVICE]
)
def test_advise(facts: Facts, expected: list[str]) -> None:
    found = doctor.advise(facts)
    assert len(found) == len(expected), found
    for advice, words in zip(found, expected, strict=True):
        assert advice.problem.startswith(words), advice
        assert advice.fix


FIXES = [
    # (id, facts, the fix, word for word)
    ("watches", limits(roots=APP_ROOTS, max_watches=100),
     "sysctl fs.inotify.max_user_watches=524288 (and the same line in /etc/sysctl.d/ to keep it)"),
    ("instances", limits(instances_in_use=128),
     "sysctl fs.inotify.max_user_instances=512 (and the same line in /etc/sysctl.d/)"),
    ("venv", limits(venvs=["/srv/app/venv"]),
     "move it out (for mod_wsgi: python-home=/srv/venv), or exclude it: "
     "RELOAD_MIDDLEWARE_EXCLUDE=venv"),
    ("way-in", limits(roots=[Root("/home/me/app", False, blocked="/home/me")]),
     "chmod o+x /home/me, or keep the app in a directory like /srv"),
    ("the-root", limits(roots=[Root("/srv/app", False, blocked="/srv/app")]),
     "chmod o+rx /srv/app, or keep the app in a directory like /srv"),
]


@pytest.mark.parametrize(("facts", "fix"), [r[1:] for r in FIXES], ids=[r[0] for r in FIXES])
def test_each_warning_says_how_to_fix_it(facts: Facts, fix: str) -> None:
    assert [advice.fix for advice in doctor.advise(facts)] == [fix]


def test_the_watch_advice_scales_with_what_is_used() -> None:
    """Far past the usual 524288, the advice is twice what is needed, not a fixed number."""
    facts = limits(roots=[Root("/srv/app", True, watches=400_000)], watches_in_use=300_000)
    assert doctor.advise(facts)[0].fix.startswith("sysctl fs.inotify.max_user_watches=1400000 ")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """/app.wsgi, top.py, pkg/sub/mod.py, templates/, settings.ini; lib/site/ and lib/std/."""
    for name in ("app.wsgi", "top.py", "pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py",
                 "templates/base.html", "settings.ini", "lib/std/json.py",
                 "lib/site/webob/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    return tmp_path.resolve()


def module(name: str, path: Path) -> types.ModuleType:
    made = types.ModuleType(name)
    made.__file__ = str(path)
    return made


PLANS = [
    # (id, {file: module name}, watch paths, {root: recursive}) relative to the tree
    ("script-alone", {"app.wsgi": ""}, [], {".": False}),
    ("top-level-module", {"app.wsgi": "", "top.py": "top"}, [], {".": False}),
    ("package-from-its-top", {"pkg/sub/mod.py": "pkg.sub.mod"}, [], {"pkg": True}),
    ("watched-directory", {"app.wsgi": ""}, ["templates"], {".": False, "templates": True}),
    ("watched-file", {"app.wsgi": ""}, ["settings.ini"], {".": False}),
    ("missing-watch-path", {}, ["later"], {"later": True}),
]


@pytest.mark.parametrize(
    ("files", "watch", "expected"), [r[1:] for r in PLANS], ids=[r[0] for r in PLANS]
)
def test_plan(
    tree: Path, files: dict[str, str], watch: list[str], expected: dict[str, bool]
) -> None:
    def real(rel: str) -> str:
        return os.path.normpath(tree / rel)

    planned = doctor.plan({real(f): n for f, n in files.items()}, [real(w) for w in watch])
    assert planned == {real(root): recursive for root, recursive in expected.items()}


TRACKED = [
    # (id, settings, tracked files relative to the tree)
    ("project", config.Settings(), ["app.wsgi", "pkg/sub/mod.py", "top.py"]),
    ("all-modules", config.Settings(modules="all"),
     ["app.wsgi", "lib/site/webob/__init__.py", "pkg/sub/mod.py", "top.py"]),
    ("modules-off", config.Settings(modules="off"), []),
    ("trigger-only", config.Settings(trigger="settings.ini"), ["settings.ini"]),
]


@pytest.mark.parametrize(
    ("settings", "expected"), [r[1:] for r in TRACKED], ids=[r[0] for r in TRACKED]
)
def test_tracked_files(tree: Path, settings: config.Settings, expected: list[str]) -> None:
    modules = {"top": module("top", tree / "top.py"),
               "pkg.sub.mod": module("pkg.sub.mod", tree / "pkg/sub/mod.py"),
               "webob": module("webob", tree / "lib/site/webob/__init__.py"),
               "builtin": types.ModuleType("builtin")}
    found = doctor.tracked_files(modules, str(tree / "app.wsgi"), settings, [str(tree / "lib")])
    assert sorted(found) == [str(tree / name) for name in expected]


def test_left_out_tells_stdlib_from_site_packages(tree: Path) -> None:
    modules = {"json": module("json", tree / "lib/std/json.py"),
               "webob": module("webob", tree / "lib/site/webob/__init__.py"),
               "top": module("top", tree / "top.py"),
               "reload_middleware.x": module("reload_middleware.x", tree / "lib/std/json.py"),
               "sys": types.ModuleType("sys")}
    found = doctor.left_out(modules, [str(tree / "lib/site")], [str(tree / "lib")])
    assert found == {"stdlib": ["json"], "site-packages": ["webob"]}


def sample_report(**kw: Any) -> dict[str, Any]:
    facts = limits(
        watchdog="7.1.0", backend="InotifyObserver", processes=12, uid=0, server_user="www-data",
        roots=[Root("/srv/app", False), Root("/srv/app/webapp", True, watches=3)],
        tracked=["/srv/app/app.wsgi", "/srv/app/webapp/views.py"],
        left_out={"stdlib": ["json", "json.decoder", "_io", "os"], "site-packages": ["webob"]},
        **kw,
    )
    return doctor.report(facts)


def test_the_report_is_json_with_counts_and_examples() -> None:
    data = json.loads(json.dumps(sample_report(venvs=["/srv/app/.venv"])))
    assert data["tracked"] == {"count": 2, "examples": ["/srv/app/app.wsgi",
                                                        "/srv/app/webapp/views.py"]}
    assert data["left_out"]["stdlib"] == {"count": 4, "examples": ["json", "os"]}
    assert data["roots"][1] == {"path": "/srv/app/webapp", "recursive": True,
                                "backend": "native", "watches": 3, "blocked": None,
                                "closed": []}
    assert "secret" not in data["settings"]
    assert [w["problem"].split(":")[0] for w in data["warnings"]] == [
        "a virtualenv inside a directory watched recursively"]
    assert "SetEnv values" in data["not_known_here"]["items"][0]
    assert "watching for code changes" in data["not_known_here"]["told_by"]


def test_render_shows_the_key_facts() -> None:
    text = doctor.render(sample_report(venvs=["/srv/app/.venv"]))
    for fact in ("watchdog   7.1.0, native backend InotifyObserver",
                 "watches 100 in use of 8,192 (fs.inotify.max_user_watches)",
                 "instances 3 in use of 128", "script     /srv/app/app.wsgi",
                 "tracked    2 files, e.g. app.wsgi, webapp/views.py",
                 "/srv/app/webapp (recursive, native, inotify watches: 3)",
                 "stdlib: 4 modules it loaded, e.g. json, os",
                 "site-packages: 1 modules it loaded, e.g. webob",
                 "warnings: 1",
                 "! a virtualenv inside a directory watched recursively: /srv/app/.venv",
                 "fix: move it out", "not known here (only the server's processes know):",
                 "  - modules imported lazily", "the control endpoint's GET status"):
        assert fact in text
    assert "mod_wsgi daemon, no hook           restart-by-sigint   import" in text


def test_render_says_which_processes_it_could_not_count() -> None:
    """mod_wsgi daemons hide /proc/PID/fd even from their own user: said, with the way out."""
    text = doctor.render(sample_report(unreadable=2))
    assert "not counted: 2 processes of uid 0 whose /proc/PID/fd cannot be read" in text
    assert "run doctor as root to count them" in text
    assert "not counted" not in doctor.render(sample_report())


def test_render_without_a_script_and_without_proc() -> None:
    text = doctor.render(doctor.report(Facts()))
    assert "watches 0 in use of unknown" in text and "no warnings" in text
    assert "script     " not in text and "tracked    " not in text
    assert "gunicorn --preload" in text


def test_help_names_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["doctor", "--help"])
    assert "1 when there are warnings" in capsys.readouterr().out


def test_the_script_s_middleware_watches_nothing(
    fresh_process: watcher.Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Executed in this process: no watcher started, no thread, the variable put back."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("RELOAD_MIDDLEWARE_ENABLED", raising=False)
    script = make_project(tmp_path, venv=False)
    threads = threading.active_count()
    facts = machine_facts.gather(str(script), cli.execute)
    assert facts.error is None and str(script.parent / "webapp" / "views.py") in facts.tracked
    assert facts.settings.watch == ("templates",)  # the script's keyword, read back
    assert not fresh_process.started and threading.active_count() == threads
    assert "RELOAD_MIDDLEWARE_ENABLED" not in os.environ


APP = """\
import colorsys  # stdlib, and pluggy from site-packages (pytest's): both left out
import pluggy
from webapp import views
from reload_middleware import ReloadMiddleware

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [views.VERSION.encode()]

print("the script's own output")
application = ReloadMiddleware(app, watch=["templates"])
"""


def make_project(base: Path, *, venv: bool = True, venv_in: str = "") -> Path:
    """app.wsgi, webapp/views.py and templates/, with a virtualenv in `venv_in`/.venv/;
    the script."""
    root = base / "project"
    for name, text in (("app.wsgi", APP), ("webapp/__init__.py", ""),
                       ("webapp/views.py", "VERSION = '1'\n"), ("templates/base.html", "")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if venv:
        (root / venv_in / ".venv" / "lib").mkdir(parents=True)
        home = os.path.dirname(sys.executable)
        (root / venv_in / ".venv" / "pyvenv.cfg").write_text(f"home = {home}\n")
    return (root / "app.wsgi").resolve()


def run_doctor(*args: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ directories: exact watch counts
    env.update(variables)
    return subprocess.run([sys.executable, "-m", "reload_middleware", "doctor", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_doctor_json_on_a_project(tmp_path: Path) -> None:
    """A real run: what is tracked and watched; a virtualenv beside the script is no
    warning, as the script's directory is not watched recursively."""
    script = make_project(tmp_path)
    done = run_doctor(str(script), "--json", cwd=tmp_path)
    assert "the script's own output" in done.stderr  # never mixed into the JSON
    data = json.loads(done.stdout)
    assert done.returncode == (1 if data["warnings"] else 0), done.stderr
    root = script.parent
    assert data["script"] == str(script)
    assert data["watchdog"] and data["backend"]
    assert data["tracked"]["count"] == 4
    assert sorted(data["tracked"]["examples"]) == [
        str(script), str(root / "templates/base.html"), str(root / "webapp/__init__.py"),
        str(root / "webapp/views.py")]
    roots = {r["path"]: (r["recursive"], r["watches"]) for r in data["roots"]}
    assert roots == {str(root): (False, 1), str(root / "webapp"): (True, 1),
                     str(root / "templates"): (True, 1)}
    assert "pluggy" in data["left_out"]["site-packages"]["examples"]
    assert "colorsys" in data["left_out"]["stdlib"]["examples"]
    assert "reload_middleware" not in json.dumps(data["left_out"])
    assert [row["action"] for row in data["actions"]] == [H, S, R, G, R, U, R]
    assert not [w for w in data["warnings"] if w["problem"].startswith("a virtualenv")]
    # The import preflight as a server that runs the file (mod_wsgi, uWSGI --wsgi-file).
    assert data["preflight"] == {"loads": f"runs {script} by path", "failure": None, "own": ""}
    if data["max_watches"] is not None:  # Linux
        assert data["max_watches"] > 0 and data["max_instances"] > 0
        # Counted for the server's user, who may run nothing at the moment.
        assert data["processes"] >= 0 and data["unreadable"] >= 0


def test_doctor_human_output_on_a_project(tmp_path: Path) -> None:
    """A virtualenv inside a watched directory is a warning, with its fix."""
    script = make_project(tmp_path, venv_in="templates")
    done = run_doctor(str(script), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    text = done.stdout
    venv = script.parent / "templates" / ".venv"
    for fact in ("watchdog   ", "native backend", "fs.inotify.max_user_watches",
                 "fs.inotify.max_user_instances", f"script     {script}",
                 "tracked    5 files, e.g. app.wsgi, templates/.venv/pyvenv.cfg, ",
                 f"preflight  runs {script} by path in a fresh interpreter: ok",
                 f"{script.parent / 'webapp'} (recursive, native, inotify watches: 1)",
                 "settings   mode auto, modules project, observer auto, watch templates",
                 "modules it loaded, e.g. ", "pluggy", "colorsys", "mod_wsgi daemon, no hook",
                 "gunicorn --preload",
                 f"! a virtualenv inside a directory watched recursively: {venv}",
                 "fix: move it out", "RELOAD_MIDDLEWARE_EXCLUDE=.venv"):
        assert fact in text, fact


def test_doctor_without_a_script_reports_the_machine(tmp_path: Path) -> None:
    done = run_doctor("--json", cwd=tmp_path)
    data = json.loads(done.stdout)
    assert data["script"] is None and data["tracked"]["count"] == 0 and not data["roots"]
    assert done.returncode == (1 if data["warnings"] else 0)
    assert len(data["actions"]) == len(doctor.SCENARIOS)


def test_a_bad_variable_is_a_warning_and_mode_changes_the_actions(tmp_path: Path) -> None:
    done = run_doctor("--json", cwd=tmp_path, RELOAD_MIDDLEWARE_SETTLE="soon",
                      RELOAD_MIDDLEWARE_MODE="reload")
    data = json.loads(done.stdout)
    assert done.returncode == 1
    assert any("'RELOAD_MIDDLEWARE_SETTLE' got 'soon'" in w["problem"] for w in data["warnings"])
    assert {row["action"] for row in data["actions"]} == {"reload"}


def test_a_script_that_fails_to_import_is_a_warning(tmp_path: Path) -> None:
    """A module doctor cannot find may be on the server's python-path: the warning says
    so and how to tell doctor, rather than that the server fails."""
    (tmp_path / "broken.wsgi").write_text("import no_such_module_here\n")
    done = run_doctor(str(tmp_path / "broken.wsgi"), cwd=tmp_path)
    assert done.returncode == 1
    assert ("did not load here: ModuleNotFoundError: No module named 'no_such_module_here'"
            in done.stdout)
    assert "--python-path DIR" in done.stdout
    assert "the server would fail the same way" not in done.stdout
    (tmp_path / "broken.wsgi").write_text("raise ValueError('bad setting')\n")
    done = run_doctor(str(tmp_path / "broken.wsgi"), cwd=tmp_path)
    assert "did not load: ValueError: bad setting" in done.stdout
    assert "the server would fail the same way" in done.stdout


APACHE_CONF = """\
WSGIDaemonProcess mysite processes=2 threads=15 python-path={lib}
WSGIScriptAlias / {script} process-group=mysite application-group=%{{GLOBAL}}
"""


@pytest.mark.parametrize("how", ["python-path", "apache-conf"])
def test_the_servers_python_path_makes_the_script_load(tmp_path: Path, how: str) -> None:
    """A site whose package only the server's python-path= finds: with that path given,
    or read from the Apache configuration, doctor loads it and tracks the package."""
    lib, site = tmp_path / "lib", tmp_path / "site"
    (lib / "mysite").mkdir(parents=True)
    (lib / "mysite" / "__init__.py").write_text("")
    (lib / "mysite" / "views.py").write_text("VERSION = 1\n")
    site.mkdir()
    script = site / "app.wsgi"
    script.write_text("from mysite import views\n"
                      "from reload_middleware import ReloadMiddleware\n"
                      "application = ReloadMiddleware(lambda e, s: [])\n")
    alone = json.loads(run_doctor(str(script), "--json", cwd=site).stdout)
    assert any("did not load here" in w["problem"] for w in alone["warnings"])
    if how == "python-path":
        args = ["--python-path", str(lib)]
    else:
        conf = tmp_path / "site.conf"
        conf.write_text(APACHE_CONF.format(lib=lib, script=script))
        args = ["--apache-conf", str(conf)]
    done = run_doctor(str(script), "--json", *args, cwd=site)
    data = json.loads(done.stdout)
    assert not any("did not load" in w["problem"] for w in data["warnings"]), data["warnings"]
    assert data["python_path"] == [str(lib)]
    assert str(lib / "mysite" / "views.py") in data["tracked"]["examples"], data["tracked"]
    assert data["preflight"]["failure"] is None  # the fresh interpreter gets the path too


SERVER = """\
import logging, sys
from reload_middleware.operations import cli
logging.basicConfig(level=logging.INFO, format="%(message)s")
cli.execute(sys.argv[1]).application.arm()
"""


def test_doctor_counts_the_files_the_server_logs(tmp_path: Path) -> None:
    """The tracked count is the one a process logs when it starts watching."""
    script = make_project(tmp_path)
    data = json.loads(run_doctor(str(script), "--json", cwd=tmp_path).stdout)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    served = subprocess.run([sys.executable, "-c", SERVER, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert f"{data['tracked']['count']} files, " in served.stderr, served.stderr


def test_a_script_that_loads_only_where_doctor_runs_is_a_warning(
    fresh_process: watcher.Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script loads in doctor's process, but not in the fresh interpreter the import
    preflight starts (it imports a module only this process has, as a server's own): a
    warning saying the preflight's failure is its own, with the fix."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    script = tmp_path / "app.wsgi"
    script.write_text("import doctor_handed_module\napplication = lambda e, s: []\n")
    monkeypatch.setitem(sys.modules, "doctor_handed_module",
                        types.ModuleType("doctor_handed_module"))
    facts = machine_facts.gather(str(script), cli.execute)
    assert facts.error is None
    assert facts.preflight is not None
    assert facts.preflight.own.startswith("the server has doctor_handed_module with no file")
    [advice] = doctor.preflight_advice(facts.preflight)
    assert "goes ahead on the compile check alone" in advice.problem
    assert "preflight=compile" in advice.fix


def test_a_trigger_in_a_shared_directory_is_a_warning(tmp_path: Path) -> None:
    """A real run: a trigger in a sticky world-writable directory (as the temp directory
    is) is named with the risk and the fix; the same trigger beside the script is not."""
    script = make_project(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    done = run_doctor(str(script), "--json", cwd=tmp_path,
                      RELOAD_MIDDLEWARE_TRIGGER=str(shared / "deploy.stamp"))
    warnings = json.loads(done.stdout)["warnings"]
    found = [w for w in warnings if w["problem"].startswith(f"{shared / 'deploy.stamp'} is in")]
    assert len(found) == 1, warnings
    assert "sticky, yet anyone can create names in it" in found[0]["problem"]
    assert "trigger's name" in found[0]["problem"]
    assert "only the deploy account can write" in found[0]["fix"]
    done = run_doctor(str(script), "--json", cwd=tmp_path,
                      RELOAD_MIDDLEWARE_TRIGGER="deploy.stamp")
    assert not [w for w in json.loads(done.stdout)["warnings"] if "is in" in w["problem"]]


def test_a_directory_the_server_cannot_read_under_a_package_is_a_warning(
    tmp_path: Path,
) -> None:
    """A subpackage others cannot read (chmod 700): the server can neither import from
    it nor watch it, and doctor says which directory, with the fix."""
    site = tmp_path / "site"
    sub = site / "pkg" / "sub"
    sub.mkdir(parents=True)
    for directory in (site, site / "pkg"):
        directory.chmod(0o755)
    (site / "pkg" / "__init__.py").write_text("")
    (sub / "__init__.py").write_text("")
    (site / "app.wsgi").write_text("import pkg\napplication = lambda e, s: []\n")
    os.chmod(tmp_path, 0o755)
    sub.chmod(0o700)
    try:
        data = json.loads(run_doctor(str(site / "app.wsgi"), "--json", cwd=site).stdout)
    finally:
        sub.chmod(0o755)
    [warning] = [w for w in data["warnings"] if "inside the watched" in w["problem"]]
    assert f"cannot read {sub}, inside the watched {site / 'pkg'}" in warning["problem"]
    assert warning["fix"].startswith(f"chmod o+rx {sub}")
