"""The "waiting for ..." rule and the in-flight registry behind it, without a terminal."""

from __future__ import annotations

from keyturn.cli.progress import WaitingLine
from keyturn.wiring import InFlight


def test_nothing_is_shown_for_a_short_wait_and_the_oldest_call_is_named() -> None:
    now = [100.0]
    calls = InFlight(clock=lambda: now[0])
    line = WaitingLine(after=2.0)
    assert line.text(calls.oldest()) is None
    first = calls.start("iam:GenerateCredentialReport")
    now[0] += 1
    calls.start("sts:GetCallerIdentity")
    assert line.text(calls.oldest()) is None
    now[0] += 2
    assert line.text(calls.oldest()) == (
        "waiting for iam:GenerateCredentialReport (3 s, Ctrl-C to stop)"
    )
    calls.end(first)
    assert line.text(calls.oldest()) == "waiting for sts:GetCallerIdentity (2 s, Ctrl-C to stop)"
