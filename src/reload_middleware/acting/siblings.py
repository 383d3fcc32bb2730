"""Which processes serve beside this one with code older than a change?

A worker that restarts alone after a change leaves its siblings on the old code until
each has a request of its own: the GET it answered with a 307 may come back to one of
them and bounce again, up to once per worker (docs/how-it-works.md). So the worker
that acts replaces the siblings that started before the change too, each with its
server's own graceful exit: they finish the requests they have and take no more.

Siblings are found from the server itself, never from a file others could write: the
workers of a gunicorn arbiter are its children (the same owner and command line as this
one); uWSGI lists its workers. A sibling that started after the change loaded the new
code and is left alone, so a worker that acts late never replaces the fresh ones.

    replace(gunicorn_workers(), since=changed_at, signum=signal.SIGTERM)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ..watching.read_times import process_start_ns

PROC = "/proc"


def children(parent: int, proc: str = PROC) -> set[int]:
    """The child processes of `parent`, from its threads' lists of children."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"{proc}/{parent}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"{proc}/{parent}/task/{task}/children") as listed:
                found.update(int(pid) for pid in listed.read().split())
        except (OSError, ValueError):
            continue
    return found


def gunicorn_workers(proc: str = PROC) -> set[int]:
    """This worker's siblings: the other children of its arbiter that run as the same
    user with the same command line (a fork of the same arbiter; anything else its
    hooks started is not one). None unless the parent is a gunicorn arbiter."""
    me, arbiter = os.getpid(), os.getppid()
    mine, parent = _identity(me, proc), _identity(arbiter, proc)
    if mine is None or parent is None or b"gunicorn" not in parent[1]:
        return set()
    return {pid for pid in children(arbiter, proc) - {me} if _identity(pid, proc) == mine}


def uwsgi_workers(server: Any) -> set[int]:
    """This worker's siblings, as uWSGI lists its workers (`uwsgi.workers()`)."""
    pids = {worker.get("pid", 0) for worker in server.workers()}
    return {pid for pid in pids if isinstance(pid, int) and pid > 0} - {os.getpid()}


def replace(pids: Iterable[int], *, since: int, signum: int,
            kill: Callable[[int, int], None] = os.kill,
            started: Callable[[int], int | None] = process_start_ns) -> list[int]:
    """Send `signum` to each of `pids` that started before `since` (wall clock ns);
    returns those signalled. One gone meanwhile, or not ours, is skipped."""
    done = []
    for pid in sorted(pids):
        began = started(pid)
        if began is None or began >= since:
            continue
        try:
            kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue
        done.append(pid)
    return done


def _identity(pid: int, proc: str) -> tuple[int, bytes] | None:
    """(owner, command line) of a process, None if it is gone."""
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as cmdline:
            return os.fstat(cmdline.fileno()).st_uid, cmdline.read()
    except OSError:
        return None
