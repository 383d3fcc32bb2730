"""Which beacons does this interpreter hold? Live reload's, for the server's shutdown.

Held by the interpreter's state (interpreter.py) whether live reload is on or not, so
it imports nothing of live reload itself: that is loaded only where it is on.

>>> Beacons().release()  # none yet: nothing to answer
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .browser import Beacon


class Beacons:
    """The beacons of one interpreter, and the server asked to say when it stops it.

    mod_wsgi stops a process for reasons of its own (Apache stopping, `maximum-requests`,
    its own script reloading) and waits for the requests in it: the waiting events
    requests must answer at once. The first beacon asks it to say so, once per
    interpreter state (interpreter.py holds this object). A middleware makes its beacon
    only when live reload is on: with it off, nothing is asked.

        beacon = interpreter.current().beacons.add(Beacon(changes))
    """

    def __init__(self) -> None:
        self._beacons: weakref.WeakSet[Beacon] = weakref.WeakSet()
        self._subscribed: list[object] = []  # the server module asked: any object, hashed or not
        self._lock = threading.Lock()

    def add(self, beacon: Beacon, modules: Mapping[str, object] = sys.modules) -> Beacon:
        """Release `beacon` too when the server stops the process; returns it."""
        self._beacons.add(beacon)
        self._subscribe(modules)
        return beacon

    def release(self, *args: object, **kwargs: object) -> None:
        """mod_wsgi's shutdown: answer the waiting requests before it waits for them."""
        for beacon in list(self._beacons):
            beacon.release()

    def _subscribe(self, modules: Mapping[str, object]) -> None:
        """Ask mod_wsgi, once, to say when it stops this process for any reason."""
        mod_wsgi = modules.get("mod_wsgi")
        subscribe = getattr(mod_wsgi, "subscribe_shutdown", None)
        with self._lock:
            if subscribe is None or mod_wsgi in self._subscribed:
                return
            self._subscribed.append(mod_wsgi)
        subscribe(self.release)
