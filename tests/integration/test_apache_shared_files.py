"""Real Apache daemon mode while another local account plays with a shared directory.

The trigger's directory, or a watch directory, is a sticky 1777 directory like the
system temp directory: another account (uid nobody, through util-linux `setpriv`)
creates files there while the site serves. Nothing it creates may hang a daemon, stall
a request past a deadline or exhaust its memory (SECURITY.md, "What another local
account can do"). Without root or setpriv the tests are skipped; with `CI=true` they
fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apache import DEFAULT_VENV, Apache, Response, prepare_run_dir, wait_for
from support import Site, require, warm

pytestmark = pytest.mark.integration

DEADLINE = 5.0  # seconds: any request, whatever the other account does
PROCESSES = 2
# The other account's loop: `evil.py` a regular file, then a FIFO, then a regular file...
# each by a rename over it, so every one is a new file event in the directory.
ALTERNATE = """\
import os, sys, time
directory, seconds = sys.argv[1], float(sys.argv[2])
evil = os.path.join(directory, "evil.py")
regular, fifo = os.path.join(directory, ".evil-regular"), os.path.join(directory, ".evil-fifo")
end = time.monotonic() + seconds
while time.monotonic() < end:
    with open(regular, "w") as out:
        out.write("X = 1\\n")
    os.replace(regular, evil)
    os.mkfifo(fifo)
    os.replace(fifo, evil)
"""


def setpriv() -> list[str]:
    """The command prefix that runs as the other account."""
    found = shutil.which("setpriv")
    require(None if found else "setpriv (util-linux) is not installed")
    require(None if os.geteuid() == 0 else "acting as another uid needs root")
    assert found is not None
    return [found, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def as_nobody(*argv: str) -> None:
    subprocess.run([*setpriv(), *argv], check=True, timeout=30)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory where everybody may create names and nobody remove others' (as in
    the system temp directory), reachable by www-data."""
    setpriv()
    path = prepare_run_dir()
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def timed(server: Apache, deadline: float = DEADLINE) -> Response:
    """A GET of the app that must be answered, 200, within `deadline` seconds."""
    started = time.monotonic()
    try:
        response = server.get("/", timeout=deadline)
    except OSError as exc:  # the socket timed out: the daemon hangs
        raise AssertionError(f"no answer within {deadline} s: {exc!r}") from None
    took = time.monotonic() - started
    assert response.status == 200, response.text
    assert took < deadline, f"answered after {took:.1f} s"
    return response


def traffic(server: Apache, clients: int, busy: Callable[[], bool]) -> list[str]:
    """`clients` threads each sending requests one after another while `busy()`; what
    went wrong (a request not answered 200 within the deadline), in order."""
    failures: list[str] = []

    def client() -> None:
        while busy():
            try:
                timed(server)
            except AssertionError as exc:
                failures.append(str(exc))
                return

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return failures


def cache_tag() -> str:
    """The bytecode tag of the daemons' interpreter (cpython-311 and such)."""
    python = DEFAULT_VENV / "bin" / "python"
    done = subprocess.run([str(python), "-c", "import sys; print(sys.implementation.cache_tag)"],
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def test_a_fifo_alternating_with_a_file_beside_the_trigger_hangs_nothing(
    site: Callable[..., Site], apache: Callable[..., Apache], shared: Path
) -> None:
    """`trigger` in the shared directory: `evil.py` is swapped between a regular file and
    a FIFO for 8 s while two clients browse; every request is answered within 5 s, and a
    touch of the trigger still loads an edit in both processes."""
    trigger = shared / "reload.trigger"
    trigger.touch()
    app = site(trigger=str(trigger))
    server = apache(app, processes=PROCESSES)
    warm(server, PROCESSES)
    attacker = subprocess.Popen([*setpriv(), str(DEFAULT_VENV / "bin" / "python"), "-c",
                                 ALTERNATE, str(shared), "8"])
    try:
        failures = traffic(server, 2, lambda: attacker.poll() is None)
    finally:
        attacker.wait(30)
    assert failures == [], failures
    assert attacker.returncode == 0
    app.set_version("2")
    os.utime(trigger)
    both: set[int] = set()

    def both_new() -> bool:
        result = timed(server).json()
        if result["version"] == "2":
            both.add(result["pid"])
        return len(both) == PROCESSES

    wait_for(both_new, 20, "the edit in both processes, after the trigger")
    assert "evil.py" not in server.error_log()  # never read: not in a package root


def test_a_fifo_at_the_cached_bytecode_name_hangs_no_daemon(
    site: Callable[..., Site], apache: Callable[..., Apache], shared: Path
) -> None:
    """A watch directory holds `x.py`, just saved, and a FIFO planted where its cached
    bytecode would be: the daemons load the app (each on its first request, a second
    after the save at most) and answer, each saying the FIFO once."""
    app = site(watch=[str(shared)])
    server = apache(app, processes=PROCESSES, preload=False, ready_path="/probe")
    pyc = shared / "__pycache__" / f"x.{cache_tag()}.pyc"
    as_nobody("sh", "-c", f'mkdir -m 0755 "{pyc.parent}" && mkfifo -m 0644 "{pyc}" && '
                          f'echo "X = 1" > "{shared / "x.py"}"')
    # Both processes load the app now, within the second after the save.
    answers: list[object] = []

    def first() -> None:
        try:
            answers.append(timed(server, 10).json()["pid"])
        except AssertionError as exc:
            answers.append(exc)

    clients = [threading.Thread(target=first, daemon=True) for _ in range(3 * PROCESSES)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(30)
    assert all(isinstance(a, int) for a in answers) and len(answers) == 3 * PROCESSES, answers
    warm(server, PROCESSES)  # both answer, whichever loaded the app first
    log = server.error_log()
    said = log.count(f"{pyc} is not read (not a regular file (a FIFO))")
    assert 1 <= said <= PROCESSES, log


# A list of a million numbers: 2 MB of source whose compile takes hundreds of MB.
TWO_MB = "import sys; open(sys.argv[1], 'w').write('X = [' + '1,' * (1 << 20) + ']\\n')"


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param([str(DEFAULT_VENV / "bin" / "python"), "-c", TWO_MB], id="2MB"),
        pytest.param(["truncate", "-s", "6G"], id="sparse-6GB"),
    ],
)
def test_a_huge_file_in_a_watch_directory_is_not_read(
    site: Callable[..., Site], apache: Callable[..., Apache], shared: Path, plant: list[str]
) -> None:
    """Another account's `.py` of 2 MB, or of 6 GB that take no room, in a watch
    directory: no MemoryError, no request waits past 5 s, each process says it once,
    and an edit saved after it is served."""
    app = site(watch=[str(shared)])
    server = apache(app, processes=PROCESSES)
    warm(server, PROCESSES)
    huge = shared / "huge.py"
    as_nobody(*plant, str(huge))
    end = time.monotonic() + 3  # the change settles, is compiled, and acted on
    assert traffic(server, 2, lambda: time.monotonic() < end) == []
    app.set_version("2")
    wait_for(lambda: timed(server).json()["version"] == "2", 20, "the edit served")
    end = time.monotonic() + 2
    assert traffic(server, 2, lambda: time.monotonic() < end) == []
    log = server.error_log()
    assert "MemoryError" not in log and "Traceback" not in log, log
    said = log.count(f"{huge} is not read (larger than 1 MiB")
    assert 1 <= said <= PROCESSES, log
