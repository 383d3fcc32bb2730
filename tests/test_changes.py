"""Has anything changed: confirmation by (mtime, size, inode), the flag, settle."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reload_middleware.watching import settling
from reload_middleware.watching.changes import Changes
from reload_middleware.watching.file_state import UNREADABLE, stat_of
from reload_middleware.watching.read_times import TICK_NS

SECOND = 10**9  # nanoseconds


def write(path: Path, text: str, mtime_ns: int | None = None) -> str:
    """Write `text` to `path` (in place), optionally with an exact mtime; the path as str."""
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return str(path)


def mtime_ns(path: str) -> int:
    return os.stat(path).st_mtime_ns


@pytest.fixture
def module(tmp_path: Path) -> str:
    """A module file with a known mtime, in a directory of its own."""
    return write(tmp_path / "views.py", "TEXT = 'old'\n", 1_700_000_000 * SECOND)


def confirmed(changes: Changes, path: str) -> frozenset[str]:
    """What a request would act on after the watcher reported `path`."""
    changes.record(path)
    return changes.take().paths


# --- what counts --------------------------------------------------------------------


def test_an_event_without_a_change_is_not_a_change(module: str) -> None:
    """A file that was only read or reported twice does not reload anything."""
    changes = Changes()
    changes.baseline([module])
    assert confirmed(changes, module) == frozenset()
    assert changes.pending == frozenset()


def test_touch_counts(module: str) -> None:
    """`touch views.py` (a newer mtime, same content) forces a reload."""
    changes = Changes()
    changes.baseline([module])
    os.utime(module, ns=(mtime_ns(module) + SECOND, mtime_ns(module) + SECOND))
    assert confirmed(changes, module) == {module}


def test_mtime_going_backwards_counts(module: str) -> None:
    """A file restored from a backup or an older checkout (an older mtime) counts."""
    changes = Changes()
    changes.baseline([module])
    os.utime(module, ns=(mtime_ns(module) - 3600 * SECOND,) * 2)
    assert confirmed(changes, module) == {module}


def test_same_size_rewrite_with_a_new_mtime_counts(module: str) -> None:
    """Saving 'old' as 'new' (same size, same inode) a millisecond later counts."""
    changes = Changes()
    changes.baseline([module])
    before = os.stat(module)
    write(Path(module), "TEXT = 'new'\n", before.st_mtime_ns + 1_000_000)
    assert os.stat(module).st_size == before.st_size
    assert os.stat(module).st_ino == before.st_ino
    assert confirmed(changes, module) == {module}


def test_replacement_with_the_same_mtime_and_size_counts(module: str, tmp_path: Path) -> None:
    """An atomic save that keeps mtime and size (a new inode) still counts."""
    changes = Changes()
    changes.baseline([module])
    before = os.stat(module)
    replacement = write(tmp_path / "views.py.new", "TEXT = 'new'\n", before.st_mtime_ns)
    os.replace(replacement, module)
    assert (mtime_ns(module), os.stat(module).st_size) == (before.st_mtime_ns, before.st_size)
    assert confirmed(changes, module) == {module}


def test_chmod_alone_does_not_count(module: str) -> None:
    """`chmod` (an attribute event that changes nothing compared) reloads nothing."""
    changes = Changes()
    changes.baseline([module])
    os.chmod(module, 0o600)
    assert confirmed(changes, module) == frozenset()


def test_a_file_that_appears_counts(tmp_path: Path) -> None:
    """A tracked file that did not exist when loaded and exists now counts."""
    path = str(tmp_path / "settings_local.py")
    changes = Changes()
    changes.baseline([path])
    write(Path(path), "DEBUG = True\n")
    assert confirmed(changes, path) == {path}


def test_a_file_that_disappears_counts(module: str) -> None:
    """Deleting a tracked module counts."""
    changes = Changes()
    changes.baseline([module])
    os.remove(module)
    assert confirmed(changes, module) == {module}


def test_an_unknown_file_created_then_deleted_does_not_count(tmp_path: Path) -> None:
    """An editor's temporary file, gone before the next request, reloads nothing."""
    path = write(tmp_path / "views.py.goutputstream-X1Y2", "partial")
    changes = Changes()
    changes.record(path)
    os.remove(path)
    assert changes.take().paths == frozenset()
    assert changes.pending == frozenset()


def test_an_unknown_file_that_now_exists_counts(tmp_path: Path) -> None:
    """A new file in a watched directory (no baseline, present now) counts."""
    changes = Changes()
    path = write(tmp_path / "new_view.py", "TEXT = 'new'\n")
    assert confirmed(changes, path) == {path}


