"""The storm guard's record: what the actions and loading windows of a script saw.

One JSON file per script in the private state directory (state_dir.py), shared by the
script's processes and kept across restarts; read, changed and replaced under the
directory's lock, so processes that act together lose nothing. In memory where there is
no directory. For each path, the saves acted on and when the first action on each
began, and the changes seen inside loading windows (storm_guard.py says what counts):

    {"/srv/app/data/app.db": {"acts": [[mtime_ns, size, inode, when, digest, repeat]],
                              "writes": [[window_start, changed]], "edited": false}}

>>> entry = Entry(edited=True)
>>> act_on(entry, (1, 5, 7), 100.0, b"hello")
>>> act_on(entry, (2, 11, 7), 102.0, b"hello world")  # appended to
>>> entry.writes.append((100.5, 100.7))  # changed at 100.7 in a window begun at 100.5
>>> returns(entry, quick=2.0)
1
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .. import logs
from ..digest import sha256_hex
from ..operations import state_dir
from ..watching import read_times

MAX_BYTES = 1024 * 1024  # far above any real record: paths acted on in the last minute
MAX_PATHS = 256
MAX_ACTS = 12  # at least the storm limit and one: returns are counted between acts
MAX_WRITES = 24
SKEW = 5.0  # seconds: a record written "later than now" by this clock is no record of ours
SLACK = read_times.TICK_NS / 1e9  # file times may lag the clock by a tick
HEX = re.compile("[0-9a-f]{0,64}")


@dataclass
class Act:
    """An action on one save of a file: its (mtime_ns, size, inode), when the first
    action on it began (seconds), its content's digest ("" when not read) and whether
    that content repeats the previous save's (the same, or more appended)."""

    key: tuple[int, int, int]
    when: float
    digest: str = ""
    repeat: bool = False


@dataclass
class Entry:
    """One path: its acts, oldest first, its writes (window start, change time), and
    whether people edit it (the content decides, storm_guard.py)."""

    acts: list[Act] = field(default_factory=list)
    writes: list[tuple[float, float]] = field(default_factory=list)
    edited: bool = False


Record = dict[str, Entry]


def digest(data: bytes) -> str:
    return sha256_hex(data)[:32]


def act_on(entry: Entry, key: tuple[int, int, int], when: float, data: bytes | None) -> None:
    """Note an action on the save `key` begun at `when`, its content `data` if read. A
    save acted on before (by any process) keeps its one act."""
    for act in entry.acts:
        if act.key == key:
            act.when = min(act.when, when)
            return
    previous = entry.acts[-1] if entry.acts else None
    read = data is not None and len(data) == key[1]  # else the file changed meanwhile
    entry.acts.append(Act(key, when, digest(data) if read and data is not None else "",
                          previous is not None and read and repeats(previous, data)))
    entry.acts.sort(key=lambda act: act.when)
    del entry.acts[:-MAX_ACTS]


def repeats(before: Act, data: bytes | None) -> bool:
    """Whether `data` is the content of `before`, or that content with more appended."""
    size = before.key[1]
    return (data is not None and bool(before.digest) and len(data) >= size
            and digest(data[:size]) == before.digest)


def returns(entry: Entry, quick: float) -> int:
    """How many of the latest acts in a row followed a return of the file: a write in a
    loading window begun within `quick` s after the act before (and for a file people
    edit, a save that repeats the one before)."""
    count = 0
    for before, after in zip(entry.acts[-2::-1], entry.acts[:0:-1], strict=True):
        if not returned(entry.writes, before.when, quick) or (
                entry.edited and not after.repeat):
            break
        count += 1
    return count


def returned(writes: Sequence[tuple[float, float]], when: float, quick: float) -> bool:
    return any(when - SLACK <= start < when + quick and changed >= when - SLACK
               for start, changed in writes)


def near(record: Record, windows: Sequence[tuple[float, float]], quick: float) -> list[str]:
    """The paths with an act shortly (`quick`) before one of these windows began."""
    return [p for p, e in record.items() if any(
        a.when - SLACK <= start < a.when + quick for a in e.acts for start, _ in windows)]


def window_of(moment: float, windows: Sequence[tuple[float, float]]) -> float | None:
    """The start of a window that holds `moment`, or None."""
    return next((s for s, e in windows if s - SLACK <= moment <= e + SLACK), None)


def add_writes(record: Record, writes: Mapping[str, tuple[float, float]]) -> bool:
    """Note changes seen in loading windows; False when every one was known already."""
    added = False
    for path, write in writes.items():
        entry = record.get(path)
        if entry is not None and write not in entry.writes:
            entry.writes = [*entry.writes, write][-MAX_WRITES:]
            added = True
    return added


