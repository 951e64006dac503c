"""The smaller pure modules' edges that mutation testing found untested (issue 18).

policy (every decision's reason, floor days), store_paths (refusals as printed, the
512-character edge, which characters are named), enrollment and trust (the exact bytes a
seal covers: changing them would orphan every seal already written), and retirement (a
use from before the promotion is no consumer still on the old key).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from keyturn.domain.enrollment import (
    INITIAL,
    Enrollment,
    Generation,
    StaleEnrollment,
    generation_text,
    lowered,
    parse,
    parse_generation,
    sealed_payload,
    sealed_text,
    staleness,
)
from keyturn.domain.errors import BadInputError, ConfigError
from keyturn.domain.model import AccessKey, AuditedKey, Decision, Finding, KeyStatus, LastUse
from keyturn.domain.policy import PolicySettings, age_in_days, classify, classify_all
from keyturn.domain.retirement import QuietPolicy, Verdict, decide
from keyturn.domain.store_paths import path_problem, render, require_user_placeholder
from keyturn.domain.trust import Rejected, decode_tag, encode_tag, message

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


# -- policy --------------------------------------------------------------------------------


def key(age_days: float, *, active: bool = True, used_days_ago: float | None = 0) -> AccessKey:
    return AccessKey(
        account="123456789012",
        user="alice",
        slot=1,
        status=KeyStatus.ACTIVE if active else KeyStatus.INACTIVE,
        created=NOW - timedelta(days=age_days),
        last_used=None if used_days_ago is None else LastUse(NOW - timedelta(days=used_days_ago)),
        key_id="AKIAAAAAAAAAAAAAAAAA",
    )


@pytest.mark.parametrize(
    ("k", "policy", "decision"),
    [
        (
            key(40, active=False),
            PolicySettings(delete_after_days=1),
            Decision(Finding.DELETE, "inactive and 40d old (delete at 38d)"),
        ),
        (key(40, active=False), PolicySettings(), Decision(Finding.OK, "inactive")),
        (key(37), PolicySettings(), Decision(Finding.DEACTIVATE, "37d old (deactivate at 37d)")),
        (
            key(20, used_days_ago=12),
            PolicySettings(unused_after_days=10),
            Decision(Finding.UNUSED, "unused for 12d (limit 10d)"),
        ),
        (key(30), PolicySettings(), Decision(Finding.NOTIFY, "30d old (notify at 30d)")),
        (key(29.9), PolicySettings(), Decision(Finding.OK, "29d old")),
    ],
)
def test_every_decision_says_why(k: AccessKey, policy: PolicySettings, decision: Decision) -> None:
    audited = classify(k, NOW, policy)
    assert audited == AuditedKey(key=k, age_days=audited.age_days, decision=decision)
    assert audited.age_days == age_in_days(k.created, NOW)
    assert classify_all([k, k], NOW, policy) == [audited, audited]


def test_age_counts_whole_days_down_even_for_a_key_from_the_future() -> None:
    assert age_in_days(NOW - timedelta(days=1, hours=23), NOW) == 1
    assert age_in_days(NOW + timedelta(hours=1), NOW) == -1


# -- store paths ---------------------------------------------------------------------------


def test_a_bad_template_is_a_config_error_that_quotes_it() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("rotate.path 'a/{nope}' is not a valid template ('nope')")
    ):
        render("a/{nope}", account="1", user="u", store="vault")
    with pytest.raises(ConfigError, match=re.escape("rotate.path 'a/{' is not a valid template (")):
        require_user_placeholder("a/{", "why")


def test_vault_paths_lose_only_their_slashes() -> None:
    assert render("X/{user}/", account="1", user="alice", store="vault") == "X/alice"
    assert render("/{user}X", account="1", user="alice", store="vault") == "aliceX"


def test_a_refused_path_says_what_and_how_to_fix_it() -> None:
    with pytest.raises(BadInputError) as caught:
        render("a/{user}", account="1", user="..", store="vault")
    assert str(caught.value) == (
        "IAM user '..': store path 'a/..' from template 'a/{user}' is refused: segment '..'"
        " would make Vault resolve another path; nothing was written (rename the user or"
        " change rotate.path)"
    )


@pytest.mark.parametrize(
    ("path", "store", "problem"),
    [
        ("", "vault", "it is empty"),
        ("a" * 512, "secretsmanager", None),
        ("a" * 513, "secretsmanager", "Secrets Manager names are at most 512 characters"),
        (
            "a b!c",
            "secretsmanager",
            "Secrets Manager names allow only A-Za-z0-9/_+=.@- (found ' ', '!')",
        ),
        ("a?b#", "vault", "Vault would reinterpret '#', '?'"),
        ("a//b", "secretsmanager", "it has an empty segment (//, or a leading or trailing /)"),
        ("a/./b", "secretsmanager", "segment '.' would make Secrets Manager resolve another path"),
    ],
)
def test_path_problems_name_the_store_and_the_characters(
    path: str, store: str, problem: str | None
) -> None:
    assert path_problem(path, store) == problem  # type: ignore[arg-type]


# -- enrollment and trust: the bytes a seal covers ------------------------------------------


def test_the_sealed_message_is_length_prefixed_fields_in_order() -> None:
    assert message("p", "alice", "", "xyz") == b"1:p5:alice0:3:xyz"
    enrollment = Enrollment("alice", "vault", "kv/alice", datetime.fromtimestamp(100, tz=UTC))
    assert sealed_text(enrollment, "123") == (
        b"18:keyturn-enrollment5:alice3:1238:kv/alice14:v2:vault:100:0"
    )
    raised = replace(enrollment, generation=Generation(12, "beef"))
    assert sealed_text(raised, "123") == (
        b"18:keyturn-enrollment5:alice3:1238:kv/alice20:v2:vault:100:12.beef"
    )
    # a v1 record (before generations) is checked against the text it was sealed with
    assert sealed_payload("alice", "123", "kv/alice", "v1:vault:100") == (
        b"18:keyturn-enrollment5:alice3:1238:kv/alice12:v1:vault:100"
    )
    assert generation_text("123", Generation(12, "beef")) == (
        b"29:keyturn-enrollment-generation3:1237:12.beef"
    )
    assert generation_text("123", INITIAL) == b"29:keyturn-enrollment-generation3:1231:0"


def test_seal_text_keeps_every_character_of_the_mac() -> None:
    assert encode_tag(b"\x00\x00\x17") == "AAAX"
    assert encode_tag(b"a") == "YQ"
    assert decode_tag("YQ") == b"a"
    assert decode_tag("YWI") == b"ab"


@pytest.mark.parametrize(
    "text",
    [
        "v2:vault:100",  # v2 names its generation
        "v1:consul:100",
        "v2:consul:100:0",
        "v1:vault",
        "v1:vault:soon",
        "v2:vault:soon:0",
        "v1:vault:100:x",
        "v1:vault:100:0",  # v1 never names one
        "v2:vault:100:0:x",
        "v2:vault:100:01.abcd",  # not a generation keyturn writes
        "v2:vault:0100:0",  # not the canonical text of what it claims
        "v2:vault:+100:0",
        "v3:vault:100:0",
    ],
)
def test_only_v1_and_v2_records_of_a_known_store_are_read(text: str) -> None:
    with pytest.raises(BadInputError):
        parse("alice", text, "kv/alice")


@pytest.mark.parametrize(
    ("text", "generation"),
    [
        ("v1:vault:100", INITIAL),
        ("v2:vault:100:0", INITIAL),
        ("v2:secretsmanager:100:1.abcd", Generation(1, "abcd")),
        ("v2:vault:100:7.0123456789abcdef", Generation(7, "0123456789abcdef")),
    ],
)
def test_records_read_with_their_generation(text: str, generation: Generation) -> None:
    store = text.split(":")[1]
    assert parse("alice", text, "kv/alice") == Enrollment(
        "alice", store, "kv/alice", datetime.fromtimestamp(100, tz=UTC), generation
    )


@pytest.mark.parametrize(
    ("text", "generation"),
    [
        ("0", INITIAL),
        ("1.abcd", Generation(1, "abcd")),  # the shortest nonce
        ("1." + "f" * 32, Generation(1, "f" * 32)),  # the longest
        ("9" * 18 + ".0a1b", Generation(10**18 - 1, "0a1b")),  # the longest number
        ("10.abcd", Generation(10, "abcd")),  # a 0 inside the number
        # refused: what keyturn never writes
        ("9" * 19 + ".abcd", None),
        ("1.abc", None),
        ("1." + "f" * 33, None),
        ("0.abcd", None),  # generation 0 has no nonce
        ("00", None),
        ("1abcd", None),  # no dot
        ("1.abcg", None),  # a nonce is lower-case hex
        ("²." + "abcd", None),  # a digit, but not an ASCII one
    ],
)
def test_generation_edges(text: str, generation: Generation | None) -> None:
    assert parse_generation(text) == generation


def test_a_generation_is_written_as_it_is_read() -> None:
    assert Generation(0, "") == INITIAL
    assert INITIAL.text == "0"
    assert Generation(0, "abcd").text == "0"
    assert Generation(3, "ab12").text == "3.ab12"
    assert Generation(3, "ab12").after("cd34") == Generation(4, "cd34")
    assert INITIAL.after("cd34").text == "1.cd34"


def test_a_stale_or_lowered_generation_says_which_word_for_word() -> None:
    one, sibling, two = Generation(1, "aaaa"), Generation(1, "bbbb"), Generation(2, "cccc")
    assert staleness("alice", two, two) is None
    older = staleness("alice", one, two)
    assert older == StaleEnrollment("alice", "generation 1 < 2")
    assert older.line() == (
        "alice: ignored an enrollment sealed before the last unenroll (generation 1 < 2); "
        "re-run `keyturn enroll alice` if it should be enrolled"
    )
    assert staleness("alice", sibling, one) == StaleEnrollment(
        "alice", "generation 1.bbbb, replaced by 1.aaaa in a concurrent unenroll"
    )
    newer = staleness("alice", two, one)
    assert type(newer) is Rejected
    assert newer == Rejected(
        "alice",
        "sealed at enrollment generation 2, later than the current 1: the generation was "
        "lowered since, so no enrollment in this account is believed until an operator "
        "re-runs `keyturn unenroll` or checks who tagged the key",
    )
    assert lowered(two, one) == newer.reason


@pytest.mark.parametrize("text", ["v1:" + "x" * 100, "v1:vault:" + "9" * 100])
def test_an_unreadable_enrollment_quotes_60_characters(text: str) -> None:
    with pytest.raises(BadInputError) as caught:
        parse("alice", text, "kv/alice")
    assert str(caught.value) == f"alice: unreadable enrollment record {text[:60]!r}"


def test_a_rejected_record_names_the_user_once() -> None:
    line = Rejected("alice", "alice: bad seal").line()
    assert line == "alice: ignored keyturn state that keyturn did not write (bad seal)"
    assert Rejected("alice", "bad seal: alice: ").line() == (
        "alice: ignored keyturn state that keyturn did not write (bad seal: alice: )"
    )


# -- retirement ----------------------------------------------------------------------------

PROMOTED = NOW - timedelta(hours=2)


def test_a_use_before_the_promotion_is_no_consumer_still_on_the_old_key() -> None:
    used_before = LastUse(PROMOTED - timedelta(hours=1), "s3", "eu-west-1")
    decision = decide(PROMOTED, used_before, NOW, QuietPolicy())
    assert decision.verdict is Verdict.WAIT
    assert decision.reason == (
        "old key not used since promotion; retired once quiet for 1680 min (in 1560 min), waiting"
    )


def test_retiring_says_how_long_it_was_quiet() -> None:
    decision = decide(PROMOTED, None, NOW, QuietPolicy(quiet=timedelta(hours=1)))
    assert decision.reason == "old key not used for 120 min (quiet period 60 min): retiring it"


def test_the_bound_names_itself() -> None:
    use = LastUse(NOW - timedelta(minutes=5), "s3", "eu-west-1")
    policy = QuietPolicy(max_overlap=timedelta(hours=1))
    escalated = decide(PROMOTED, use, NOW, policy)
    assert escalated.reason == (
        "old key still used by s3 in eu-west-1 5 min ago; max overlap of 60 min reached: NOT"
        " deactivating it (on_max_overlap = escalate): move that consumer to the new key, or"
        " deactivate the old key by hand"
    )
    forced = decide(
        PROMOTED, use, NOW, QuietPolicy(max_overlap=timedelta(hours=1), on_max="deactivate")
    )
    assert forced.reason == (
        "old key still used by s3 in eu-west-1 5 min ago; max overlap of 60 min reached:"
        " deactivating it anyway"
    )
