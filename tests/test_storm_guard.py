"""Restart storms: a file the app writes as it loads must not reload it forever, and a
person's saves are never one."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import CONTROL, Project, Until, call, status
from reload_middleware.acting import storm_records
from reload_middleware.acting.storm_guard import StormGuard, edited
from reload_middleware.operations.state_dir import StateDir
from reload_middleware.watching.file_state import Stat
from reload_middleware.watching.watcher import Watcher

STORM = "seems to write it"
LOG = "/srv/app/data/app.log"
PAGE = "/srv/app/templates/page.html"


class Clock:
    """Wall-clock seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Disk:
    """Files as the guard sees them: content, and times from the clock at each save."""

    clock: Clock
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # content, mtime_ns

    def save(self, path: str, data: bytes) -> None:
        self.files[path] = (data, int(self.clock.now * 1e9))

    def append(self, path: str, data: bytes) -> None:
        self.save(path, self.files.get(path, (b"", 0))[0] + data)

    def state(self, path: str) -> Stat:
        data, mtime = self.files[path]
        return (mtime, len(data), 7, mtime, (0o100644, 0, 0, 1))

    def read(self, path: str) -> bytes | None:
        return self.files[path][0] if path in self.files else None

    def stat(self, path: str) -> os.stat_result:
        data, ns = self.files[path]
        seconds = ns / 1e9
        return os.stat_result((0o100644, 7, 1, 1, 0, 0, len(data), 0, int(seconds),
                               int(seconds), 0.0, seconds, seconds, 0, ns, ns))


class Site:
    """The processes of one script: one guard each, sharing the state directory, as a
    daemon group whose processes each act on their next request after a change."""

    def __init__(self, tmp_path: Path, processes: int) -> None:
        self.clock = Clock()
        self.disk = Disk(self.clock)
        state = StateDir([str(tmp_path / "state")])
        self.guards = [self.guard(state) for _ in range(processes)]
        self.windows: list[tuple[StormGuard, float, float]] = []  # (process, start, end)

    def guard(self, state: StateDir) -> StormGuard:
        return StormGuard("/srv/app/app.wsgi", state=state, clock=self.clock,
                          read=self.disk.read)

    def at(self, moment: float) -> None:
        """Move the clock; each loading window that has ended by then is looked at."""
        self.clock.now = moment
        for window in [w for w in self.windows if w[2] <= moment]:
            self.windows.remove(window)
            window[0].loaded([window[1:]], stat=self.disk.stat)

    def requests(self, path: str, first: float, load: float,
                 written: Callable[[int], None] | None = None) -> None:
        """From `first` on, each process in turn acts on `path` and restarts: its new
        process starts 0.6 s later and loads for `load` s, calling `written(n)` 0.1 s in."""
        acts = [first + 0.05 * n for n in range(len(self.guards))]
        for guard, moment in zip(self.guards, acts, strict=True):
            self.at(moment)
            guard.acted({path: self.disk.state(path)})
            self.windows.append((guard, moment + 0.6, moment + 0.6 + load))
        for n, moment in enumerate(acts):
            if written is not None:
                self.at(moment + 0.7)
                written(n)

    @property
    def ignored(self) -> set[str]:
        return set().union(*(g.ignored for g in self.guards))


def storm_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if STORM in r.getMessage()]


@pytest.mark.parametrize("processes", [2, 3, 4], ids=lambda n: f"{n}-processes")
def test_one_save_acted_on_by_several_processes_counts_once(
    tmp_path: Path, processes: int
) -> None:
    """An app that adds a line to its log as it starts, acted on by every process: each
    save is one return, so the fifth return, not the third, is the storm."""
    site = Site(tmp_path, processes)
    site.disk.save(LOG, b"started\n")
    start = site.clock.now
    for cycle in range(6):
        assert site.ignored == set(), f"a storm after {cycle} returns"
        site.requests(LOG, start + 2 * cycle, 0.3,
                      lambda n: site.disk.append(LOG, b"started\n") if n == 0 else None)
    assert site.ignored == {LOG}


def page(n: int) -> bytes:
    """A person's n-th save: words changed in the middle, as edits go."""
    return f"<main>\n  <h1>{'Draft' if n % 2 else 'Title'} {n}</h1>\n</main>\n".encode()


def settings(n: int) -> bytes:
    return f"[app]\nlevel = {n}\n".encode()


def typed(n: int) -> bytes:
    """Text typed at the end of a new file: each save adds to the one before."""
    return b"<p>" + b"word " * (n + 1)


