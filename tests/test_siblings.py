"""Sibling workers: found from the server's own process tree, replaced when older."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from reload_middleware.acting import siblings


def fake_proc(root: Path, processes: dict[int, tuple[bytes, list[int]]]) -> str:
    """A /proc of `processes`: pid -> (command line, children), one thread each."""
    for pid, (cmdline, kids) in processes.items():
        task = root / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(cmdline)
        (task / "children").write_text("".join(f"{kid} " for kid in kids))
    return str(root)


GUNICORN = b"/venv/bin/python\0-m\0gunicorn\0-w\0" + b"3\0app:application\0"


def test_gunicorn_siblings_are_the_arbiter_s_other_workers(tmp_path: Path) -> None:
    """The arbiter's children with this worker's command line; not this worker, not a
    process a hook started with another command line."""
    me, arbiter = os.getpid(), os.getppid()
    proc = fake_proc(tmp_path, {
        arbiter: (GUNICORN, [me, 101, 102, 103]),
        me: (GUNICORN, []), 101: (GUNICORN, []), 102: (GUNICORN, []),
        103: (b"/usr/bin/rsync\0-a\0", []),
    })
    assert siblings.gunicorn_workers(proc) == {101, 102}


def test_no_siblings_unless_the_parent_is_gunicorn(tmp_path: Path) -> None:
    """Under a parent that is not a gunicorn arbiter (a test runner, a shell), none."""
    me, parent = os.getpid(), os.getppid()
    proc = fake_proc(tmp_path, {parent: (b"/bin/sh\0", [me, 7]), me: (GUNICORN, []),
                                7: (GUNICORN, [])})
    assert siblings.gunicorn_workers(proc) == set()


def test_uwsgi_siblings_come_from_its_list_of_workers() -> None:
    """uwsgi.workers() lists every worker, this one and empty slots (pid 0) included."""

    class Uwsgi:
        def workers(self) -> tuple[dict[str, int], ...]:
            return ({"pid": os.getpid()}, {"pid": 11}, {"pid": 0}, {"pid": 12})

    assert siblings.uwsgi_workers(Uwsgi()) == {11, 12}


@pytest.mark.parametrize(
    ("started", "signalled"),
    [({1: 50, 2: 150}, [1]), ({1: None, 2: 99}, [2]), ({1: 100}, [])],
    ids=["older-only", "gone-skipped", "started-at-the-change"],
)
def test_replace_signals_the_siblings_started_before_the_change(
    started: dict[int, int | None], signalled: list[int]
) -> None:
    """Only a sibling that started before the change loaded old code; one that started
    since has the new code and is left alone, as is one that is gone."""
    sent: list[tuple[int, int]] = []
    done = siblings.replace(started, since=100, signum=signal.SIGTERM,
                            kill=lambda pid, sig: sent.append((pid, sig)),
                            started=started.get)
    assert done == signalled
    assert sent == [(pid, signal.SIGTERM) for pid in signalled]


def test_replace_skips_a_sibling_that_exited_meanwhile() -> None:
    """A sibling gone between the listing and the signal is no error."""

    def kill(pid: int, sig: int) -> None:
        raise ProcessLookupError(pid)

    assert siblings.replace([5], since=100, signum=signal.SIGHUP, kill=kill,
                            started=lambda pid: 1) == []
