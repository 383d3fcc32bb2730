"""The command line: help, clear errors, and what `serve` prints."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload_middleware.operations import cli


@pytest.fixture(autouse=True)
def _process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`serve` sets up its process (a variable, sys.path, the script module): undo it."""
    monkeypatch.setenv("RELOAD_MIDDLEWARE_DEBUG", "on")
    monkeypatch.setenv("RELOAD_MIDDLEWARE_LIVE", "on")
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["doctor", "--help"]],
                         ids=["main", "serve", "doctor"])
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` works for the program and each command, and exits 0."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert "usage: reload-middleware" in capsys.readouterr().out


def test_a_missing_script_is_a_clear_error(tmp_path: Path) -> None:
    """serve with a script that does not exist names it and stops."""
    with pytest.raises(SystemExit, match=r"no such script: .*nowhere\.wsgi"):
        cli.main(["serve", str(tmp_path / "nowhere.wsgi")])


def test_a_script_without_application_is_a_clear_error(tmp_path: Path) -> None:
    """serve with a script that defines no `application` says so."""
    script = tmp_path / "empty.wsgi"
    script.write_text("app = None\n")
    with pytest.raises(SystemExit, match="defines no 'application'"):
        cli.main(["serve", str(script)])


def test_an_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A command that does not exist is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sreve", "app.wsgi"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_serve_turns_live_reload_on_unless_told_not_to() -> None:
    """`serve` reloads open pages by default; `--no-live` is the way out."""
    assert cli.parser().parse_args(["serve", "app.wsgi"]).live is True
    assert cli.parser().parse_args(["serve", "app.wsgi", "--no-live"]).live is False


def test_serve_adds_watch_and_static_paths_to_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--watch` and `--static` reach the middleware as absolute paths added to the
    options' own variables (set before the script is loaded)."""
    monkeypatch.setenv("RELOAD_MIDDLEWARE_STATIC", "/srv/shared")
    monkeypatch.setenv("RELOAD_MIDDLEWARE_WATCH", "")  # restored after, as it is set below
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "empty.wsgi"
    script.write_text("app = None\n")
    with pytest.raises(SystemExit):
        cli.main(["serve", str(script), "--static", "static", "--watch", "conf"])
    assert os.environ["RELOAD_MIDDLEWARE_STATIC"] == f"/srv/shared:{tmp_path}/static"
    assert os.environ["RELOAD_MIDDLEWARE_WATCH"] == f"{tmp_path}/conf"
