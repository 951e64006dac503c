"""Per-caller token buckets: one caller's burst never spends another's budget."""

from __future__ import annotations

from keyturn.services.caller_limits import CallerLimits


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_per_caller() -> None:
    ticks = Ticks()
    limits = CallerLimits(60, 2, monotonic=ticks)
    assert limits.take("alice") == 0.0
    assert limits.take("alice") == 0.0
    wait = limits.take("alice")
    assert 0.0 < wait <= 1.0  # one token a second at 60 a minute
    assert limits.take("bob") == 0.0  # bob's bucket is his own
    ticks.now += 1.0
    assert limits.take("alice") == 0.0


def test_the_number_of_remembered_callers_is_bounded() -> None:
    ticks = Ticks()
    limits = CallerLimits(60, 1, monotonic=ticks, max_callers=2)
    for name in ("a", "b", "c"):
        assert limits.take(name) == 0.0
    assert limits.take("a") == 0.0  # forgotten (idlest): a full bucket again
