"""The safety net: events are the fast path, never the only truth.

Whatever the event stream did (events lost in a kernel queue overflow, a watch dropped
with its directory, a file untracked by its deletion), `PERIOD` seconds after its last look
the net raises each latch's flag with a doubt, and the first request after that looks at
every tracked file itself (`Tracking.start`). A report of lost events does the same at
once. The thread only raises flags, like the watcher thread: it never stats, imports or
acts, and with no traffic it sleeps after one doubt until a request has looked (docs/promise.md,
"Holes heal").

    net = Net(doubt=lambda: [c.doubt() for c in latches])   # doctest: +SKIP
    net.start()                                             # doctest: +SKIP
    net.stop()                                              # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable

# Seconds between two looks of the net. A change the events missed is served on the
# first request after the next look: within PERIOD of the save while requests arrive.
PERIOD = 5.0


class Net:
    """A daemon thread that calls `doubt` `period` seconds after the last look, until
    stopped. A doubt no request has looked at yet is not raised again: with no traffic
    the thread sleeps until a request comes (`looked()`)."""

    def __init__(self, doubt: Callable[[], None], period: float = PERIOD) -> None:
        self._doubt = doubt
        self.period = period
        self._stopping = threading.Event()
        self._looked = threading.Event()
        self._thread: threading.Thread | None = None

    def looked(self) -> None:
        """A request has looked at every file: the next period starts."""
        self._looked.set()

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
            self._looked.set()
            thread.join()

    def forget(self) -> None:
        """After a fork: the thread stayed in the parent."""
        self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self.period):
            self._looked.clear()
            self._doubt()
            self._looked.wait()