def test_a_file_that_becomes_unreadable_counts(module: str) -> None:
    """A module the server can no longer stat is a change, not a crash."""
    broken: set[str] = set()

    def stat(path: str) -> os.stat_result:
        if path in broken:
            raise PermissionError(13, "Permission denied", path)
        return os.stat(path)

    changes = Changes(stat=stat)
    changes.baseline([module])
    broken.add(module)
    assert stat_of(module, stat) == UNREADABLE
    assert confirmed(changes, module) == {module}


def test_sweep_finds_changes_made_before_watching(module: str) -> None:
    """A module edited after import but before the watcher started still counts."""
    changes = Changes()
    changes.baseline([module])
    os.utime(module, ns=(mtime_ns(module) + SECOND,) * 2)
    changes.sweep()
    assert changes.pending == {module}
    assert changes.take().paths == {module}


# --- the flag and .pending --------------------------------------------------------------


def test_the_flag_starts_up_so_the_first_request_looks() -> None:
    """A new latch makes the first request look (read its environ, start watching)."""
    changes = Changes()
    assert changes.dirty
    taken = changes.take()
    changes.finish(taken, acted=False)
    assert not changes.dirty


def test_finish_keeps_the_flag_up_when_an_event_came_after_take(module: str) -> None:
    """An event that arrives while a request acts is looked at by the next request."""
    changes = Changes()
    changes.baseline([module])
    changes.record(module)
    taken = changes.take()
    changes.record(module)
    changes.finish(taken, acted=False)
    assert changes.dirty


def test_poke_raises_the_flag_without_a_path() -> None:
    """A new import raises the flag so the next request tracks it, with nothing pending."""
    changes = Changes()
    changes.finish(changes.take(), acted=False)
    taken = changes.take()
    changes.poke()
    changes.finish(taken, acted=False)
    assert changes.dirty
    assert changes.pending == frozenset()


def test_keep_flag_keeps_it_up() -> None:
    """With `keep_flag` (debug after a failure) every request keeps looking."""
    changes = Changes()
    changes.finish(changes.take(), acted=False, keep_flag=True)
    assert changes.dirty


def test_pending_holds_recorded_paths_until_acted_on(module: str, tmp_path: Path) -> None:
    """`.pending` shows what was reported, drops what did not change, keeps the rest."""
    other = write(tmp_path / "models.py", "X = 1\n")
    changes = Changes()
    changes.baseline([module, other])
    os.utime(module, ns=(mtime_ns(module) + SECOND,) * 2)
    changes.record(module)
    changes.record(other)
    assert changes.pending == {module, other}

    taken = changes.take()
    assert taken.paths == {module}
    assert changes.pending == {module}

    changes.finish(taken, acted=False)  # a failed preflight: still pending, retried later
    assert changes.pending == {module}
    assert changes.take().paths == {module}


def test_finish_after_acting_rebaselines(module: str) -> None:
    """After a reload the file as it is now is the baseline: no second reload for it."""
    changes = Changes()
    changes.baseline([module])
    os.utime(module, ns=(mtime_ns(module) + SECOND,) * 2)
    changes.record(module)
    taken = changes.take()
    changes.finish(taken, acted=True)
    assert changes.pending == frozenset()
    assert not changes.dirty
    assert confirmed(changes, module) == frozenset()


def test_a_save_during_the_action_is_not_lost(module: str) -> None:
    """A file saved again while the reload runs is reloaded by the next request."""
    changes = Changes()
    changes.baseline([module])
    os.utime(module, ns=(mtime_ns(module) + SECOND,) * 2)
    changes.record(module)
    taken = changes.take()
    os.utime(module, ns=(mtime_ns(module) + SECOND,) * 2)  # saved again mid-reload
    changes.record(module)
    changes.finish(taken, acted=True)
    assert changes.dirty
    assert changes.take().paths == {module}


def test_an_event_during_take_is_not_lost(module: str) -> None:
    """A save that lands just after a request looked at an unchanged file still counts."""
    holder: list[Changes] = []

    def stat(path: str) -> os.stat_result:
        before = os.stat(path)
        if holder and holder[0].pending:
            changes = holder.pop()
            os.utime(path, ns=(before.st_mtime_ns + SECOND,) * 2)  # the save, just after
            changes.record(path)
        return before

    changes = Changes(stat=stat)
    changes.baseline([module])
    holder.append(changes)
    changes.record(module)  # an attribute event: nothing changed yet
    taken = changes.take()
    assert taken.paths == frozenset()
    changes.finish(taken, acted=False)
    assert changes.dirty
    assert changes.take().paths == {module}


# --- settle ------------------------------------------------------------------------------


