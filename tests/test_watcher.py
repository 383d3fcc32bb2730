"""How events arrive: which watchdog events count, routing, backends and their threads."""

from __future__ import annotations

import errno
import inspect
import logging
import os
import threading
import time
from pathlib import Path

import pytest
import watchdog.events
from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from helpers import Until
from reload_middleware.watching import observers
from reload_middleware.watching.changes import Changes
from reload_middleware.watching.paths import DEFAULT_EXCLUDES
from reload_middleware.watching.watcher import Registration, Watcher

PROJECT = "/srv/app/myproject"
VIEWS = f"{PROJECT}/views.py"


def routed(registration: Registration, *events: FileSystemEvent) -> frozenset[str]:
    """Feed events to a watcher's handler (no thread, no disk); what got recorded."""
    watcher = Watcher()
    watcher.register("/srv/app/app.wsgi", registration)
    for event in events:
        watcher.deliver(event)
    return registration.changes.pending


def module_registration(*files: str) -> Registration:
    """What a middleware registers for imported modules: exact files, already baselined."""
    changes = Changes()
    changes.baseline(files)
    return Registration(changes, frozenset(files), exclude=DEFAULT_EXCLUDES)


def directory_registration(*dirs: str) -> Registration:
    """What a middleware registers for `watch=[directory]`: any file below counts."""
    return Registration(Changes(), dirs=dirs, exclude=DEFAULT_EXCLUDES)


# --- which events count ------------------------------------------------------------------

EVENTS = [
    # (id, event about views.py or its package directory, whether it records views.py)
    ("file-created", FileCreatedEvent(VIEWS), True),
    ("file-modified", FileModifiedEvent(VIEWS), True),
    ("file-attrib-touch", FileAttribEvent(VIEWS), True),
    ("file-moved-src", FileMovedEvent(VIEWS, f"{PROJECT}/views_old.py"), True),
    ("file-moved-dest", FileMovedEvent(f"{PROJECT}/views.py.3f9a2c", VIEWS), True),
    ("file-deleted", FileDeletedEvent(VIEWS), True),
    ("file-closed-after-write", FileClosedEvent(VIEWS), True),
    ("file-closed-no-write", FileClosedNoWriteEvent(VIEWS), False),
    ("file-opened", FileOpenedEvent(VIEWS), False),
    ("dir-created", DirCreatedEvent(PROJECT), True),
    ("dir-deleted", DirDeletedEvent(PROJECT), True),
    ("dir-moved-src", DirMovedEvent(PROJECT, "/srv/app/myproject.old"), True),
    ("dir-moved-dest", DirMovedEvent("/srv/app/myproject.new", PROJECT), True),
    ("dir-modified", DirModifiedEvent(PROJECT), False),
    ("dir-attrib", DirAttribEvent(PROJECT), False),
    # Names no changed file: the safety net looks at every file instead (below).
    ("events-lost", EventsLostEvent(PROJECT, is_directory=True), False),
]


@pytest.mark.parametrize(
    ("event", "records"), [(e, r) for _, e, r in EVENTS], ids=[i for i, _, _ in EVENTS]
)
def test_which_events_record_a_change(event: FileSystemEvent, records: bool) -> None:
    """Writes, touches, moves and deletes count; opening or reading a file never does."""
    expected = {VIEWS} if records else set()
    assert routed(module_registration(VIEWS), event) == expected


def test_every_watchdog_event_type_is_in_the_table() -> None:
    """A watchdog release with a new event type makes a decision about it necessary."""
    emitted = {
        cls
        for _, cls in inspect.getmembers(watchdog.events, inspect.isclass)
        if issubclass(cls, FileSystemEvent)
        and cls not in (FileSystemEvent, watchdog.events.FileSystemMovedEvent)
    }
    assert emitted == {type(event) for _, event, _ in EVENTS}


KINDS = [
    # (id, event, what it says with close events (inotify), and without (polling))
    ("modified", FileModifiedEvent(VIEWS), "write", ""),
    # Also how a recursive watch reports the files in a directory it starts watching.
    ("created", FileCreatedEvent(VIEWS), "", ""),
    ("closed-after-write", FileClosedEvent(VIEWS), "written", ""),
    ("moved", FileMovedEvent(VIEWS, f"{PROJECT}/old.py"), "written", ""),
    ("deleted", FileDeletedEvent(VIEWS), "written", ""),
    ("attrib", FileAttribEvent(VIEWS), "attrib", "attrib"),
    ("dir-created", DirCreatedEvent(PROJECT), "", ""),
    # Found in a directory as it is watched (a checkout recreating it): written before.
    ("created-synthetic", FileCreatedEvent(VIEWS, is_synthetic=True), "", ""),
]


