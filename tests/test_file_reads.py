"""Reading a file someone else may have put there: never blocking, never past the bound.

Each read runs in a thread with a deadline, so a read that blocks fails the test
instead of hanging the suite; `os.read` is counted, so a file refused for its size is
shown to be refused before any byte of it is read.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reload_middleware import file_reads, logs
from reload_middleware.acting import preflight
from reload_middleware.watching import read_times
from reload_middleware.watching.unloaded_files import Strays

LIMIT = 4096


def within(seconds: float, action: Callable[[], object]) -> object:
    """What `action` returns or raises, run in a thread; fail if it blocks `seconds`."""
    result: list[object] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            result.append(action())
        except BaseException as exc:  # re-raised below, in the test's thread
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"blocked for {seconds} s")
    if failed:
        raise failed[0]
    return result[0]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The number of bytes each `os.read` call asked for, in order."""
    asked: list[int] = []
    real = os.read

    def counted(fd: int, size: int) -> bytes:
        asked.append(size)
        return real(fd, size)

    monkeypatch.setattr(os, "read", counted)
    yield asked


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO nobody writes to; opened for writing at the end, so that nothing a failed
    test left blocked in an open of it outlives the test."""
    path = tmp_path / "evil.py"
    os.mkfifo(path)
    yield path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader waits: nothing to release
    os.close(fd)


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no room on disk."""
    with open(path, "wb") as out:
        out.truncate(size)
    return path


def test_a_normal_file_is_read_whole(tmp_path: Path, reads: list[int]) -> None:
    path = tmp_path / "views.py"
    path.write_bytes(b"x" * LIMIT)
    assert within(5, lambda: file_reads.read(str(path), LIMIT)) == b"x" * LIMIT
    assert sum(reads) <= 2 * (LIMIT + 1)  # the content, then the end of it


def test_a_fifo_is_refused_without_waiting(fifo: Path, reads: list[int]) -> None:
    with pytest.raises(file_reads.Refused, match="not a regular file \\(a FIFO\\)") as caught:
        within(5, lambda: file_reads.read(str(fifo), LIMIT))
    assert caught.value.errno == errno.EINVAL and caught.value.filename == str(fifo)
    assert reads == []


def test_a_symlink_is_not_followed(tmp_path: Path, reads: list[int]) -> None:
    """Not even to a regular file: only links on the way to the file are followed."""
    target = tmp_path / "real.py"
    target.write_text("x = 1\n")
    (tmp_path / "link.py").symlink_to(target)
    with pytest.raises(file_reads.Refused, match="a symlink, not followed") as caught:
        within(5, lambda: file_reads.read(str(tmp_path / "link.py"), LIMIT))
    assert caught.value.errno == errno.ELOOP and reads == []
    (tmp_path / "dir").symlink_to(tmp_path, target_is_directory=True)
    assert within(5, lambda: file_reads.read(str(tmp_path / "dir" / "real.py"))) == b"x = 1\n"
    assert within(5, lambda: file_reads.read(str(tmp_path / "link.py"), follow=True)) \
        == b"x = 1\n"


def test_a_symlink_to_a_fifo_is_refused_even_when_followed(fifo: Path) -> None:
    (fifo.parent / "link.py").symlink_to(fifo)
    with pytest.raises(file_reads.Refused, match="a FIFO"):
        within(5, lambda: file_reads.read(str(fifo.parent / "link.py"), follow=True))


def test_a_directory_is_refused(tmp_path: Path, reads: list[int]) -> None:
    (tmp_path / "pkg.py").mkdir()
    with pytest.raises(file_reads.Refused, match="a directory"):
        within(5, lambda: file_reads.read(str(tmp_path / "pkg.py"), LIMIT))
    assert reads == []


def test_an_oversized_sparse_file_is_refused_unread(tmp_path: Path, reads: list[int]) -> None:
    """6 GB that take no room: refused by its size, no byte read, no memory taken."""
    path = sparse(tmp_path / "huge.py", 6 * 1024**3)
    with pytest.raises(file_reads.Refused, match="larger than 1 MiB") as caught:
        within(5, lambda: file_reads.read(str(path)))
    assert caught.value.errno == errno.EFBIG and reads == []


