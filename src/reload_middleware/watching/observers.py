"""The observer threads: which events count, an observer that reports its death, and
inotify emitters that hand on an atomic save without waiting.

>>> from watchdog.events import FileOpenedEvent
>>> FileModifiedEvent in COUNTED, FileOpenedEvent in COUNTED
(True, False)
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

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
from watchdog.utils.delayed_queue import DelayedQueue

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


T = TypeVar("T")


class PromptQueue(DelayedQueue[T]):
    """watchdog's queue of inotify events, read without oversleeping.

    watchdog holds a rename's IN_MOVED_FROM for up to 0.5 s to pair it with its
    IN_MOVED_TO. The kernel queues both at once, but they enter this queue one after
    the other, and watchdog's reader, when it looks in between, sleeps the whole 0.5 s
    before it looks again: the paired event, ready a moment later, waits behind it.
    About 1 atomic save in 300 then reached us 0.5 s late. This reader waits on the
    queue's condition instead, so the pair is handed on as soon as it is queued, and a
    move with no pair after the delay as before.

        >>> queue = PromptQueue[str](0.5)
        >>> queue.put("moved-from", delay=True)
        >>> queue.remove(lambda item: item == "moved-from")   # paired, as watchdog does
        'moved-from'
        >>> queue.put("moved"); queue.get()                   # at once, not 0.5 s later
        'moved'
    """

    def get(self) -> T | None:
        with self._not_empty:
            while True:
                while not self._queue and not self._closed:
                    self._not_empty.wait()
                if self._closed:
                    return None
                head, queued, delayed = self._queue[0]
                left = queued + self.delay - time.monotonic() if delayed else 0.0
                if left <= 0:
                    self._queue.popleft()
                    return head
                self._not_empty.wait(left)  # a put (the pair) wakes it


def pair_moves_promptly(observer: BaseObserver) -> None:
    """Make each inotify emitter `observer` creates read its events through PromptQueue.

    The queue object is kept (its class is switched as the emitter's thread starts,
    before anything reads it), so no event queued meanwhile is lost. Other backends,
    and a watchdog whose emitter is built otherwise, are left as they are.
    """
    base = getattr(observer, "_emitter_class", None)
    if not isinstance(base, type) or not issubclass(base, EventEmitter):
        return

    class Prompt(base):  # type: ignore[valid-type,misc]
        def on_thread_start(self) -> None:
            super().on_thread_start()
            queue: Any = getattr(getattr(getattr(self, "_inotify", None),
                                         "_move_event_grouper", None), "_queue", None)
            if type(queue) is DelayedQueue:
                queue.__class__ = PromptQueue

    observer._emitter_class = Prompt


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
