"""Usage-aware retirement (issue 16): the pure decision at its boundaries, the journal's
promotion time (v3, v2 still read) and the state machine's CHECK_QUIET step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from keyturn.domain.errors import BadInputError
from keyturn.domain.model import KeyStatus, LastUse
from keyturn.domain.retirement import DEFAULT_QUIET, REPORTING_LAG, QuietPolicy, Verdict, decide
from keyturn.domain.rotation import (
    IamKey,
    OldKey,
    RotationState,
    Step,
    Timing,
    Unpublished,
    advance,
    begin,
    decode,
    encode,
    next_step,
)

S = RotationState
P = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # the promotion
QUIET = timedelta(hours=5)
BOUND = timedelta(days=2)
SECOND = timedelta(seconds=1)
ESCALATE = QuietPolicy(quiet=QUIET, max_overlap=BOUND, on_max="escalate")
DEACTIVATE = QuietPolicy(quiet=QUIET, max_overlap=BOUND, on_max="deactivate")
OLD = IamKey("AKIAOLD0000000000000", KeyStatus.ACTIVE, P - timedelta(days=90))


def use(at: datetime, service: str | None = "s3", region: str | None = "eu-west-1") -> LastUse:
    return LastUse(at, service, region)


def test_the_default_quiet_period_covers_a_daily_consumer_and_the_reporting_lag() -> None:
    assert DEFAULT_QUIET == timedelta(days=1) + REPORTING_LAG == timedelta(hours=28)
    assert QuietPolicy().on_max == "escalate"  # never lose a working key by default


@pytest.mark.parametrize(
    ("last", "verdict"),
    [(None, Verdict.RETIRE), (use(P - timedelta(days=3)), Verdict.RETIRE)],
    ids=["never used", "used before promotion"],
)
def test_unused_since_promotion_retires_exactly_at_the_quiet_end(
    last: LastUse | None, verdict: Verdict
) -> None:
    assert decide(P, last, P + QUIET - SECOND, ESCALATE).verdict is Verdict.WAIT
    assert decide(P, last, P + QUIET, ESCALATE).verdict is verdict
    assert decide(P, last, P + QUIET + SECOND, ESCALATE).verdict is verdict


def test_a_wait_without_use_says_when_the_quiet_period_ends() -> None:
    decision = decide(P, None, P + timedelta(hours=1), ESCALATE)
    assert decision.reason == (
        "old key not used since promotion; retired once quiet for 300 min (in 240 min), waiting"
    )


def test_used_exactly_at_promotion_counts_as_still_used() -> None:
    decision = decide(P, use(P), P + timedelta(minutes=30), ESCALATE)
    assert decision.verdict is Verdict.WAIT
    assert decision.reason == "old key still used by s3 in eu-west-1 30 min ago, waiting"
    assert decide(P, use(P), P + QUIET, ESCALATE).verdict is Verdict.RETIRE


def test_a_use_after_promotion_restarts_the_quiet_period_from_that_use() -> None:
    used = P + timedelta(hours=10)
    assert decide(P, use(used), used + QUIET - SECOND, ESCALATE).verdict is Verdict.WAIT
    assert decide(P, use(used), used + QUIET, ESCALATE).verdict is Verdict.RETIRE
    assert decide(P, use(used), used + QUIET + SECOND, ESCALATE).verdict is Verdict.RETIRE


def test_the_bound_escalates_and_never_retires_a_key_still_in_use() -> None:
    recent = P + BOUND - timedelta(minutes=12)
    before = decide(P, use(recent), P + BOUND - SECOND, ESCALATE)
    assert before.verdict is Verdict.WAIT
    at = decide(P, use(recent), P + BOUND, ESCALATE)
    assert at.verdict is Verdict.ESCALATE
    assert at.reason.startswith("old key still used by s3 in eu-west-1 12 min ago; ")
    assert "NOT deactivating" in at.reason
    after = decide(P, use(recent), P + BOUND + SECOND, ESCALATE)
    assert after.verdict is Verdict.ESCALATE


def test_the_bound_deactivates_anyway_when_told_and_says_so() -> None:
    recent = P + BOUND - timedelta(minutes=1)
    assert decide(P, use(recent), P + BOUND - SECOND, DEACTIVATE).verdict is Verdict.WAIT
    at = decide(P, use(recent), P + BOUND, DEACTIVATE)
    assert (at.verdict, at.forced) == (Verdict.RETIRE, True)
    assert "deactivating it anyway" in at.reason


def test_quiet_wins_over_the_bound_an_escalation_ends_once_the_consumer_moved() -> None:
    moved = P + BOUND - timedelta(hours=6)  # last use 6 h before the bound, quiet is 5 h
    decision = decide(P, use(moved), P + BOUND + timedelta(hours=1), ESCALATE)
    assert (decision.verdict, decision.forced) == (Verdict.RETIRE, False)


def test_unknown_service_and_region_and_a_use_ahead_of_the_clock() -> None:
    decision = decide(P, use(P + timedelta(minutes=5), None, None), P + SECOND, ESCALATE)
    assert decision.reason == (
        "old key still used by an unknown service in an unknown region 0 min ago, waiting"
    )


# -- the journal keeps the promotion time ----------------------------------------------------


def test_promotion_time_is_set_once_when_promoted_and_round_trips() -> None:
    intent = begin("alice", "tok", [OLD], OLD.key_id, P - timedelta(minutes=1))
    record = advance(intent, S.CREATED, P)
    record = advance(advance(record, S.STORED_PENDING, P), S.VERIFIED, P)
    promoted = advance(record, S.PROMOTED, P)
    assert promoted.promoted_at == P
    later = advance(promoted, S.OLD_DEACTIVATED, P + timedelta(days=1))
    assert later.promoted_at == P
    assert decode("alice", encode(later)).promoted_at == P
    assert decode("alice", encode(record)).promoted_at is None


def test_the_worst_case_record_fits_an_iam_tag_with_its_seal() -> None:
    record = replace(
        begin("alice", "T" * 64, [OLD, OLD], OLD.key_id, P, hold=timedelta(days=365)),
        state=S.OLD_DEACTIVATED,
        new_key_id="AKIANEW0000000000000",
        promoted_at=P,
        unpublished=(Unpublished.ROTATED, Unpublished.RETIRED),
        old_mark=OldKey.RETIRING,
    )
    text = encode(record)
    assert text.startswith("v5:")
    assert len(text) + 1 + 43 <= 256
    assert decode("alice", text) == replace(record, updated_at=None)


def test_a_sealed_v2_record_is_still_read_without_a_promotion_time() -> None:
    back = decode("alice", "v2:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-")
    assert (back.state, back.new_key_id, back.promoted_at) == (S.PROMOTED, "AKIANEW", None)


def test_a_sealed_v3_record_is_still_read_with_nothing_unpublished() -> None:
    back = decode("alice", "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:1767225600")
    assert (back.promoted_at is not None, back.unpublished) == (True, ())


@pytest.mark.parametrize(
    "text",
    [
        "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-",  # v3 needs 9 fields
        "v2:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-",  # v2 has 8
        "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:soon",
        "v3:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:",
        "v4:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:",  # no unpublished field
        "v4:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:X",  # an unknown event
        "v4:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-",  # v4 needs 10 fields
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-",  # v5 needs 11 fields
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:",  # an empty old-key mark
        "v5:promoted:tok:1767225600:AKIAOLD:-:AKIANEW:-:-:-:x",  # an unknown old-key mark
    ],
)
def test_decode_refuses_malformed_v3(text: str) -> None:
    with pytest.raises(BadInputError):
        decode("alice", text)


def test_when_quiet_checks_instead_of_deactivating_after_overlap_and_hold() -> None:
    record = replace(
        begin("alice", "t", [OLD], OLD.key_id, P, hold=timedelta(days=1)), state=S.PROMOTED
    )
    quiet = Timing(retire=ESCALATE)
    assert next_step(record, P + timedelta(days=1) - SECOND, quiet) is Step.WAIT_OVERLAP
    assert next_step(record, P + timedelta(days=1), quiet) is Step.CHECK_QUIET
    assert next_step(record, P + timedelta(days=1), Timing()) is Step.DEACTIVATE_OLD
