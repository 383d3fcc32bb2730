"""The observer threads: which events count, and an observer that reports its death.

>>> from watchdog.events import FileOpenedEvent
>>> FileModifiedEvent in COUNTED, FileOpenedEvent in COUNTED
(True, False)
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, EventEmitter

from .changes import ATTRIB, UNKNOWN, WRITE, WRITTEN

# The events that can mean new code. Not opened/closed-without-write (every import
# reads files, so each process would restart the others) and not directory-modified
# (a directory's mtime changes whenever anything is created in it, temp files too).
COUNTED: tuple[type[FileSystemEvent], ...] = (
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,  # touch: how people force a restart
    FileMovedEvent,  # atomic saves: the destination is the real file
    FileDeletedEvent,
    FileClosedEvent,  # close after write: the file is complete
    DirCreatedEvent,  # git checkout recreating a directory
    DirDeletedEvent,
    DirMovedEvent,
)

def kind(event: FileSystemEvent, *, closes: bool) -> str:
    """What `event` says of its file's content (changes.py: WRITE, WRITTEN, ATTRIB or
    UNKNOWN); `closes`: the backend reports closes after writing (inotify), so a write
    without its close means a writer still at work.

    >>> kind(FileModifiedEvent("/srv/app/views.py"), closes=True)
    'write'
    >>> kind(FileAttribEvent("/srv/app/views.py"), closes=False)
    'attrib'
    """
    if isinstance(event, FileAttribEvent):
        return ATTRIB
    if not closes or event.is_directory or event.is_synthetic:
        return UNKNOWN  # synthetic: found in a directory just watched, written before
    if isinstance(event, FileModifiedEvent):
        return WRITE  # not a creation: a recursive watch reports the files it finds in a
        # directory it starts watching as created, though their writers closed long since
    done = isinstance(event, FileClosedEvent | FileMovedEvent | FileDeletedEvent)
    return WRITTEN if done else UNKNOWN


# What the observers are asked for: the counted events, and the report of events lost
# (a watch scheduled with a filter is told of an overflow only if the filter lists it),
# which starts the safety net (safety_net.py).
FILTER: list[type[FileSystemEvent]] = [*COUNTED, EventsLostEvent]

LIMIT_ADVICE = {
    errno.ENOSPC: "the inotify watch limit (raise it: sysctl fs.inotify.max_user_watches=524288)",
    errno.EMFILE: "the inotify instance limit (raise it: sysctl fs.inotify.max_user_instances=512)",
}


def report_deaths(observer: BaseObserver, died: Callable[[], None]) -> None:
    """Make `observer`, and each emitter it creates, call `died` if its thread ends
    unasked (before `start()`)."""
    run = observer.run

    def run_and_report() -> None:
        try:
            run()
        finally:
            if not observer.stopped_event.is_set():
                died()

    observer.run = run_and_report  # type: ignore[method-assign]
    base = getattr(observer, "_emitter_class", None)  # absent in test doubles
    if not isinstance(base, type) or not issubclass(base, EventEmitter):
        return

    class Reporting(base):  # type: ignore[valid-type,misc]
        def run(self) -> None:
            try:
                super().run()
            finally:
                if not self.stopped_event.is_set():
                    died()

    observer._emitter_class = Reporting


def alive(observer: BaseObserver) -> bool:
    """The observer thread and every emitter thread it started are running.

    A polling observer's thread only dispatches: the emitter thread that takes the
    snapshots can die on its own (an error in a snapshot) and nothing else would show it.
    """
    return observer.is_alive() and all(e.is_alive() for e in observer.emitters)


def native_backend() -> str:
    """The observer class watchdog picks for native events here (InotifyObserver on Linux)."""
    return str(getattr(Observer, "__name__", Observer))  # typed by watchdog as a protocol


def read(path: str) -> str:
    """A /proc file as text, or "" where there is none."""
    try:
        with open(path, "rb") as source:
            return os.fsdecode(source.read())  # mount points are bytes, in no set encoding
    except OSError:
        return ""  # no mount table (not Linux): native events everywhere
