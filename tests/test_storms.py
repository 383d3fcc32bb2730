"""Restart storms: a file the app writes while serving must not reload it forever."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from helpers import CONTROL, Project, Until, call, status
from reload_middleware.statedir import StateDir
from reload_middleware.storms import StormGuard
from reload_middleware.watcher import Watcher


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def guard(tmp_path: Path, clock: Clock) -> StormGuard:
    return StormGuard("/srv/app/app.wsgi", state=StateDir([str(tmp_path / "state")]), clock=clock)


def test_a_file_back_right_after_every_action_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Five actions in a row each followed at once by a new write: reported once, ignored."""
    clock = Clock()
    storms = guard(tmp_path, clock)
    log = "/srv/app/data/app.log"
    for _ in range(7):
        clock.now += 30  # however long between requests
        storms.acted({log: clock.now - 29.9})  # written 0.1 s after the previous action
    assert storms.ignored == {log}
    advice = [r.getMessage() for r in caplog.records if "seems to write it" in r.getMessage()]
    assert len(advice) == 1 and "exclude='app.log'" in advice[0]


def test_a_person_saving_now_and_then_is_never_a_storm(tmp_path: Path) -> None:
    """Saves that come seconds after each reload, as a person's do, never count."""
    clock = Clock()
    storms = guard(tmp_path, clock)
    for _ in range(50):
        clock.now += 8
        storms.acted({"/srv/app/templates/page.html": clock.now - 5})
    assert storms.ignored == set()


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    """The count goes on in the next process (a new guard reading the same record)."""
    clock = Clock()
    log = "/srv/app/data/app.log"
    for _ in range(6):
        clock.now += 1
        guard(tmp_path, clock).acted({log: clock.now - 0.5})
    restarted = guard(tmp_path, clock)
    clock.now += 1
    restarted.acted({log: clock.now - 0.5})
    assert restarted.ignored == {log}


def test_a_storm_ends_when_the_file_is_quiet(tmp_path: Path) -> None:
    """A path untouched for the quiet period counts again."""
    clock = Clock()
    storms = guard(tmp_path, clock)
    storms.ignored.add(str(tmp_path / "app.log"))
    (tmp_path / "app.log").write_text("x")
    clock.now = os.stat(tmp_path / "app.log").st_mtime + 10
    assert storms.release_quiet() == set()
    clock.now += 60
    assert storms.release_quiet() == {str(tmp_path / "app.log")}
    assert storms.ignored == set()


def test_a_broken_record_is_started_afresh(tmp_path: Path) -> None:
    """A record that is not what it should be is ignored, never an error."""
    clock = Clock()
    storms = guard(tmp_path, clock)
    storms.acted({"/a": clock.now})
    for text in ("not json", "[1, 2]", '{"a": [1]}', '{"a": "bc"}'):
        for path in tmp_path.glob("state/storms-*.json"):
            path.write_text(text)
        storms.acted({"/a": clock.now})
    assert storms.ignored == set()


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
    advice = [r.getMessage() for r in caplog.records if "seems to write it" in r.getMessage()]
    assert len(advice) == 1 and str(log) in advice[0]
    assert reloads == 6  # the first, then five quick returns in a row
    assert call(app).status == "200 OK"
    made.save_views("TEXT = 'still reloads code'\n")
    until(lambda: str(made.views) in app.pending)
    assert call(app).body == b"still reloads code"