class SteppingClock:
    """A monotonic clock that moves only when told to; it notes what settle() read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0  # by the reader thread (settle), not by record()
        self.last_read = -1.0
        self.reader: int | None = None
        self._cond = threading.Condition()

    def __call__(self) -> float:
        with self._cond:
            if threading.get_ident() == self.reader:
                self.reads += 1
                self.last_read = self.now
                self._cond.notify_all()
            return self.now

    def advance(self, seconds: float) -> None:
        with self._cond:
            self.now += seconds

    def wait_for_read(self, after: int, timeout: float) -> int:
        """Wait until the reader has read the clock more than `after` times; the count."""
        with self._cond:
            self._cond.wait_for(lambda: self.reads > after, timeout)
            return self.reads


class Settling:
    """settle(quiet) running in a daemon thread that reads `clock`; `.settled` its answer."""

    def __init__(self, changes: Changes, clock: SteppingClock, quiet: float) -> None:
        self.done = threading.Event()
        self.settled: bool | None = None

        def run() -> None:
            clock.reader = threading.get_ident()
            self.settled = changes.settle(quiet)
            self.done.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "settle() did not return within 5 s"


@pytest.mark.parametrize("quiet", [0.0, 0.05, 60.0], ids=["zero", "default", "one-minute"])
def test_settle_returns_at_once_when_quiet(quiet: float) -> None:
    """A request after a quiet spell is not delayed by settle."""
    clock = SteppingClock()
    changes = Changes(clock=clock)
    changes.record("/srv/app/views.py")
    clock.advance(quiet + 1)
    Settling(changes, clock, quiet).join()  # a wait would never end: the clock stands still


def test_settle_returns_at_once_with_no_event_ever() -> None:
    """A request with nothing ever reported is not delayed by settle."""
    clock = SteppingClock()
    Settling(Changes(clock=clock), clock, 60.0).join()


@pytest.mark.parametrize(
    ("quiet", "bound"),
    [(0.05, 1.0), (0.2, 2.0), (0.5, 5.0)],
    ids=["at-least-1s", "10x-settle", "10x-large-settle"],
)
def test_settle_waits_while_events_come_but_not_longer_than_the_bound(
    quiet: float, bound: float
) -> None:
    """A build writing file after file delays a request by the bound at most, then the
    action is held (the current code serves) and later requests are not delayed."""
    clock = SteppingClock()
    changes = Changes(clock=clock)
    changes.record("/srv/app/views.py")
    settler = Settling(changes, clock, quiet)
    step = quiet / 5  # events closer together than `quiet`: never quiet
    seen, events, deadline = 0, 0, time.monotonic() + 5
    while not settler.done.is_set() and time.monotonic() < deadline:
        reads = clock.wait_for_read(after=seen, timeout=0.1)
        if reads > seen and not settler.done.is_set():
            seen = reads  # settle has looked since the last event: the next one comes
            clock.advance(step)
            changes.record(f"/srv/app/build/file{events}.py")
            events += 1
    settler.join()
    assert bound - 1e-9 <= clock.last_read <= bound + step + 1e-9
    assert events >= round(bound / step)
    assert settler.settled is False and changes.holding
    again = Settling(changes, clock, quiet)  # the clock stands still: a wait would not end
    again.join()
    assert again.settled is False
    clock.advance(max(quiet, settling.CALM))  # a burst ends after CALM without an event
    quiet_now = Settling(changes, clock, quiet)
    quiet_now.join()
    assert quiet_now.settled is True and not changes.holding


class Writer:
    """A thread recording events on `paths(n)` every `every` seconds until stopped."""

    def __init__(self, changes: Changes, paths: Callable[[int], str], every: float) -> None:
        self._stop = threading.Event()

        def run() -> None:
            n = 0
            while not self._stop.wait(every):
                changes.record(paths(n))
                n += 1

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_burst_longer_than_the_hold_is_acted_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes that never stop are acted on after HOLD seconds all the same."""
    monkeypatch.setattr(settling, "HOLD", 0.3)
    changes = Changes()
    start = time.monotonic()
    with Writer(changes, lambda n: f"/srv/app/build/gen{n}.py", every=0.01):
        changes.record("/srv/app/build/first.py")
        while not changes.settle(0.05):
            assert time.monotonic() - start < 5, "held for ever"
    assert time.monotonic() - start >= 0.3


def test_a_path_written_nonstop_does_not_hold_the_tree() -> None:
    """A log the app appends to: after a few events of its own it no longer delays."""
    changes = Changes()
    start = time.monotonic()
    with Writer(changes, lambda n: "/srv/app/data/app.log", every=0.005):
        changes.record("/srv/app/data/app.log")
        assert changes.settle(0.05)
    assert time.monotonic() - start < 0.9  # sooner than the 1 s bound


