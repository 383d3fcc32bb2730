"""Are changes still coming? Bursts of changes, and when one is a storm.

A save is one change, or a few files at once; a person saves again after a pause. A
tool touching or rewriting file after file for seconds never pauses: acting on each of
its changes restarts a daemon again and again (under mod_wsgi each restart hands the
same request to the next process, until mod_wsgi gives up with a 503 after five). A
storm is told from the files' own times, so a process that started in the middle of one
knows it too.

    >>> ms = 10**6
    >>> storming([n * 100 * ms for n in range(20)], 1900 * ms)
    True
    >>> storming([0, 400 * ms, 800 * ms, 1200 * ms, 1600 * ms, 2000 * ms], 2000 * ms)
    False
"""

from __future__ import annotations

from collections.abc import Iterable

SECOND = 1_000_000_000
# A storm ends after this long without a change (people pause longer between saves);
# while it lasts actions wait, for HOLD at most (a file written nonstop: the storm guard
# takes it from there).
CALM = 0.25
HOLD = 30.0
# A storm: this many changes or more, spread over this long or more, with no CALM pause.
# Files changed within TOGETHER of each other are one change (a save of several files).
STORM_CHANGES = 10
STORM_SPAN = 1.5
TOGETHER = 0.05
# A file written to and not closed yet (a slow copy, an upload, a sync tool) is not
# settled: actions wait for its close-after-write, this long at most from its first write,
# then take it as it is. Only inotify reports closes; elsewhere quiet alone settles.
CLOSE_WAIT = 2.0
# A path with more events than this in one burst is written nonstop (a log, a database):
# it no longer keeps the tree from being quiet. A save is a handful of events per file.
BUSY_PATH = 10


def run_ending_now(times: Iterable[int], now: int) -> tuple[float, int]:
    """(seconds spanned, changes) of the run of change times (wall-clock ns) that reaches
    up to `now` with no gap of CALM or more; (0, 0) when the last change is older."""
    span, count, later = 0.0, 0, now
    for moment in sorted((t for t in times if t <= now), reverse=True):
        gap = (later - moment) / SECOND
        if gap >= CALM:
            break
        if count == 0 or gap >= TOGETHER:
            count += 1
        span = (now - moment) / SECOND
        later = moment
    return (span, count) if count else (0.0, 0)


def storming(times: Iterable[int], now: int) -> bool:
    """Whether the changes at these times (wall-clock ns) are a storm going on now."""
    span, count = run_ending_now(times, now)
    return span >= STORM_SPAN and count >= STORM_CHANGES
