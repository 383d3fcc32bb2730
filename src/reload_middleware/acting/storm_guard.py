"""Restart storms: a file the application writes as it loads would restart it forever.

The loop: an action (a restart, an in-process reload) loads the application, which
writes a file it also watches (a log, a SQLite database, a file it generates) at its
start or on its first request; that write is a change, the next request acts again, and
so on. A person saving a file again soon after each action looks alike from afar, so a
change counts as a *return* of the file only when all of this holds:

1. it is another save: a save is known by the file's state (mtime, size, inode) and
   counts once, however many processes act on it;
2. the file changed inside a *loading window* that began within `quick` seconds after
   the previous action on it: from a restarted process's start to the end of its first
   request, or from an in-process reload's start to the end of the request it served.
   Each process looks when its window ends (`loaded()`). A person's save lands in
   one only by chance;
3. for a file people edit (code, templates, markup, stylesheets, configuration, text,
   anything in a template directory: `edited()`), its content is the same as at the
   previous action, or that content with more appended. A person's edit changes the
   text otherwise, so their saves never count, however often they come (text typed at
   the end of a file must also land in a window each time); an application that writes
   such a file at every start writes it alike each time.

`limit` returns in a row are a storm: the path is reported once per process and ignored
until it has not changed for `quiet` seconds. What the actions and windows saw is kept
in a record shared by the processes of a script that survives restarts (storm_records.py);
each process reads it before it acts (`recall()`), so one restarted into a storm
ignores the file at once instead of restarting again.
Python modules are never counted, nor the control stamp and the trigger (tracking.py):
an app does not rewrite its own code, and those are touched on purpose.

>>> guard = StormGuard("/srv/app/app.wsgi")                     # doctest: +SKIP
>>> guard.acted({"/srv/app/data/app.log": state})  # path -> its Stat  # doctest: +SKIP
>>> guard.loaded([(started, first_request_done)])  # seconds, at a window's end  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from .. import file_reads, logs
from ..digest import sha256_hex
from ..operations import state_dir
from ..watching import paths
from ..watching.file_state import Stat
from . import storm_records
from .storm_records import Entry, Record

MAX_CONTENT = file_reads.LIMIT  # a file people edit is smaller; a larger one is never a return
# Suffixes of files people edit; a file under a directory named like these is one too.
EDITED = frozenset({
    ".py", ".pyi", ".html", ".htm", ".xhtml", ".xml", ".svg", ".txt", ".md", ".rst",
    ".jinja", ".jinja2", ".j2", ".mako", ".tmpl", ".tpl", ".pt", ".hbs", ".mustache",
    ".pug", ".jade", ".css", ".scss", ".sass", ".less", ".js", ".mjs", ".ts", ".jsx",
    ".tsx", ".vue", ".ini", ".cfg", ".conf", ".toml", ".yaml", ".yml", ".env", ".po",
})
TEMPLATE_DIRS = frozenset({"templates", "template", "jinja2"})

DATA_ADVICE = (
    "%s changed again right after each of the last %d actions, while the application was "
    "loading: the application itself seems to write it. It is ignored until it has not "
    "changed for %g s; if the application writes it, exclude it (exclude='%s')"
)
EDITED_ADVICE = (
    "%s changed again right after each of the last %d actions, while the application was "
    "loading, each time with the same content or only added to: the application itself "
    "seems to write it. It is ignored until it has not changed for %g s; have the "
    "application write it only when its content changes, or outside the watched "
    "directories (excluding it would stop its reloads)"
)


def edited(path: str, templates: Iterable[str] = ()) -> bool:
    """Whether people edit this file: its content decides (3. above), and the log never
    advises to exclude it.

    >>> edited("/srv/app/templates/page.html"), edited("/srv/app/data/app.db")
    (True, False)
    >>> edited("/srv/app/views/cache.json", ["/srv/app/views"])
    True
    """
    name = os.path.basename(path)
    if os.path.splitext(name)[1].lower() in EDITED or name.lower() in EDITED:
        return True
    parts = os.path.dirname(path).split(os.sep)
    return paths.under(path, templates) or not TEMPLATE_DIRS.isdisjoint(parts)


def content(path: str, limit: int = MAX_CONTENT) -> bytes | None:
    """The bytes of a regular file of at most `limit` bytes, else None (never waits on a
    FIFO). A symlinked file is read at its target: only its digest is kept."""
    try:
        return file_reads.read(path, limit, follow=True)
    except OSError:
        return None


class StormGuard:
    """Counts, per path and across restarts, the returns of files right after actions."""

    def __init__(
        self,
        key: str,
        *,
        limit: int = 5,
        quick: float = 2.0,
        quiet: float = 60.0,
        state: state_dir.StateDir | None = None,
        clock: Callable[[], float] = time.time,
        read: Callable[[str], bytes | None] = content,
    ) -> None:
        self.name = f"storms-{sha256_hex(key.encode())[:16]}.json"
        self._store = storm_records.Store(self.name, state or state_dir.default(), clock)
        self._limit, self._quick, self._quiet, self._clock = limit, quick, quiet, clock
        self._read = read
        # Read by the watcher thread (membership only), changed by request threads.
        self.ignored: set[str] = set()

    def acted(self, changed: Mapping[str, Stat], *, since: float | None = None,
              templates: Sequence[str] = ()) -> None:
        """Note an action caused by `changed` ({path: its state as confirmed}) that began
        at `since` (default: now); ignore the paths that keep returning. `templates`: the
        template directories (their files are `edited()`)."""
        saves = {p: s for p, s in changed.items() if s is not None}
        if not saves:
            return  # modules alone (tracking.py): nothing to note
        when = self._clock() if since is None else since
        kinds = {p: edited(p, templates) for p in saves}
        data = {p: self._read(p) for p in saves if kinds[p]}  # outside the record's lock

        def note(record: Record) -> bool:
            for path, state in saves.items():
                entry = record.setdefault(path, Entry())
                entry.edited = kinds[path]
                storm_records.act_on(entry, (state[0], state[1], state[2]), when, data.get(path))
            return True

        record = self._store.update(note)
        for path in saves:
            self._judge(path, record.get(path))

    def loaded(self, windows: Sequence[tuple[float, float]],
               stat: Callable[[str], os.stat_result] = os.stat) -> None:
        """At the end of a loading window of this process (wall-clock seconds: its start
        to the end of its first request, or an in-process reload to the end of the
        request it served): note the files acted on just before that changed in it."""
        around = storm_records.near(self._store.read(), windows, self._quick)
        seen = {p: t for p in around if (t := changed_at(p, stat)) is not None}
        writes = {p: (start, t) for p, t in seen.items()
                  if (start := storm_records.window_of(t, windows)) is not None}
        if writes:  # the returns they complete may be a storm now (acts can come first)
            record = self._store.update(lambda record: storm_records.add_writes(record, writes))
            for path in writes:
                self._judge(path, record.get(path))

    def recall(self) -> None:
        """Ignore the paths the record shows storming now, before this process acts on
        them: another process found them so, or this one's predecessor, whose restart
        was decided as it did."""
        now = self._clock()
        for path, entry in self._store.read().items():
            if entry.acts and now - entry.acts[-1].when < self._quiet:
                self._judge(path, entry)

    def release_quiet(self, stat: Callable[[str], os.stat_result] = os.stat) -> set[str]:
        """Stop ignoring paths untouched for `quiet` seconds; returns them."""
        quiet = set()
        for path in list(self.ignored):
            try:
                age = self._clock() - stat(path).st_mtime
            except OSError:
                age = self._quiet
            if age >= self._quiet:
                quiet.add(path)
        self.ignored -= quiet
        return quiet

    def _judge(self, path: str, entry: Entry | None) -> None:
        """Ignore `path` (said once) when its last `limit` actions were returns."""
        if entry is None or path in self.ignored:
            return
        count = storm_records.returns(entry, self._quick)
        if count < self._limit:
            return
        self.ignored.add(path)
        if entry.edited:
            logs.error(EDITED_ADVICE, path, count, self._quiet)
        else:
            logs.error(DATA_ADVICE, path, count, self._quiet, os.path.basename(path))


def changed_at(path: str, stat: Callable[[str], os.stat_result] = os.stat) -> float | None:
    """When the file last changed (the later of mtime and ctime, seconds), or None."""
    try:
        info = stat(path)
    except OSError:
        return None
    return max(info.st_mtime_ns, info.st_ctime_ns) / 1e9