@pytest.mark.parametrize(
    ("event", "native", "polling"), [k[1:] for k in KINDS], ids=[k[0] for k in KINDS]
)
def test_what_an_event_says_of_its_file(event: FileSystemEvent, native: str, polling: str
                                        ) -> None:
    """A write leaves a writer at work until its close; an attribute event leaves the
    content as it was; without close events nothing is known of writers."""
    assert observers.kind(event, closes=True) == native
    assert observers.kind(event, closes=False) == polling


def test_lost_events_make_the_next_request_look_at_every_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An overflow raises the flag with a doubt, and says so once however many watches
    report it."""
    registration = module_registration(VIEWS)
    watcher = Watcher()
    watcher.register("/srv/app/app.wsgi", registration)
    registration.changes.finish(registration.changes.take(), acted=False)
    with caplog.at_level(logging.INFO, logger="reload_middleware"):
        watcher.deliver(EventsLostEvent(PROJECT, is_directory=True))
        watcher.deliver(EventsLostEvent("/srv/app", is_directory=True))
    assert registration.changes.dirty
    assert registration.changes.doubted()
    assert [r.getMessage().split("] ", 1)[1] for r in caplog.records
            if "were lost" in r.getMessage()] == [
        "file events were lost (the event queue of /srv/app/myproject overflowed): every "
        "tracked file is looked at on the next request"
    ]


def test_a_bytes_path_is_recorded_as_text() -> None:
    """An event whose path watchdog reports as bytes still names the tracked file."""
    event = FileModifiedEvent(os.fsencode(VIEWS))
    assert routed(module_registration(VIEWS), event) == {VIEWS}


def test_an_untracked_file_is_not_recorded() -> None:
    """Editing a README next to the code reloads nothing."""
    event = FileModifiedEvent(f"{PROJECT}/README.md")
    assert routed(module_registration(VIEWS), event) == frozenset()


def test_any_file_in_a_watched_directory_is_recorded() -> None:
    """With watch=['templates'] a template anywhere below it counts."""
    template = "/srv/app/templates/blog/post.html"
    event = FileModifiedEvent(template)
    assert routed(directory_registration("/srv/app/templates"), event) == {template}


EXCLUDED = [
    ("vim-swap", ".views.py.swp"),
    ("vim-swap-2nd", ".views.py.swo"),
    ("vim-backup", "views.py~"),
    ("vim-probe", "4913"),
    ("emacs-lock", ".#views.py"),
    ("emacs-autosave", "#views.py#"),
    ("jetbrains-tmp", "views.py___jb_tmp___"),
    ("jetbrains-old", "views.py___jb_old___"),
    ("kate-swap", ".views.py.kate-swp"),
    ("bytecode", "__pycache__/views.cpython-311.pyc"),
    ("git", ".git/index"),
]


@pytest.mark.parametrize("name", [n for _, n in EXCLUDED], ids=[i for i, _ in EXCLUDED])
@pytest.mark.parametrize(
    "kind", [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent]
)
def test_excluded_names_never_record(name: str, kind: type[FileSystemEvent]) -> None:
    """Editor swap files, temporaries and bytecode in a watched directory reload nothing."""
    assert routed(directory_registration(PROJECT), kind(f"{PROJECT}/{name}")) == frozenset()


def test_each_registration_hears_only_its_own_files() -> None:
    """Two apps in one process: a change to one app's module does not reload the other."""
    blog, shop = module_registration(VIEWS), module_registration("/srv/shop/views.py")
    watcher = Watcher()
    watcher.register("/srv/app/app.wsgi", blog)
    watcher.register("/srv/shop/shop.wsgi", shop)
    watcher.deliver(FileModifiedEvent(VIEWS))
    assert blog.changes.pending == {VIEWS}
    assert shop.changes.pending == frozenset()