def test_a_file_one_byte_over_the_bound_is_refused(tmp_path: Path, reads: list[int]) -> None:
    path = tmp_path / "big.py"
    path.write_bytes(b"x" * (LIMIT + 1))
    with pytest.raises(file_reads.Refused, match="larger than 4 KiB"):
        within(5, lambda: file_reads.read(str(path), LIMIT))
    assert reads == []


def test_a_file_that_grows_after_its_check_is_not_read_past_the_bound(
    tmp_path: Path, reads: list[int]
) -> None:
    """Checked at its old size, then written on: the read stops one byte past the bound."""
    path = tmp_path / "growing.py"
    path.write_bytes(b"x" * 10)
    fd = file_reads.open_file(str(path))
    try:
        file_reads.check(fd, LIMIT)
        path.write_bytes(b"x" * (10 * LIMIT))
        with pytest.raises(file_reads.Refused, match="larger than"):
            within(5, lambda: file_reads.read_fd(fd, LIMIT))
    finally:
        os.close(fd)
    assert sum(reads) == LIMIT + 1


def test_a_missing_file_is_an_ordinary_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        file_reads.read(str(tmp_path / "gone.py"))


def test_accept_may_ask_more(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_text("{}")
    with pytest.raises(file_reads.Refused, match="not a file of ours"):
        file_reads.read(str(path), accept=lambda info: False)


# --- the readers that use it --------------------------------------------------------------


def test_compile_files_skips_a_fifo_and_a_huge_file_saying_each_once(
    tmp_path: Path, fifo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither blocks a request nor is read; each is one log line however many
    changes follow; the others are still compiled."""
    huge = str(sparse(tmp_path / "huge.py", 6 * 1024**3))
    bad = tmp_path / "views.py"  # compiled after the others: the first failure wins
    bad.write_text("x = (\n")
    told = logs.Once()
    for _ in range(3):
        failure = within(5, lambda: preflight.compile_files([str(fifo), huge, str(bad)],
                                                             told=told))
        assert isinstance(failure, preflight.Failure) and failure.file == str(bad)
    lines = [r.getMessage() for r in caplog.records if "not compiled" in r.getMessage()]
    assert len(lines) == 2, lines
    assert f"{fifo} is not read (not a regular file (a FIFO))" in lines[0] + lines[1]
    assert f"{huge} is not read (larger than 1 MiB" in lines[0] + lines[1]


def test_a_stray_fifo_never_blocks_a_request(fifo: Path) -> None:
    strays = Strays(told=logs.Once())
    assert strays.note(str(fifo), {str(fifo.parent): False}, ())
    assert within(5, strays.report) == []


def pyc_name(source: Path) -> Path:
    return Path(sys.modules["importlib.util"].cache_from_source(str(source)))


def test_a_fifo_at_the_cached_bytecode_name_never_blocks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Planted where the pyc of a watched x.py would be: not bytecode Python loads, so
    the source does not count as changed for it; said once."""
    source = tmp_path / "x.py"
    source.write_text("X = 1\n")
    pyc_name(source).parent.mkdir()
    os.mkfifo(pyc_name(source))
    told = logs.Once()
    size, mtime = source.stat().st_size, source.stat().st_mtime_ns
    for _ in range(2):
        assert within(5, lambda: read_times.stale_bytecode(str(source), mtime, size, told)) \
            is False
        assert within(5, lambda: read_times.later_than(
            str(source), (mtime, mtime), mtime + 500_000_000, size, told=told)) is False
    caplog.set_level(logging.ERROR, "reload_middleware")
    said = [r.getMessage() for r in caplog.records if "is not read" in r.getMessage()]
    assert len(said) == 1 and str(pyc_name(source)) in said[0]


def test_oversized_cached_bytecode_counts_as_changed(tmp_path: Path) -> None:
    """A pyc past the bound may be old bytecode: not read, and the safe answer."""
    source = tmp_path / "x.py"
    source.write_text("X = 1\n")
    pyc_name(source).parent.mkdir()
    sparse(pyc_name(source), 6 * 1024**3)
    stat = source.stat()
    assert within(5, lambda: read_times.stale_bytecode(str(source), stat.st_mtime_ns,
                                                       stat.st_size)) is True
