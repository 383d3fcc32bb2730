"""The safety net: events are the fast path, never the only truth.

Whatever the event stream did (events lost in a kernel queue overflow, a watch dropped
with its directory, a file untracked by its deletion), every `PERIOD` seconds the net
raises each latch's flag with a doubt, and the first request after that looks at every
tracked file itself (`Tracking.start`). A report of lost events does the same at once.
The thread only raises flags, like the watcher thread: it never stats, imports or acts,
so with no traffic it costs one wake-up per period and nothing else (README, "The
promise").

    net = Net(doubt=lambda: [c.doubt() for c in latches])   # doctest: +SKIP
    net.start()                                             # doctest: +SKIP
    net.stop()                                              # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

# Seconds between two looks of the net. A change the events missed is served on the
# first request after the next look: within PERIOD of the save while requests arrive.
PERIOD = 5.0
# A file whose change is older than this when a look finds it was missed by the events
# (an event arrives within milliseconds of the write; a younger one may be on its way).
MISSED_AFTER_NS = 1_000_000_000


class Net:
    """A daemon thread that calls `doubt` every `period` seconds until stopped."""

    def __init__(self, doubt: Callable[[], None], period: float = PERIOD) -> None:
        self._doubt = doubt
        self.period = period
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="reload-middleware-net",
                                            daemon=True)  # see watcher.py: mod_wsgi restarts
            self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join()

    def forget(self) -> None:
        """After a fork: the thread stayed in the parent."""
        self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self.period):
            self._doubt()


def missed(path: str, now: Callable[[], int] = time.time_ns) -> bool:
    """Whether a change found by a look is older than any event still on its way (a
    deleted file: yes, its deletion is not timed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return True
    return now() - max(st.st_mtime_ns, st.st_ctime_ns) >= MISSED_AFTER_NS