def test_a_script_registered_again_replaces_its_registration() -> None:
    """A re-executed script's old middleware stops hearing events; the new one hears them."""
    old, new = module_registration(VIEWS), module_registration(VIEWS)
    watcher = Watcher()
    watcher.register("/srv/app/app.wsgi", old)
    watcher.register("/srv/app/app.wsgi", new)
    watcher.deliver(FileModifiedEvent(VIEWS))
    assert old.changes.pending == frozenset()
    assert new.changes.pending == {VIEWS}


# --- editors' saves and whole directories --------------------------------------------------


def test_atomic_save_is_one_change_to_the_real_file(tmp_path: Path) -> None:
    """Write a temp file, rename it over the module: the module changed, nothing else."""
    views = tmp_path / "views.py"
    views.write_text("TEXT = 'old'\n")
    registration = module_registration(str(views))
    temp = tmp_path / ".views.py.3f9a2c"
    temp.write_text("TEXT = 'new'\n")
    os.replace(temp, views)
    pending = routed(
        registration,
        FileCreatedEvent(str(temp)),
        FileModifiedEvent(str(temp)),
        FileClosedEvent(str(temp)),
        FileMovedEvent(str(temp), str(views)),
    )
    assert pending == {str(views)}
    assert registration.changes.take().paths == {str(views)}


def test_jetbrains_safe_write_is_one_change_to_the_real_file(tmp_path: Path) -> None:
    """PyCharm's ___jb_tmp___/___jb_old___ dance in a watched directory is one change."""
    views = tmp_path / "views.py"
    views.write_text("TEXT = 'old'\n")
    registration = directory_registration(str(tmp_path))
    registration.changes.baseline([str(views)])
    jb_tmp, jb_old = tmp_path / "views.py___jb_tmp___", tmp_path / "views.py___jb_old___"
    jb_tmp.write_text("TEXT = 'new'\n")
    os.replace(views, jb_old)
    os.replace(jb_tmp, views)
    jb_old.unlink()
    pending = routed(
        registration,
        FileCreatedEvent(str(jb_tmp)),
        FileModifiedEvent(str(jb_tmp)),
        FileClosedEvent(str(jb_tmp)),
        FileMovedEvent(str(views), str(jb_old)),
        FileMovedEvent(str(jb_tmp), str(views)),
        FileDeletedEvent(str(jb_old)),
    )
    assert pending == {str(views)}
    assert registration.changes.take().paths == {str(views)}


def test_vim_backup_save_is_one_change_to_the_real_file(tmp_path: Path) -> None:
    """vim's probe file, backup rename and fresh write in a watched directory is one change."""
    views = tmp_path / "views.py"
    views.write_text("TEXT = 'old'\n")
    registration = directory_registration(str(tmp_path))
    registration.changes.baseline([str(views)])
    probe, backup = tmp_path / "4913", tmp_path / "views.py~"
    probe.write_text("")
    probe.unlink()
    os.replace(views, backup)
    views.write_text("TEXT = 'new'\n")
    backup.unlink()
    pending = routed(
        registration,
        FileCreatedEvent(str(probe)),
        FileClosedEvent(str(probe)),
        FileDeletedEvent(str(probe)),
        FileMovedEvent(str(views), str(backup)),
        FileCreatedEvent(str(views)),
        FileModifiedEvent(str(views)),
        FileClosedEvent(str(views)),
        FileDeletedEvent(str(backup)),
    )
    assert pending == {str(views)}
    assert registration.changes.take().paths == {str(views)}


SUB_A, SUB_B = f"{PROJECT}/sub/a.py", f"{PROJECT}/sub/deeper/b.py"
SIBLING, TOP = f"{PROJECT}/sub_other/c.py", f"{PROJECT}/top.py"
DIRECTORY_EVENTS = [
    ("deleted", DirDeletedEvent(f"{PROJECT}/sub")),
    ("moved-away", DirMovedEvent(f"{PROJECT}/sub", f"{PROJECT}/sub.bak")),
    ("moved-back", DirMovedEvent(f"{PROJECT}/sub.new", f"{PROJECT}/sub")),
    ("recreated", DirCreatedEvent(f"{PROJECT}/sub")),
]


@pytest.mark.parametrize(
    "event", [e for _, e in DIRECTORY_EVENTS], ids=[i for i, _ in DIRECTORY_EVENTS]
)
def test_a_directory_event_records_the_known_files_below_it(event: FileSystemEvent) -> None:
    """`git checkout` removing or renaming a package directory counts for every module in it."""
    registration = module_registration(SUB_A, SUB_B, SIBLING, TOP)
    assert routed(registration, event) == {SUB_A, SUB_B}