QUICK, SPANNING = 0.2, 3.0  # loads done before the next save; loads every save lands in
PEOPLE = {
    "9 saves 1.8 s apart, template, quick loads": (PAGE, 9, 1.8, page, QUICK),
    "9 saves 1.8 s apart, template, each save while loading": (PAGE, 9, 1.8, page, SPANNING),
    "20 saves 1 s apart, template, quick loads": (PAGE, 20, 1.0, page, QUICK),
    "20 saves 1 s apart, template, each save while loading": (PAGE, 20, 1.0, page, SPANNING),
    "20 saves 0.5 s apart, configuration, each save while loading": (
        "/srv/app/config/settings.ini", 20, 0.5, settings, SPANNING),
    "20 saves 1 s apart, typed at the end, quick loads": (PAGE, 20, 1.0, typed, QUICK),
    "20 saves 1 s apart, data file, quick loads": ("/srv/app/data/prices.csv", 20, 1.0,
                                                   settings, QUICK),
}


@pytest.mark.parametrize(("path", "saves", "gap", "text", "load"), PEOPLE.values(),
                         ids=PEOPLE.keys())
def test_a_persons_saves_are_never_a_storm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, saves: int, gap: float,
    text: Callable[[int], bytes], load: float,
) -> None:
    """Saves with requests after each, acted on by two processes: never a storm. When
    every save lands while a restarted process loads, the content decides: an edit does
    not repeat the text before it."""
    site = Site(tmp_path, 2)
    start = site.clock.now
    for n in range(saves):
        site.at(start + n * gap)
        site.disk.save(path, text(n))
        site.requests(path, site.clock.now + 0.05, load)
    site.at(start + saves * gap + 10)
    assert site.ignored == set()
    assert storm_lines(caplog) == []


def same(path: str) -> Callable[[Disk], None]:
    return lambda disk: disk.save(path, b'{"built": "the same each time"}')


def appended(path: str) -> Callable[[Disk], None]:
    return lambda disk: disk.append(path, b"started\n")


def stamped(path: str) -> Callable[[Disk], None]:
    return lambda disk: disk.save(path, str(disk.clock.now).encode())


APPS = {
    "same content, data file": ("/srv/app/data/cache.json", same),
    "appended, data file": (LOG, appended),
    "other content, data file": ("/srv/app/run/app.pid", stamped),
    "same content, template": ("/srv/app/templates/generated.html", same),
    "appended, text in a template directory": ("/srv/app/templates/visits.txt", appended),
}


@pytest.mark.parametrize(("path", "writer"), APPS.values(), ids=APPS.keys())
@pytest.mark.parametrize("processes", [1, 2], ids=["1-process", "2-processes"])
@pytest.mark.parametrize("load", [QUICK, SPANNING], ids=["quick-loads", "slow-first-requests"])
def test_an_app_writing_its_file_at_every_start_is_a_storm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str,
    writer: Callable[[str], Callable[[Disk], None]], processes: int, load: float,
) -> None:
    """Every new process writes the file as it loads: ignored by the sixth action of a
    process at the latest (the first, then five returns), reported once per process,
    also when the next actions come before the loading windows end."""
    site = Site(tmp_path, processes)
    write = writer(path)
    write(site.disk)
    start = site.clock.now
    for cycle in range(6):
        assert site.ignored == set(), f"a storm after {cycle} actions"
        site.requests(path, start + 1.5 * cycle, load, lambda _: write(site.disk))
    site.at(start + 1.5 * 6 + load)
    assert site.ignored == {path}
    assert len(storm_lines(caplog)) == processes


def returning(site: Site, path: str, cycles: int) -> None:
    """`cycles` actions on `path`, each followed by a line the new process adds."""
    def add(_: int) -> None:
        site.disk.append(path, b"started\n")

    site.disk.save(path, b"")
    for _ in range(cycles):
        site.requests(path, site.clock.now + 1.5, QUICK, add)
    site.at(site.clock.now + 1.5)


