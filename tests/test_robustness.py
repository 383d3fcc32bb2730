"""Editors, checkouts, deploys, remote filesystems and dying threads (real observers)."""

from __future__ import annotations

import ctypes
import errno
import importlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import SCRIPT, MakeProject, Until, call, file_clock_after, wait_until
from reload_middleware import ReloadMiddleware, interpreter
from reload_middleware.script import Script
from reload_middleware.watching import project_modules, read_times, settling
from reload_middleware.watching.watcher import Watcher


def actions(caplog: pytest.LogCaptureFixture) -> int:
    return sum("changed:" in r.getMessage() for r in caplog.records)


def vim_save(path: Path, text: str) -> None:
    """vim with backupcopy=no: probe file 4913, rename to a~ backup, write, drop backup."""
    probe = path.parent / "4913"
    probe.write_text("")
    probe.unlink()
    swap = path.parent / f".{path.name}.swp"
    swap.write_text("swap")
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    path.write_text(text)
    backup.unlink()
    swap.unlink()


def emacs_save(path: Path, text: str) -> None:
    """emacs: a .# lock link, a ~ backup copy, then the file written in place."""
    lock = path.parent / f".#{path.name}"
    os.symlink("user@host.1234:1", lock)
    shutil.copy2(path, path.with_name(path.name + "~"))
    path.write_text(text)
    lock.unlink()


def jetbrains_save(path: Path, text: str) -> None:
    """JetBrains safe write: ___jb_tmp___ written, original to ___jb_old___, swap, delete."""
    temp = path.with_name(path.name + "___jb_tmp___")
    old = path.with_name(path.name + "___jb_old___")
    temp.write_text(text)
    os.rename(path, old)
    os.rename(temp, path)
    old.unlink()


def vscode_save(path: Path, text: str) -> None:
    """VS Code: a plain truncate and write of the file."""
    with open(path, "w") as target:
        target.write(text)


EDITORS = {"vim": vim_save, "emacs": emacs_save, "jetbrains": jetbrains_save, "vscode": vscode_save}