def test_settle_waits_for_quiet_after_the_last_event() -> None:
    """A multi-file save is taken as one change: the request waits `settle` after it."""
    changes = Changes()
    start = time.monotonic()
    changes.record("/srv/app/views.py")
    changes.settle(0.05)
    assert time.monotonic() - start >= 0.05


def taken_after_load(path: str, loaded: int) -> frozenset[str]:
    """What a request takes when `path` was tracked with this load time, then swept."""
    changes = Changes()
    changes.baseline([path], loaded_since=loaded)
    changes.sweep()
    return changes.take().paths


def loaded_after(path: str) -> int:
    """A load time after `path` was last written, by more than file clocks can lag."""
    return os.stat(path).st_ctime_ns + 2 * TICK_NS


def test_a_file_written_after_its_module_was_loaded_counts(tmp_path: Path) -> None:
    """A save between the import and the baseline is not taken as the loaded version."""
    loaded = time.time_ns() - 10**9  # the module was imported a second ago
    path = write(tmp_path / "views.py", "X = 2\n", mtime_ns=loaded + 5 * 10**8)  # then saved
    assert taken_after_load(path, loaded) == {path}


def test_a_file_from_before_the_load_is_the_loaded_version(tmp_path: Path) -> None:
    """A file older than the import is what was loaded: nothing to do."""
    path = write(tmp_path / "views.py", "X = 1\n", mtime_ns=time.time_ns() - 10**9)
    assert taken_after_load(path, loaded_after(path)) == frozenset()


def test_a_copy_that_keeps_its_old_mtime_after_the_load_counts(tmp_path: Path) -> None:
    """rsync -a, cp -p or tar after the import: an old mtime, but a new ctime."""
    loaded = time.time_ns() - 10**9
    path = write(tmp_path / "views.py", "X = 2\n", mtime_ns=loaded - 3600 * SECOND)
    assert taken_after_load(path, loaded) == {path}


def test_a_file_dated_in_the_future_never_restarts_forever(tmp_path: Path) -> None:
    """An mtime ahead of the clock (skew, a share) proves nothing: no endless reloads."""
    path = write(tmp_path / "views.py", "X = 1\n", mtime_ns=time.time_ns() + 3600 * 10**9)
    assert taken_after_load(path, loaded_after(path)) == frozenset()


def test_a_file_changed_since_its_load_is_recorded(tmp_path: Path) -> None:
    """A module tracked after its import, edited in between: a change at once."""
    loaded = time.time_ns() - 10**9
    edited = write(tmp_path / "views.py", "X = 2\n")
    loaded_then = write(tmp_path / "models.py", "X = 1\n")
    changes = Changes()
    changes.baseline([edited], loaded_since=loaded)
    changes.baseline([loaded_then], loaded_since=loaded_after(loaded_then))
    assert changes.pending == {edited}
    assert changes.take().paths == {edited}


def test_new_content_with_the_old_size_mtime_and_inode_counts(module: str) -> None:
    """rsync --inplace from a copy with the same sizes and times: only the ctime moves."""
    changes = Changes()
    changes.baseline([module])
    before = os.stat(module)
    with open(module, "r+") as target:  # same inode, same size
        target.write("TEXT = 'new'\n")
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(module)
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (
        before.st_mtime_ns, before.st_size, before.st_ino)
    assert confirmed(changes, module) == {module}


def test_a_new_hard_link_or_mode_alone_is_no_change(module: str, tmp_path: Path) -> None:
    """Metadata that moves the ctime with it (links, mode) changes no code."""
    changes = Changes()
    changes.baseline([module])
    os.link(module, tmp_path / "linked.py")
    assert confirmed(changes, module) == frozenset()
    os.chmod(module, 0o600)
    assert confirmed(changes, module) == frozenset()
    with open(module, "r+") as target:  # then new content, with the old size and mtime
        target.write("TEXT = 'new'\n")
    os.utime(module, ns=(os.stat(module).st_atime_ns, 1_700_000_000 * SECOND))
    assert confirmed(changes, module) == {module}


def test_saves_spread_over_time_never_make_a_path_busy() -> None:
    """A file saved now and then, however often in all, still delays a request as a
    save does: only a burst with no pause of CALM counts its events."""
    clock = SteppingClock()
    changes = Changes(clock=clock)
    for _ in range(3 * settling.BUSY_PATH):
        changes.record("/srv/app/templates/page.html")
        clock.advance(settling.CALM)
    changes.record("/srv/app/templates/page.html")
    settler = Settling(changes, clock, 0.05)
    clock.wait_for_read(after=1, timeout=5)
    assert not settler.done.is_set()  # it waits for this save to settle
    clock.advance(0.05)
    settler.join()
