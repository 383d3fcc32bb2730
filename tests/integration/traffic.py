"""Servers whose log is read while they run, and clients that keep every answer.

For tests that assert what a user was served over time: each request is kept with when
it was sent and answered, so a test can say "every request sent 1 s after the save got
the new code" and print the whole story when it fails::

    with running(argv, project, port) as server, Traffic(port, clients=3) as traffic:
        ...                                   # the user's edits
        traffic.wait(lambda answers: ..., 20, "what is awaited", since=saved)
    print(timeline(traffic.answers, saved))
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from apache import newest_change, wait_for
from procs import fetch, get


class Server:
    """A server in a subprocess of its own session; its output readable while it runs."""

    def __init__(self, argv: list[str], cwd: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # same-size saves within a second: no stale pyc
        self.port = port
        self._lines: list[bytes] = []
        self._proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        # Read as it comes: a server that fills the pipe blocks on its next log line.
        for line in iter(stdout.readline, b""):
            self._lines.append(line)

    @property
    def output(self) -> str:
        """Everything the server printed so far (its log)."""
        return b"".join(list(self._lines)).decode(errors="replace")

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def wait_for_output(self, *needles: str, timeout: float = 10) -> str:
        """Wait until a line of the output holds every one of `needles`; return the output."""
        def found() -> bool:
            return any(all(n in line for n in needles) for line in self.output.splitlines())

        try:
            wait_for(found, timeout, f"a line with {needles} in the log")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log:\n{self.output[-4000:]}") from None
        return self.output

    def stop(self) -> None:
        """SIGINT, then SIGKILL to the whole session (a stopped worker is continued first)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGCONT)
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)  # workers left behind
        self._reader.join(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@contextlib.contextmanager
def running(argv: list[str], cwd: Path, port: int, ready: str = "/") -> Iterator[Server]:
    """`argv` serving on `port` from `cwd`, answering GET `ready`, until the block ends."""
    # A file written within a clock tick of the process start counts as changed: the
    # first request would act on it.
    written = newest_change(cwd)
    wait_for(lambda: time.time_ns() > written + 50_000_000, 1, "the app's files to age")
    server = Server(argv, cwd, port)
    try:
        try:
            wait_for(lambda: server.alive and answering(port, ready), 20, f"{argv[1:3]} answering")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log:\n{server.output[-4000:]}") from None
        yield server
    finally:
        server.stop()


def answering(port: int, path: str) -> bool:
    try:
        get(port, path)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it: when it was sent and answered (monotonic), the
    final status (307s followed; 0 for a connection error) and the body."""

    started: float
    finished: float
    status: int
    body: str

    @property
    def version(self) -> str | None:
        """The version served, or None for a body that is not the app's answer."""
        return self._field("version")

    @property
    def pid(self) -> str | None:
        """The process that served the app's answer."""
        return self._field("pid")

    def _field(self, name: str) -> str | None:
        try:
            return str(json.loads(self.body)[name])
        except (ValueError, KeyError, TypeError):
            return None


class Traffic:
    """`clients` threads each sending GET / every `pause` s until the block ends."""

    def __init__(self, port: int, clients: int = 1, pause: float = 0.2) -> None:
        self._port, self._pause = port, pause
        self._answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, body, _ = fetch(self._port, timeout=30)
            except (OSError, http.client.HTTPException, AssertionError) as exc:
                status, body = 0, repr(exc)  # refused, cut off, or redirected in a loop
            self._answers.append(Answer(started, time.monotonic(), status, body))
            self._stop.wait(self._pause)

    @property
    def answers(self) -> list[Answer]:
        """The answers so far, in the order their requests were sent."""
        return sorted(self._answers, key=lambda a: a.started)

    def wait(self, predicate: Callable[[list[Answer]], bool], timeout: float, what: str,
             since: float) -> None:
        """Wait until `predicate(answers)` holds; the timeline in the failure message."""
        try:
            wait_for(lambda: predicate(self.answers), timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{timeline(self.answers, since)}") from None

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)


def timeline(answers: list[Answer], since: float) -> str:
    """The answers in runs of the same status and version, as lines: how many, when
    their requests were sent and answered (s after `since`), status, what was served."""
    runs: list[list[Answer]] = []
    for a in answers:
        if runs and shown(runs[-1][0]) == shown(a):
            runs[-1].append(a)
        else:
            runs.append([a])
    return "\n".join(
        f"{len(run):4d} x sent {run[0].started - since:+6.2f}..{run[-1].started - since:+6.2f} s"
        f", answered {min(a.finished for a in run) - since:+6.2f}.."
        f"{max(a.finished for a in run) - since:+6.2f} s: {shown(run[0])}"
        for run in runs
    )


def shown(reply: Answer) -> str:
    """An answer's status and version, or the start of its body when it has none."""
    if reply.version is not None:
        return f"{reply.status} version {reply.version!r}"
    return f"{reply.status} {' '.join(reply.body.split())[:100]!r}"