@pytest.mark.parametrize("save", list(EDITORS.values()), ids=list(EDITORS))
def test_an_editor_save_is_one_change(
    save: Callable[[Path, str], None],
    project: MakeProject,
    until: Until,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each editor's sequence of file operations is one change to the real file."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made = project(settle=0.1)
    app = made.application
    assert call(app).body == b"old"
    before = actions(caplog)
    save(made.views, "TEXT = 'saved'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"saved"
    assert actions(caplog) - before == 1
    assert app.pending == frozenset()
    assert call(app).body == b"saved"
    assert actions(caplog) - before == 1


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def test_git_checkout_of_a_branch_with_other_directories(
    project: MakeProject, until: Until
) -> None:
    """A checkout that deletes and recreates a subpackage is a change; it stays watched."""
    made = project()
    sub = made.views.parent / "sub"
    sub.mkdir()
    (sub / "__init__.py").write_text("")
    (sub / "deep.py").write_text("X = 1\n")
    git(made.root, "init", "-q", "-b", "main")
    git(made.root, "add", "-A")
    git(made.root, "commit", "-q", "-m", "one")
    git(made.root, "checkout", "-q", "-b", "other")
    shutil.rmtree(sub)
    made.views.write_text("TEXT = 'other branch'\n")
    git(made.root, "add", "-A")
    git(made.root, "commit", "-q", "-m", "two")
    git(made.root, "checkout", "-q", "main")
    app = made.application
    importlib.import_module(f"{made.package}.sub.deep")  # as the app would, lazily
    assert call(app).body == b"old"
    git(made.root, "checkout", "-q", "other")  # sub/ deleted
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"other branch"
    git(made.root, "checkout", "-q", "main")  # sub/ created again
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"old"
    until(lambda: str(sub / "deep.py") not in app.pending)
    (sub / "deep.py").write_text("X = 22\n")  # inside the recreated directory
    until(lambda: str(sub / "deep.py") in app.pending)


LAZY_SCRIPT = """\
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    from {package} import lazy  # as Django imports views, on the request
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(lazy.VALUE).encode()]


application = ReloadMiddleware(app, **{options!r})
"""


@pytest.mark.parametrize("script", [
    pytest.param(LAZY_SCRIPT, id="from-package-import"),
    pytest.param(LAZY_SCRIPT.replace("from {package} import lazy", "import {package}.lazy")
                 .replace("lazy.VALUE", "{package}.lazy.VALUE"), id="import-dotted"),
])
def test_a_lazy_module_deleted_before_its_first_look_then_recreated_is_served(
    project: MakeProject, until: Until, script: str
) -> None:
    """Imported by one request, deleted before the next looked at it, then saved back:
    meanwhile the old code serves it (the reload keeps a module whose file is gone), then
    the saved file is served (it used to be untracked for good, the old value served)."""
    made = project(script)
    lazy = made.views.parent / "lazy.py"
    lazy.write_text("VALUE = 1\n")
    app = made.application
    assert call(app).body == b"1"
    lazy.unlink()
    assert call(app).body == b"1"  # a reload: everything else loaded again, lazy kept
    lazy.write_text("VALUE = 2\n")
    until(lambda: str(lazy) in app.pending)
    assert call(app).body == b"2"


def test_a_watch_path_created_later_is_seen(
    project: MakeProject, until: Until, caplog: pytest.LogCaptureFixture
) -> None:
    """A watch directory that does not exist yet is logged once; its creation counts."""
    made = project(watch=["later"])
    app = made.application
    later = made.root / "later"
    assert call(app).body == b"old"
    assert any("does not exist (yet)" in r.getMessage() for r in caplog.records)
    later.mkdir()
    until(lambda: str(later) in app.pending)
    call(app)
    (later / "settings.ini").write_text("a = 1\n")
    until(lambda: str(later / "settings.ini") in app.pending)


def test_a_release_symlink_swap_is_a_change(
    fresh_process: Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, until: Until
) -> None:
    """`current -> releases/1` swapped for `releases/2` reloads onto the new release."""
    root = tmp_path.resolve()
    for n in (1, 2):
        package = root / "releases" / str(n) / "deploypkg"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "views.py").write_text(f"TEXT = 'release {n}'\n")
        script = SCRIPT.format(package="deploypkg", options={"settle": 0.01})
        (root / "releases" / str(n) / "deployapp.py").write_text(script)
    current = root / "current"
    os.symlink(root / "releases" / "1", current)
    monkeypatch.syspath_prepend(str(current))
    app = importlib.import_module("deployapp").application
    assert isinstance(app, ReloadMiddleware)
    assert call(app).body == b"release 1"
    temp = root / "current.new"
    os.symlink(root / "releases" / "2", temp)
    os.replace(temp, current)  # ln -sfn, atomically
    until(lambda: str(current) in app.pending)
    assert call(app).body == b"release 2"
    # The reload moved every module to releases/2: an edit there is seen, one in 1 is not.
    (root / "releases" / "1" / "deploypkg" / "views.py").write_text("TEXT = 'old release'\n")
    (root / "releases" / "2" / "deploypkg" / "views.py").write_text("TEXT = 'hotfix'\n")
    views = str(root / "releases" / "2" / "deploypkg" / "views.py")
    until(lambda: views in app.pending)
    assert call(app).body == b"hotfix"
    assert app.pending == frozenset()


FLAT_SCRIPT = """\
import flatviews
from reload_middleware import ReloadMiddleware


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [flatviews.TEXT.encode()]


application = ReloadMiddleware(app, settle=0.01)
"""


def test_a_release_switch_of_a_flat_app_is_a_change(
    fresh_process: Watcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, until: Until
) -> None:
    """Modules beside the script, the same script in both releases: `mv -T` of the
    `current` link serves release 2, and an edit in release 2 is then seen."""
    root = tmp_path.resolve()
    for n in (1, 2):
        release = root / "releases" / str(n)
        release.mkdir(parents=True)
        (release / "flatviews.py").write_text(f"TEXT = 'release {n}'\n")
        (release / "flatapp.py").write_text(FLAT_SCRIPT)
    current = root / "current"
    os.symlink(root / "releases" / "1", current)
    monkeypatch.syspath_prepend(str(current))
    app = importlib.import_module("flatapp").application
    assert isinstance(app, ReloadMiddleware)
    assert call(app).body == b"release 1"
    os.symlink(root / "releases" / "2", root / "current.new")
    subprocess.run(["mv", "-T", str(root / "current.new"), str(current)], check=True)
    until(lambda: call(app).body == b"release 2")
    views = root / "releases" / "2" / "flatviews.py"
    views.write_text("TEXT = 'hotfix in release 2'\n")
    until(lambda: call(app).body == b"hotfix in release 2")


def test_a_watched_folder_that_is_a_link_follows_where_it_points(
    project: MakeProject, tmp_path: Path, until: Until
) -> None:
    """`ln -sfn` of a watched templates link to another folder counts as a change."""
    root = tmp_path.resolve()
    for name in ("a", "b"):
        (root / name).mkdir()
        (root / name / "page.html").write_text(name)
    os.symlink(root / "a", root / "templates")
    made = project(watch=["templates"])
    app = made.application
    call(app)
    os.symlink(root / "b", root / "templates.new")
    os.replace(root / "templates.new", root / "templates")
    until(lambda: str(root / "templates") in app.pending)


def test_what_the_app_writes_before_building_the_middleware_is_no_change(
    project: MakeProject,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    until: Until,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file the app writes into a watched directory as it loads (before the middleware
    is built) is not a change: a preloaded daemon would restart in a loop. Files edited
    or created after the middleware was built, before its first request started the
    watcher, are."""
    started = time.time_ns() - 10**10  # the process started ten seconds ago
    monkeypatch.setattr(read_times, "process_started_ns", lambda: started)
    data = tmp_path.resolve() / "data"
    data.mkdir()
    cache, settings = data / "cache.txt", data / "settings.ini"
    cache.write_text("written at import\n")
    settings.write_text("a = 1\n")
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made = project(watch=["data"], modules="off")  # the data files alone
    built = time.time_ns()
    until(lambda: file_clock_after(built, tmp_path / "probe"))
    settings.write_text("a = 22\n")
    (data / "new.ini").write_text("b = 1\n")
    call(made.application)
    changed = [r.getMessage() for r in caplog.records if "changed:" in r.getMessage()]
    assert len(changed) == 1
    assert f"{data / 'new.ini'}, {settings} (2 files) changed" in changed[0]



def test_remote_filesystems_are_polled(tmp_path: Path) -> None:
    """A root on NFS (from the mount table) is polled; a local one uses native events."""
    local, remote = tmp_path / "local", tmp_path / "share"
    local.mkdir()
    remote.mkdir()
    mounts = f"/dev/vda / ext4 rw 0 0\nserver:/export {remote} nfs4 rw 0 0\n"
    from reload_middleware.watching.changes import Changes
    from reload_middleware.watching.watcher import Registration

    watcher = Watcher(mounts=lambda: mounts, interval=0.05)
    try:
        watcher.register("a", Registration(Changes(), roots={str(local): True}))
        watcher.register("b", Registration(Changes(), roots={str(remote): True}))
        watcher.start()
        assert watcher.backends == ["native", "polling"]
    finally:
        watcher.stop()


def test_a_dead_observer_thread_is_restarted_by_the_next_request(
    project: MakeProject,
    fresh_process: Watcher,
    until: Until,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If the observer thread dies, the next request logs it and starts a new one."""
    made = project()
    app = made.application
    assert call(app).body == b"old"
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    (observer,) = fresh_process._observers.values()

    def boom() -> None:
        raise RuntimeError("observer failed")

    monkeypatch.setattr(observer, "dispatch_events", lambda *a, **k: boom())
    (made.views.parent / "unrelated.txt").write_text("wakes the observer up")
    until(lambda: not observer.is_alive())  # it raised the flag before it ended
    assert call(app).body == b"old"
    assert any("watcher thread had stopped" in r.getMessage() for r in caplog.records)
    made.save_views("TEXT = 'seen again'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"seen again"


NOBODY = 65534  # a user, and a group, that no process of the tests runs as


def test_inotify_instance_limit_falls_back_to_polling() -> None:
    """With every inotify instance of its user in use, one log line says which limit, and
    polling still sees a save. The limit is per user: a forked child takes it as a user
    of its own, so no other process of the machine loses its instances meanwhile."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the limit is taken as a user no other process runs as")
    root = Path(tempfile.mkdtemp(prefix="reload-middleware-limit-"))
    os.chmod(root, 0o777)
    project_modules.library_roots()  # imports what the child could not read as another user
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        os.close(read)
        code = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, _watch_without_instances(root).encode())
            code = 0
        except BaseException as exc:
            os.write(write, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(root)
    assert os.waitstatus_to_exitcode(status) == 0, report
    lines = report.splitlines()
    assert any("max_user_instances" in line and "polling it instead" in line
               for line in lines), report
    assert lines[-1] == "save seen: True", report


def hello(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def _watch_without_instances(root: Path) -> str:
    """In the child: hold every inotify instance, start watching `root`, give them back,
    save a file; the log lines and whether the save was seen."""
    interpreter.reset()
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("reload_middleware")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    page = root / "page.txt"
    page.write_text("old")
    script = Script("limit_script", str(root / "app.py"))
    libc = ctypes.CDLL(None, use_errno=True)
    held: list[int] = []
    try:
        while (fd := libc.inotify_init1(os.O_CLOEXEC)) >= 0:
            held.append(fd)
            assert len(held) < 100_000
        assert ctypes.get_errno() == errno.EMFILE
        middleware = ReloadMiddleware._for_script(
            hello, script, {"watch": [str(root)], "interval": 0.05})
        middleware.arm()
    finally:
        for fd in held:
            os.close(fd)
    page.write_text("new, and longer")
    try:
        wait_until(lambda: str(page) in middleware.pending, timeout=10)
    finally:
        interpreter.current().watcher.stop()
    return "\n".join([*messages, f"save seen: {str(page) in middleware.pending}"])


def test_polling_alone_sees_changes(project: MakeProject, until: Until) -> None:
    """observer=polling (for network shares) needs no native events."""
    made = project(observer="polling", interval=0.05)
    app = made.application
    assert call(app).body == b"old"
    made.save_views("TEXT = 'polled'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"polled"


def test_a_file_written_nonstop_never_holds_requests_long(
    project: MakeProject, caplog: pytest.LogCaptureFixture, until: Until
) -> None:
    """A log the app keeps writing in a watched directory: every request answers within
    the settle bound (the first one that acts on it also waits for its writer to close,
    CLOSE_WAIT at most, once), and after a few reloads it is ignored."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made = project(settle=0.05, watch=["data"])
    (made.root / "data").mkdir(exist_ok=True)
    log = made.root / "data" / "app.log"
    app = made.application
    stop = threading.Event()

    def write() -> None:
        with open(log, "a") as target:
            while not stop.wait(0.005):
                target.write("line\n")
                target.flush()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        durations: list[float] = []
        deadline = time.monotonic() + 10

        def serve() -> None:
            started = time.monotonic()
            assert call(app).status == "200 OK"
            durations.append(time.monotonic() - started)

        while not any("seems to write it" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "never reported as a storm"
            serve()
        for _ in range(20):
            serve()
    finally:
        stop.set()
        writer.join()
    # The bound is max(10 x settle, 1 s), plus a reload; one request waits for the writer.
    assert sorted(durations)[-2] < 1.5
    assert max(durations) < 1.5 + settling.CLOSE_WAIT
    assert sorted(durations)[len(durations) // 2] < 0.5  # most requests pass quickly


class UwsgiStart:
    """uWSGI's module as far as the load-time bound reads it: `started_on`, whole seconds."""

    def __init__(self, started_on: int) -> None:
        self.started_on = started_on


def test_uwsgi_load_bound_is_before_the_app_imported_its_modules() -> None:
    """Under uWSGI the bound is the re-exec's whole second (or the process start, if
    later), never the import of the middleware: an app imports its own modules first,
    and a save between the two would otherwise be taken as what was loaded."""
    imported = read_times._IMPORTED_NS
    on = imported // 10**9 - 1
    bound = read_times.process_started_ns({"uwsgi": UwsgiStart(on)})
    assert on * 10**9 <= bound < imported
    # The process start is computed from two clocks read apart: equal to a millisecond.
    assert abs(bound - max(on * 10**9, read_times.process_started_ns({}))) < 1_000_000
    # Never later than the import: a started_on ahead of it proves nothing.
    assert read_times.process_started_ns({"uwsgi": UwsgiStart(imported // 10**9 + 60)}) == imported