# --- real observers --------------------------------------------------------------------------


def started_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before]


def test_a_real_observer_reports_a_saved_file(tmp_path: Path, until: Until) -> None:
    """Saving a module is seen within moments; stopping the watcher leaves no thread behind."""
    root = tmp_path.resolve()
    views = root / "views.py"
    views.write_text("TEXT = 'old'\n")
    registration = module_registration(str(views))
    registration.roots = {str(root): False}
    before, count = set(threading.enumerate()), threading.active_count()
    watcher = Watcher()
    watcher.register(str(root / "app.wsgi"), registration)
    watcher.start()
    try:
        watcher.start()  # idempotent: no second set of threads
        assert watcher.backends == ["native"]
        assert watcher.directories == {str(root): False}
        threads = started_threads(before)
        assert threads and all(t.daemon for t in threads)
        views.write_text("TEXT = 'new!'\n")
        until(lambda: str(views) in registration.changes.pending)
        assert registration.changes.take().paths == {str(views)}
    finally:
        watcher.stop()
    assert threading.active_count() == count


def test_the_polling_backend_reports_a_saved_file(tmp_path: Path, until: Until) -> None:
    """observer=polling (network filesystems) still sees a save, on its interval."""
    root = tmp_path.resolve()
    views = root / "views.py"
    views.write_text("TEXT = 'old'\n")
    registration = module_registration(str(views))
    registration.roots, registration.polling = {str(root): False}, True
    count = threading.active_count()
    watcher = Watcher(interval=0.05)
    watcher.register(str(root / "app.wsgi"), registration)
    watcher.start()
    try:
        assert watcher.backends == ["polling"]
        views.write_text("TEXT = 'new!'\n")
        until(lambda: str(views) in registration.changes.pending)
    finally:
        watcher.stop()
    assert threading.active_count() == count


def test_releasing_a_registration_drops_watches_nobody_else_needs(tmp_path: Path) -> None:
    """A released middleware's directories stop being watched unless another one needs them."""
    shared, own = tmp_path.resolve() / "shared", tmp_path.resolve() / "own"
    shared.mkdir()
    own.mkdir()
    first, second = module_registration(), module_registration()
    first.roots = {str(shared): True, str(own): False}
    second.roots = {str(shared): True}
    watcher = Watcher()
    watcher.start()
    try:
        watcher.register("first.wsgi", first)
        watcher.register("second.wsgi", second)
        assert watcher.directories == {str(shared): True, str(own): False}
        watcher.release("first.wsgi")
        assert watcher.directories == {str(shared): True}
        watcher.release("second.wsgi")
        assert watcher.directories == {}
    finally:
        watcher.stop()


class NoWatchesLeft(PollingObserver):
    """A native observer whose kernel refuses another watch (or inotify instance)."""

    code = errno.ENOSPC

    def schedule(
        self,
        event_handler: FileSystemEventHandler,
        path: str | Path,
        *,
        recursive: bool = False,
        event_filter: list[type[FileSystemEvent]] | None = None,
        follow_symlink: bool = False,
    ) -> ObservedWatch:
        raise OSError(self.code, os.strerror(self.code))


class NoInstancesLeft(NoWatchesLeft):
    code = errno.EMFILE


