"""Bursts of changes: when changes are a storm, from the files' own times."""

from __future__ import annotations

import pytest

from reload_middleware.watching.settling import run_ending_now, storming

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
        pytest.param(ago(*[n * 0.3 for n in range(10)]), (0.0, 1), False,
                     id="a-save-every-0.3s-has-pauses"),
        pytest.param(ago(*[n / 10 for n in range(30)]), (2.9, 30), True, id="touch-every-0.1s"),
        pytest.param(ago(*[n / 10 for n in range(12)]), (1.1, 12), False, id="not-long-enough"),
        pytest.param(ago(*[n / 5 for n in range(5)], *[2 + n / 10 for n in range(20)]),
                     (0.8, 5), False, id="a-pause-ends-a-run"),
        pytest.param(ago(*[0.3 + n / 10 for n in range(20)]), (0.0, 0), False,
                     id="calm-since"),
        pytest.param([NOW + S, *ago(0.1)], (0.1, 1), False, id="future-times-left-out"),
    ],
)
def test_storming(times: list[int], run: tuple[float, int], storm: bool) -> None:
    """A storm: ten changes or more over 1.5 s or more, with no pause of 0.25 s; files
    saved together are one change."""
    span, count = run_ending_now(times, NOW)
    assert (round(span, 6), count) == run
    assert storming(times, NOW) is storm
