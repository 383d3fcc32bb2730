"""The private state directory: chosen from fixed candidates, checked before each use."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reload_middleware.acting.storm_guard import StormGuard
from reload_middleware.operations import state_dir
from reload_middleware.operations.state_dir import StateDir

SETPRIV = shutil.which("setpriv")


def require(reason: str | None) -> None:
    """Skip with the reason here; in CI a test that cannot run is a failure."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"cannot run in CI: {reason}")
    pytest.skip(reason)


def as_nobody(*argv: str) -> None:
    """Run `argv` as another local account (nobody), as a neighbour on the host would."""
    require(None if os.geteuid() == 0 else "planting as another uid needs root")
    require(None if SETPRIV else "setpriv (util-linux) is not installed")
    assert SETPRIV is not None
    command = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
    subprocess.run(command, check=True, timeout=10)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory like /tmp (where another account can reach it): everybody may create
    names in it, nobody remove others'."""
    path = Path(tempfile.mkdtemp(prefix="rm-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


def within(seconds: float, action: Callable[[], object]) -> None:
    """Run `action` in a thread; fail (rather than hang the suite) if it blocks."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # reported below, in the test's thread
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for {seconds} s"
    if failed:
        raise failed[0]


def errors(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if word in r.getMessage()]


@pytest.mark.parametrize(
    ("uid", "environ", "home", "first"),
    [
        (33, {}, None, "/tmp/reload-middleware-33"),
        (33, {"XDG_RUNTIME_DIR": "relative"}, None, "/tmp/reload-middleware-33"),
        (1000, {"XDG_RUNTIME_DIR": "/run/user/1000"}, "/home/a",
         "/run/user/1000/reload-middleware"),
        (1000, {}, "/home/a", "/home/a/.cache/reload-middleware"),
    ],
    ids=["www-data", "relative-runtime", "runtime", "home"],
)
def test_candidates(uid: int, environ: dict[str, str], home: str | None, first: str) -> None:
    """A fixed order: runtime dir, a writable home's cache, the temp dir and its spares."""
    found = state_dir.candidates(uid, environ, home, "/tmp")
    assert found[0] == first
    assert found[-1] == f"/tmp/reload-middleware-{uid}.{state_dir.SUFFIXES}"
    assert found == state_dir.candidates(uid, environ, home, "/tmp")


def test_the_first_candidate_is_made_private(tmp_path: Path) -> None:
    """Created with mode 0700, whatever the umask; the same for the next process."""
    old = os.umask(0)
    try:
        state = StateDir([str(tmp_path / "a"), str(tmp_path / "b")])
        assert state.path == str(tmp_path / "a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700
    assert StateDir([str(tmp_path / "a")]).path == str(tmp_path / "a")


def world_writable(path: Path) -> None:
    path.write_text("{}")
    path.chmod(0o666)


def open_directory(path: Path) -> None:
    path.mkdir()
    path.chmod(0o777)


PLANTS: dict[str, Callable[[Path], None]] = {
    "world-writable-file": world_writable,
    "fifo": os.mkfifo,
    "symlink": lambda p: p.symlink_to(p.parent / "elsewhere", target_is_directory=True),
    "mode-0755": lambda p: p.mkdir(mode=0o755),
    "mode-0777": open_directory,
}


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_wrong_candidate_is_skipped_once_in_the_log(
    tmp_path: Path, plant: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    """Anything but a private directory of ours is skipped, said once; the next is used."""
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    plant(tmp_path / "a")
    state = StateDir([str(tmp_path / "a"), str(tmp_path / "b")])
    assert state.path == str(tmp_path / "b")
    with state.opened() as fd:
        assert fd is not None
    assert len(errors(caplog, "skipped")) == 1


def test_a_candidate_owned_by_another_uid_is_skipped(
    shared: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another account's directories (mode 0700, or world-writable) are never used."""
    room = shared
    as_nobody("mkdir", "-m", "0700", str(room / "a"))
    as_nobody("mkdir", "-m", "0777", str(room / "b"))
    as_nobody("mkfifo", str(room / "c"))
    state = StateDir([str(room / n) for n in "abcd"])
    assert state.path == str(room / "d")
    assert len(errors(caplog, "skipped")) == 3


def state_at(seconds: float) -> tuple[int, int, int, int, tuple[int, ...]]:
    """A file's state as the storm guard gets it, saved at `seconds`."""
    ns = int(seconds * 1e9)
    return (ns, 5, 7, ns, (0o100644, 0, 0, 1))


def written_at(seconds: float) -> Callable[[str], os.stat_result]:
    """A stat of a file last written at `seconds`."""
    ns = int(seconds * 1e9)
    return lambda _: os.stat_result((0o100644, 7, 1, 1, 0, 0, 5, 0, int(seconds),
                                     int(seconds), 0.0, seconds, seconds, 0, ns, ns))


def test_no_candidate_keeps_storms_in_memory_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With every candidate planted the guard still counts, in memory; said once."""
    (tmp_path / "a").write_text("")
    state = StateDir([str(tmp_path / "a")])
    clock = [1000.0]
    guard = StormGuard("/srv/app.wsgi", state=state, clock=lambda: clock[0])
    for _ in range(6):  # the app writes its log as each reload loads
        clock[0] += 1
        guard.acted({"/srv/data.log": state_at(clock[0] - 0.7)})
        guard.loaded([(clock[0], clock[0] + 0.2)], stat=written_at(clock[0] + 0.1))
    assert guard.ignored == {"/srv/data.log"}
    assert len(errors(caplog, "no private state directory usable")) == 1
    assert os.listdir(tmp_path) == ["a"]


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_storm_record_is_replaced_without_blocking(
    tmp_path: Path, plant: Callable[[Path], None]
) -> None:
    """A FIFO, link, directory or writable file at the record's name: read as no record,
    never waited on, and replaced by a file of ours (a link's target is left alone)."""
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    state = StateDir([str(tmp_path / "state")])
    guard = StormGuard("/srv/app.wsgi", state=state)
    assert state.path is not None
    record = Path(state.path) / guard.name
    plant(record)
    within(5, lambda: guard.acted({"/srv/data.log": state_at(1.0)}))
    info = os.lstat(record)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert "/srv/data.log" in json.loads(record.read_text())
    assert os.listdir(tmp_path / "elsewhere") == []


def returns(count: int, last: float) -> dict[str, object]:
    """A record in which /srv/data.log came back after each of `count` actions."""
    acts = [[int((last - n) * 1e9), 5, 7, last - n, "", False] for n in range(count, -1, -1)]
    writes = [[last - n + 0.5, last - n + 0.6] for n in range(count, -1, -1)]
    return {"/srv/data.log": {"acts": acts, "writes": writes, "edited": False}}


def test_a_world_writable_record_is_not_believed(tmp_path: Path) -> None:
    """A record anybody could have written is no record: its counts are not taken."""
    clock = [1000.0]
    state = StateDir([str(tmp_path / "state")])
    guard = StormGuard("/srv/app.wsgi", state=state, clock=lambda: clock[0])
    assert state.path is not None
    record = Path(state.path) / guard.name
    record.write_text(json.dumps(returns(10, 999.0)))
    record.chmod(0o666)
    guard.acted({"/srv/data.log": state_at(999.6)})
    assert guard.ignored == set()
    record.write_text(json.dumps(returns(10, 999.0)))
    record.chmod(0o600)  # the same record, ours: believed
    guard.acted({"/srv/data.log": state_at(999.6)})
    assert guard.ignored == {"/srv/data.log"}


@pytest.mark.parametrize(
    "act",
    [[1, 5, 7, 1e18, "", False], [1, 5, 7, -1.0, "", False], [1, 5, 7, float("inf"), "", False],
     [1, 5.5, 7, 999.0, "", False], [1, 5, 7, 999.0, "zz", False], [1, 5, 7, 999.0, "", 1],
     [1, 5, True, 999.0, "", False], [1, 5, 2**64, 999.0, "", False], ["1", 5, 7, 999.0, "", False],
     [1, 5, 7, 999.0], 7],
    ids=["future", "negative", "infinite", "size-float", "digest-not-hex", "repeat-int",
         "inode-bool", "inode-huge", "time-text", "short", "not-a-list"],
)
def test_bad_record_values_are_discarded_with_a_log_line(
    tmp_path: Path, act: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Times, states and digests out of bounds discard the record, said in the log."""
    clock = [1000.0]
    state = StateDir([str(tmp_path / "state")])
    guard = StormGuard("/srv/app.wsgi", state=state, clock=lambda: clock[0])
    assert state.path is not None
    record = Path(state.path) / guard.name
    entry = {"acts": [act], "writes": [], "edited": False}
    record.write_text(json.dumps({"/srv/data.log": entry}))
    record.chmod(0o600)
    guard.acted({"/srv/data.log": state_at(999.95)})
    assert guard.ignored == set()
    assert len(errors(caplog, "discarded")) == 1


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_stamp_is_replaced_by_a_touch(
    tmp_path: Path, plant: Callable[[Path], None]
) -> None:
    """The stamp's touch never waits on a FIFO nor writes through a link or directory."""
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    state = StateDir([str(tmp_path / "state")])
    assert state.path is not None
    plant(Path(state.path) / "stamp-x")

    def touch() -> None:
        with state.opened() as fd:
            assert fd is not None
            state_dir.touch(fd, "stamp-x")

    within(5, touch)
    info = os.lstat(Path(state.path) / "stamp-x")
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert os.listdir(tmp_path / "elsewhere") == []


@pytest.mark.parametrize(
    "plant",
    [PLANTS["fifo"], PLANTS["symlink"], PLANTS["mode-0755"]],
    ids=["fifo", "symlink", "directory"],
)
def test_a_trigger_that_is_no_regular_file_is_not_touched(
    tmp_path: Path, plant: Callable[[Path], None]
) -> None:
    """Outside the private directory nothing is replaced: it is refused, without waiting."""
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    plant(tmp_path / "trigger")

    def touch() -> None:
        with pytest.raises(OSError):
            state_dir.touch_outside(str(tmp_path / "trigger"))

    within(5, touch)
    assert os.listdir(tmp_path / "elsewhere") == []


def test_a_trigger_of_another_uid_is_not_touched(shared: Path) -> None:
    """A world-writable trigger planted by another account is not ours to touch."""
    room = shared
    as_nobody("install", "-m", "0666", "/dev/null", str(room / "trigger"))
    before = os.stat(room / "trigger").st_mtime_ns
    with pytest.raises(OSError, match="not a regular file of ours"):
        state_dir.touch_outside(str(room / "trigger"))
    assert os.stat(room / "trigger").st_mtime_ns == before


def test_the_state_directory_is_checked_again_at_each_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Replaced after it was chosen: no descriptor is handed out, said once."""
    state = StateDir([str(tmp_path / "state")])
    assert state.path is not None
    os.chmod(state.path, 0o755)
    for _ in range(2):
        with state.opened() as fd:
            assert fd is None
    said = errors(caplog, "no longer usable")
    assert len(said) == 1 and "control POST to this process reloads only" in said[0]


def test_a_process_started_after_a_plant_is_gone_joins_the_others(
    shared: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another account plants the first candidate, the processes start on the next; the
    plant goes and one process recycles: it uses the directory the others use (their
    control POSTs touch one stamp), not the first candidate."""
    candidates = [str(shared / "rm-33"), str(shared / "rm-33.1"), str(shared / "rm-33.2")]
    as_nobody("mkfifo", "-m", "0666", candidates[0])
    started = [StateDir(candidates) for _ in range(2)]
    assert [state.path for state in started] == [candidates[1]] * 2
    as_nobody("rm", candidates[0])
    recycled = StateDir(candidates)
    assert recycled.path == candidates[1]
    assert not os.path.lexists(candidates[0])
    assert not errors(caplog, "is one too")


def test_two_private_spares_are_said_with_what_a_post_then_reaches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two numbered spares that are both ours: processes may be split between them, said
    once with what it means for a control POST; the first of them is used."""
    candidates = [str(tmp_path / "rm-33"), str(tmp_path / "rm-33.1")]
    for path in candidates:
        os.mkdir(path, 0o700)
    state = StateDir(candidates)
    assert state.path == candidates[0]
    assert state.path == candidates[0]
    said = errors(caplog, "is one too")
    assert len(said) == 1
    assert "control POST then reloads only the processes on the same directory" in said[0]