@pytest.mark.parametrize(
    ("native", "setting"),
    [
        (NoWatchesLeft, "fs.inotify.max_user_watches"),
        (NoInstancesLeft, "fs.inotify.max_user_instances"),
    ],
    ids=["ENOSPC-watches", "EMFILE-instances"],
)
def test_an_inotify_limit_falls_back_to_polling_and_says_which(
    native: type[BaseObserver],
    setting: str,
    tmp_path: Path,
    until: Until,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the inotify limits changes are still seen, and the log says which sysctl to raise."""
    caplog.set_level(logging.INFO, logger="reload_middleware")
    root = tmp_path.resolve()
    views = root / "views.py"
    views.write_text("TEXT = 'old'\n")
    registration = module_registration(str(views))
    registration.roots = {str(root): False}
    count = threading.active_count()
    watcher = Watcher(native=native, polling=lambda interval: PollingObserver(timeout=0.05))
    watcher.register(str(root / "app.wsgi"), registration)
    watcher.start()
    try:
        assert watcher.backends == ["polling"]
        lines = [r.getMessage() for r in caplog.records if setting in r.getMessage()]
        assert len(lines) == 1
        assert str(root) in lines[0]
        views.write_text("TEXT = 'new!'\n")
        until(lambda: str(views) in registration.changes.pending)
    finally:
        watcher.stop()
    assert threading.active_count() == count


def test_a_dead_polling_thread_is_healed(
    tmp_path: Path, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The polling emitter thread dying alone raises the flag; heal() polls again."""
    root = tmp_path.resolve()
    registration = module_registration(str(root / "views.py"))
    registration.roots, registration.polling = {str(root): False}, True
    registration.dirs = (str(root),)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    watcher = Watcher(interval=0.02)
    watcher.register(str(root / "app.wsgi"), registration)
    watcher.start()
    try:
        changes = registration.changes
        changes.finish(changes.take(), acted=False)  # the flag down, as after a quiet request
        assert not changes.dirty
        (observer,) = watcher._observers.values()
        (emitter,) = observer.emitters

        def fail(timeout: float) -> None:
            raise OverflowError("timeout value is too large")

        emitter.queue_events = fail  # type: ignore[method-assign]
        until(lambda: not emitter.is_alive())
        until(lambda: changes.dirty)
        assert observer.is_alive()  # only the emitter died: the observer thread cannot tell
        assert watcher.heal() and watcher.backends == ["polling"]
        (root / "new.py").write_text("X = 1\n")
        until(lambda: str(root / "new.py") in changes.pending)
    finally:
        watcher.stop()


# --- atomic saves without watchdog's half-second pause ----------------------------------


def test_a_paired_move_is_handed_on_at_once_where_watchdogs_queue_sleeps() -> None:
    """The first half of a rename is queued, the reader looks, then the pair is queued
    (watchdog's order when its reader runs in between): the pair comes at once, where
    watchdog's own queue hands it on only after its 0.5 s delay."""
    from watchdog.utils.delayed_queue import DelayedQueue

    def handed_on(queue: DelayedQueue[str]) -> float:
        queue.put("moved-from", delay=True)
        got: list[float] = []

        def read() -> None:
            assert queue.get() == "moved"
            got.append(time.monotonic())

        reader = threading.Thread(target=read)
        reader.start()
        threading.Event().wait(0.05)  # the reader found the first half alone
        assert queue.remove(lambda item: item == "moved-from") == "moved-from"
        paired = time.monotonic()
        queue.put("moved")
        reader.join(2.0)
        return got[0] - paired

    assert handed_on(DelayedQueue(0.5)) > 0.3  # watchdog's queue: the pause this avoids
    assert handed_on(observers.PromptQueue(0.5)) < 0.1


def test_an_unpaired_move_still_waits_for_its_pair() -> None:
    """A first half with no second is handed on after the delay, as watchdog does."""
    queue = observers.PromptQueue[str](0.2)
    queue.put("moved-from", delay=True)
    began = time.monotonic()
    assert queue.get() == "moved-from"
    assert time.monotonic() - began >= 0.19
    queue.close()
    assert queue.get() is None


def test_the_watchers_inotify_emitters_read_through_the_prompt_queue(
    tmp_path: Path, until: Until
) -> None:
    """What the watcher starts really uses it: a watchdog that builds its emitters
    otherwise fails this test rather than slowing atomic saves again."""
    root = tmp_path.resolve()
    (root / "views.py").write_text("TEXT = 'old'\n")
    registration = module_registration(str(root / "views.py"))
    registration.roots = {str(root): False}
    watcher = Watcher()
    watcher.register(str(root / "app.wsgi"), registration)
    watcher.start()
    try:
        if observers.native_backend() != "InotifyObserver":
            pytest.skip("inotify only")
        emitters = [e for o in watcher._observers.values() for e in o.emitters]
        assert emitters

        def queue(emitter: object) -> object:  # set up by the emitter's own thread
            group = getattr(emitter, "_inotify", None)
            return getattr(getattr(group, "_move_event_grouper", None), "_queue", None)

        until(lambda: all(queue(e) is not None for e in emitters))
        assert all(type(queue(e)) is observers.PromptQueue for e in emitters)
    finally:
        watcher.stop()
