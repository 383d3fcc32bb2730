"""Bursts of changes: when changes are a storm, from the files' own times."""

from __future__ import annotations

import pytest

from reload_middleware.bursts import run_ending_now, storming

S = 10**9
NOW = 1_800_000_000 * S


def ago(*seconds: float) -> list[int]:
    return [NOW - int(s * S) for s in seconds]


@pytest.mark.parametrize(
    ("times", "run", "storm"),
    [
        pytest.param([], (0.0, 0), False, id="nothing-changed"),
        pytest.param(ago(5), (0.0, 0), False, id="one-old-change"),
        pytest.param(ago(0.1), (0.1, 1), False, id="one-save"),
        pytest.param(ago(0.1, 0.1, 0.11, 0.12), (0.12, 1), False, id="a-save-of-four-files"),
        pytest.param(ago(0.1, 0.95, 1.8), (1.8, 3), False, id="three-quick-saves"),
        pytest.param(ago(*[n / 10 for n in range(30)]), (2.9, 30), True, id="touch-every-0.1s"),
        pytest.param(ago(0.5, 1.0, 1.5, 2.0, 2.5), (2.5, 5), True, id="five-over-2.5s"),
        pytest.param(ago(0.5, 1.0, 2.5, 3.0, 3.5), (1.0, 2), False, id="a-pause-ends-a-run"),
        pytest.param(ago(0.1, 0.11, 0.12, 0.9, 0.91, 0.92, 1.7, 1.71), (1.71, 3), False,
                     id="three-quick-saves-of-several-files"),
        pytest.param(ago(1.2, 1.3, 1.4, 1.5, 3.6), (0.0, 0), False, id="calm-for-a-second"),
        pytest.param([NOW + S, *ago(0.1)], (0.1, 1), False, id="future-times-left-out"),
    ],
)
def test_storming(times: list[int], run: tuple[float, int], storm: bool) -> None:
    """A storm: five changes or more over 1.5 s or more, with no pause of one second;
    files saved together are one change."""
    span, count = run_ending_now(times, NOW)
    assert (round(span, 6), count) == run
    assert storming(times, NOW) is storm