class Store:
    """The record of one script: in the state directory, else in this process's memory."""

    def __init__(self, name: str, state: state_dir.StateDir, clock: Callable[[], float],
                 keep: float = 60.0) -> None:
        self.name, self._state, self._clock, self._keep = name, state, clock, keep
        self._memory = b"{}"  # the record itself where no directory is usable

    def read(self) -> Record:
        """The record as it is now (no lock: for a look only)."""
        with self._state.opened() as fd:
            return self._load(fd)[0]

    def update(self, change: Callable[[Record], bool]) -> Record:
        """Apply `change` (True: it changed something) to the record and save it, with no
        other process of ours in between; returns the record as saved."""
        with self._state.opened() as fd, state_dir.locked(fd):
            record, sound = self._load(fd)
            if change(record) or not sound:
                record = prune(record, self._clock() - self._keep)
                self._save(fd, encode(record))
        return record

    def _load(self, fd: int | None) -> tuple[Record, bool]:
        """(the record, whether it was sound: a discarded one is replaced)."""
        data = self._memory if fd is None else state_dir.read(fd, self.name, MAX_BYTES)
        if data is None:
            return {}, True
        try:
            return decode(json.loads(data), self._clock() + SKEW), True
        except (ValueError, TypeError, AttributeError) as exc:
            logs.error("storm record %s discarded: %s", self.name, exc)
            return {}, False

    def _save(self, fd: int | None, data: bytes) -> None:
        """Replace the record; one that cannot be written only weakens the guard."""
        self._memory = data
        if fd is not None:
            with contextlib.suppress(OSError):
                state_dir.write(fd, self.name, data)


def prune(record: Record, before: float) -> Record:
    """The entries with anything later than `before`, the latest MAX_PATHS of them."""
    def latest(entry: Entry) -> float:
        return max([a.when for a in entry.acts] + [w[1] for w in entry.writes] + [-1.0])

    kept = sorted((p for p, e in record.items() if latest(e) >= before),
                  key=lambda p: latest(record[p]))
    return {p: record[p] for p in kept[-MAX_PATHS:]}


def encode(record: Record) -> bytes:
    return json.dumps({
        path: {"acts": [[*a.key, a.when, a.digest, a.repeat] for a in entry.acts],
               "writes": [list(w) for w in entry.writes], "edited": entry.edited}
        for path, entry in record.items()
    }).encode()


def decode(data: object, latest: float) -> Record:
    """A record read back, checked: ValueError (or TypeError) for anything else.

    >>> entry = {"acts": [[1, 2, 3, 1.5, "", False]], "writes": [], "edited": False}
    >>> decode({"/a": entry}, 10.0)["/a"].acts
    [Act(key=(1, 2, 3), when=1.5, digest='', repeat=False)]
    >>> decode({"/a": {**entry, "writes": [[1e18, 1.0]]}}, 10.0)
    Traceback (most recent call last):
    ...
    ValueError: /a: time 1e+18 out of bounds
    """
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    return {path: _entry(path, value, latest) for path, value in data.items()}


def _entry(path: str, value: object, latest: float) -> Entry:
    if not isinstance(value, dict) or sorted(value) != ["acts", "edited", "writes"]:
        raise ValueError(f"{path}: not an entry")
    if not isinstance(value["edited"], bool):
        raise ValueError(f"{path}: not an entry")
    acts = _items(path, value["acts"], 6, MAX_ACTS)
    writes = _items(path, value["writes"], 2, MAX_WRITES)
    return Entry([_act(path, a, latest) for a in acts],
                 [(_time(path, s, latest), _time(path, t, latest + SKEW)) for s, t in writes],
                 value["edited"])


def _items(path: str, value: object, width: int, most: int) -> list[list[object]]:
    """`value` as a list of at most `most` lists of `width` items each."""
    if not isinstance(value, list) or len(value) > most:
        raise ValueError(f"{path}: not a list of at most {most}")
    if not all(isinstance(item, list) and len(item) == width for item in value):
        raise ValueError(f"{path}: not lists of {width}")
    return value


def _act(path: str, item: list[object], latest: float) -> Act:
    mtime, size, inode, when, text, repeat = item
    if not (isinstance(mtime, int) and isinstance(size, int) and isinstance(inode, int)) or any(
            isinstance(n, bool) or abs(n) >= 2**63 for n in (mtime, size, inode)):
        raise ValueError(f"{path}: state out of bounds")
    if not isinstance(text, str) or not HEX.fullmatch(text) or not isinstance(repeat, bool):
        raise ValueError(f"{path}: digest {text!r} or {repeat!r} not valid")
    return Act((mtime, size, inode), _time(path, when, latest), text, repeat)


def _time(path: str, value: object, latest: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= latest):
        raise ValueError(f"{path}: time {value!r} out of bounds")
    return float(value)