def test_the_advice_fits_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`exclude` is advised for data only; every line names the file and the bound."""
    site = Site(tmp_path, 1)
    returning(site, LOG, 6)
    returning(site, "/srv/app/templates/visits.txt", 6)
    data, template = storm_lines(caplog)
    assert "app.log changed again right after each of the last 5 actions" in data
    assert "exclude='app.log'" in data and "not changed for 60 s" in data
    assert "/srv/app/templates/visits.txt changed again" in template
    assert "exclude=" not in template and "not changed for 60 s" in template
    assert "write it only when its content changes" in template


FILES = {
    "/srv/app/templates/page.jinja2": True, "/srv/app/app/views.py": True,
    "/srv/app/static/site.css": True, "/srv/app/config/.env": True,
    "/srv/app/jinja2/mail/welcome": True, "/srv/app/data/app.db": False,
    "/srv/app/data/app.log": False, "/srv/app/cache/pages.json": False,
}


@pytest.mark.parametrize(("path", "person"), FILES.items(), ids=FILES.keys())
def test_files_people_edit(path: str, person: bool) -> None:
    """What counts as a file people edit: code, templates, styles, configuration."""
    assert edited(path) is person


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    """The count goes on in the next process (a new guard reading the same record)."""
    site = Site(tmp_path, 1)
    returning(site, LOG, 5)
    restarted = site.guard(StateDir([str(tmp_path / "state")]))
    restarted.acted({LOG: site.disk.state(LOG)})
    assert restarted.ignored == {LOG}
    assert site.ignored == set()


def test_a_new_process_ignores_a_storm_before_acting_on_it(tmp_path: Path) -> None:
    """The process a storm restarted into learns of it from the record on its first
    look (`recall`), not by acting once more; a storm quiet for a minute is over."""
    site = Site(tmp_path, 1)
    returning(site, LOG, 6)
    assert site.ignored == {LOG}
    restarted = site.guard(StateDir([str(tmp_path / "state")]))
    restarted.recall()
    assert restarted.ignored == {LOG}
    site.clock.now += 60
    later = site.guard(StateDir([str(tmp_path / "state")]))
    later.recall()
    assert later.ignored == set()


def test_a_storm_ends_when_the_file_is_quiet(tmp_path: Path) -> None:
    """A path untouched for the quiet period counts again."""
    clock = Clock()
    storms = StormGuard("/srv/app/app.wsgi", state=StateDir([str(tmp_path / "s")]), clock=clock)
    storms.ignored.add(str(tmp_path / "app.log"))
    (tmp_path / "app.log").write_text("x")
    clock.now = os.stat(tmp_path / "app.log").st_mtime + 10
    assert storms.release_quiet() == set()
    clock.now += 60
    assert storms.release_quiet() == {str(tmp_path / "app.log")}
    assert storms.ignored == set()


BROKEN = {
    "text": "not json",
    "list": "[1, 2]",
    "old-format": '{"/a": [1.5, 2]}',
    "short-write": '{"/a": {"acts": [], "writes": [[1]], "edited": false}}',
    "not-hex": '{"/a": {"acts": [[1, 2, 3, 4.0, "xyz", false]], "writes": [], "edited": false}}',
    "future": '{"/a": {"acts": [[1, 2, 3, 1e300, "", false]], "writes": [], "edited": false}}',
    "edited-text": '{"/a": {"acts": [], "writes": [], "edited": "yes"}}',
    "extra-key": '{"/a": {"acts": [], "writes": [], "edited": false, "more": 1}}',
}


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_record_is_started_afresh(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that is not what it should be is said once and replaced, never an error."""
    site = Site(tmp_path, 1)
    site.disk.save(LOG, b"")
    guard = site.guards[0]
    guard.acted({LOG: site.disk.state(LOG)})
    record = next((tmp_path / "state").glob("storms-*.json"))
    record.write_text(text)
    guard.acted({LOG: site.disk.state(LOG)})
    assert "discarded" in caplog.text
    assert list(storm_records.decode(json.loads(record.read_text()), site.clock.now)) == [LOG]
    assert guard.ignored == set()


SCRIPT = """\
import os
from {package} import views
from reload_middleware import ReloadMiddleware

LOG = os.path.join(os.path.dirname(__file__), "data", "app.log")


def app(environ, start_response):
    with open(LOG, "a") as log:  # the app writes into a directory it also watches
        log.write("request\\n")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [views.TEXT.encode()]


application = ReloadMiddleware(app, **{options!r})
"""


def test_an_app_writing_its_own_watched_log_settles_down(
    fresh_process: Watcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    until: Until,
) -> None:
    """Requests keep being answered, the log says what to exclude, the reloads stop."""
    root = tmp_path.resolve()
    monkeypatch.syspath_prepend(str(root))
    (root / "data").mkdir()
    log = root / "data" / "app.log"
    log.write_text("")
    caplog.set_level(logging.INFO, logger="reload_middleware")
    made = Project(root, {"settle": 0.01, "watch": ["data"], **CONTROL}, script=SCRIPT)
    app = made.application
    for _ in range(12):
        assert call(app).status == "200 OK"
        until(lambda: str(log) in app.pending or str(log) in status(app)["ignored"])
    reloads = sum(
        "changed: reload" in r.getMessage() and "app.log" in r.getMessage() for r in caplog.records
    )
    advice = storm_lines(caplog)
    assert len(advice) == 1 and str(log) in advice[0] and "exclude='app.log'" in advice[0]
    assert reloads == 6  # the first, then five quick returns in a row
    assert call(app).status == "200 OK"
    made.save_views("TEXT = 'still reloads code'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"still reloads code"
