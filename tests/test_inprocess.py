"""Seeded random schedules in one process, with the real watcher on real files (see inprocess.py).

RM_SCHEDULE_SEED=7 replays schedule 7; RM_SCHEDULE_SEEDS=200 and RM_SCHEDULE_SECONDS=20
run more and longer ones (`make schedules`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from inprocess import Log, Run, World, plan, seconds, seeds
from reload_middleware.watching.watcher import Watcher


@pytest.mark.parametrize("seed", seeds(), ids=lambda seed: f"seed={seed}")
def test_no_request_is_served_code_older_than_a_save_it_came_after(
    seed: int,
    fresh_process: Watcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A schedule of saves, imports, new processes and concurrent requests: none stale or
    failed, no reload lost or repeated."""
    schedule = plan(seed, seconds())
    print(f"\n{schedule}\nreplay: RM_SCHEDULE_SEED={seed}")
    # Bytecode is written, as servers do: a stale .pyc is one of the ways to serve old code.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    root = tmp_path.resolve()
    monkeypatch.syspath_prepend(str(root))
    caplog.set_level(logging.INFO, logger="reload_middleware")
    with Log.attached() as log:
        run = Run(seed, World(root, schedule.track), monkeypatch, log)
        try:
            run.run(schedule.steps)
        finally:
            run.stop()
    report = run.report()
    if report:
        pytest.fail(report, pytrace=False)
    print(f"schedule {seed}: {len(run.requests)} requests, none broke the rule")
