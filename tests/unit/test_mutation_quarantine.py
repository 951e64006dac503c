"""The exposed-key response's pure decisions (keyturn.domain.quarantine), tested where
mutation testing found them loose (issue 18): an event can only narrow what is done (a
property over generated events), the event's and the key id's edges as tables (the 50-entity
cap, the key id's length), the refusals' words, the sealed marks' text form, the rotation
choice and who is told."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.errors import BadInputError
from keyturn.domain.quarantine import (
    CONTROL_WORDS,
    ENVELOPE,
    INCIDENT_TAG_PREFIX,
    MAX_ENTITIES,
    ROTATION_WORDS,
    STEP_NAMES,
    Action,
    HealthRequest,
    IncidentMarks,
    Step,
    actions_of,
    incident_tag,
    parse_health_event,
    parse_key_id,
    recipients,
    rotation_choice,
    sealed_message,
)
from keyturn.domain.trust import QUARANTINE_PURPOSE, message

ACCOUNT = "123456789012"
KEY = "AKIAIOSFODNN7EXAMPLE"
KEY2 = "AKIAI44QH8DHBEXAMPLE"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "health_credentials_exposed.json"
SAMPLE = json.loads(FIXTURE.read_text())
SAMPLE.pop("_source")


def sample(*key_ids: object, account: str = ACCOUNT) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(SAMPLE)
    event["account"] = account
    event["detail"]["affectedEntities"] = [{"entityValue": k} for k in key_ids]
    return event


def refusal(event: Any) -> str:
    with pytest.raises(BadInputError) as refused:
        parse_health_event(event)
    return str(refused.value)


# -- the event: refusals, word for word ------------------------------------------------------


def test_the_sample_is_read_whole() -> None:
    assert parse_health_event(sample(KEY, "nope", KEY2, KEY)) == HealthRequest(
        key_ids=(KEY, KEY2),
        account=ACCOUNT,
        event_arn="arn:aws:health:us-east-1::event/AWS_RISK_CREDENTIALS_EXPOSED_XXXXXXXXXXXXXXXXX",
        rejected=("'nope' is not an IAM access key id (AKIA...)",),
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (None, "exposed-key event must be a JSON object"),
        (
            lambda e: e.update(source="my.app"),
            "exposed-key event: expected source 'aws.health' and detail-type 'AWS Health Event',"
            " got 'my.app' / 'AWS Health Event'",
        ),
        (
            lambda e: e.update({"detail-type": "X"}),
            "exposed-key event: expected source 'aws.health' and detail-type 'AWS Health Event',"
            " got 'aws.health' / 'X'",
        ),
        (
            lambda e: e.update(zeta=1, alpha=2),
            "exposed-key event: unknown top-level field(s) 'alpha', 'zeta'",
        ),
        (lambda e: e.update(detail="x"), "exposed-key event: detail must be a JSON object"),
        (
            lambda e: e["detail"].update(service="EC2"),
            "exposed-key event: expected service RISK and eventTypeCode "
            "AWS_RISK_CREDENTIALS_EXPOSED, got 'EC2' / 'AWS_RISK_CREDENTIALS_EXPOSED': "
            "not answered",
        ),
        (
            lambda e: e["detail"].update(eventTypeCode="OTHER"),
            "exposed-key event: expected service RISK and eventTypeCode "
            "AWS_RISK_CREDENTIALS_EXPOSED, got 'RISK' / 'OTHER': not answered",
        ),
        (
            lambda e: e["detail"].update(Force=True, delete=True),
            "exposed-key event: field(s) 'Force', 'delete' would steer the response; an event "
            "can only name keys to contain: refused, nothing done",
        ),
        (
            lambda e: e.update(account=123456789012),
            "exposed-key event: account must be a 12-digit AWS account id",
        ),
        (
            lambda e: e.update(account="1234567890123"),
            "exposed-key event: account must be a 12-digit AWS account id",
        ),
        (
            lambda e: e["detail"].update(affectedAccount="210987654321"),
            "exposed-key event: affectedAccount '210987654321' is not the event's account "
            "123456789012 (an Organization view event): not answered here",
        ),
        (
            lambda e: e["detail"].update(affectedAccount=None),
            "exposed-key event: affectedAccount 'None' is not the event's account "
            "123456789012 (an Organization view event): not answered here",
        ),
        (
            lambda e: e["detail"].pop("affectedEntities"),
            "exposed-key event: detail.affectedEntities must be a non-empty list",
        ),
        (
            lambda e: e["detail"].update(affectedEntities=[{"entityValue": KEY}] * 51),
            "exposed-key event: 51 affected entities (at most 50)",
        ),
    ],
)
def test_refusals_word_for_word(change: Any, said: str) -> None:
    if change is None:
        assert refusal([sample(KEY)]) == said
        return
    event = sample(KEY)
    change(event)
    assert refusal(event) == said


def test_the_entity_cap_edge() -> None:
    assert MAX_ENTITIES == 50
    keys = [f"AKIA{i:016d}" for i in range(MAX_ENTITIES)]
    assert parse_health_event(sample(*keys)).key_ids == tuple(keys)
    assert "51 affected entities" in refusal(sample(*keys, KEY))


def test_only_the_first_five_unknown_fields_are_named() -> None:
    event = sample(KEY)
    event.update({f"x{i}": i for i in range(7)})
    assert refusal(event).endswith("'x0', 'x1', 'x2', 'x3', 'x4'")


def test_the_envelope_and_steering_words() -> None:
    assert {"version", "id", "detail-type", "source", "account", "time", "region"} < ENVELOPE
    assert {"resources", "detail"} < ENVELOPE
    assert len(ENVELOPE) == 9
    for word in CONTROL_WORDS:
        event = sample(KEY)
        event["detail"][word.upper()] = False
        assert "would steer" in refusal(event)


def test_a_matching_affected_account_is_accepted() -> None:
    event = sample(KEY)
    event["detail"]["affectedAccount"] = ACCOUNT
    assert parse_health_event(event).key_ids == (KEY,)


@pytest.mark.parametrize(
    ("arn", "kept"),
    [("arn:aws:health:x", "arn:aws:health:x"), ("urn:x", None), (7, None), (None, None)],
)
def test_only_an_arn_is_kept_as_the_event_arn(arn: object, kept: str | None) -> None:
    event = sample(KEY)
    event["detail"]["eventArn"] = arn
    assert parse_health_event(event).event_arn == kept


def test_entities_that_are_not_objects_are_rejected_one_line_each() -> None:
    event = sample(KEY)
    event["detail"]["affectedEntities"] += ["AKIAIOSFODNN7EXAMPLF", {"value": KEY2}]
    request = parse_health_event(event)
    assert request.key_ids == (KEY,)
    assert request.rejected == (
        "an access key id must be a string",
        "an access key id must be a string",
    )


# -- the property: an event only narrows ----------------------------------------------------

entity_values = st.one_of(
    st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True),
    st.from_regex(r"ASIA[A-Z0-9]{16}", fullmatch=True),
    st.text(max_size=30),
    st.integers(),
    st.none(),
)
extra_detail = st.dictionaries(
    st.sampled_from([*sorted(CONTROL_WORDS), "users", "Delete", "note", "startTime", "scope"]),
    st.one_of(st.booleans(), st.text(max_size=5), st.lists(st.text(max_size=5), max_size=2)),
    max_size=3,
)


@given(st.lists(entity_values, min_size=1, max_size=8), extra_detail)
def test_an_event_can_only_name_keys_of_its_account_to_contain(
    values: list[object], detail: dict[str, object]
) -> None:
    event = sample(*values)
    event["detail"].update(detail)
    try:
        request = parse_health_event(event)
    except BadInputError:
        return
    # accepted: nothing in it but keys the event named, valid user key ids, of its account
    assert not any(str(k).lower() in CONTROL_WORDS for k in detail)
    assert request.account == ACCOUNT
    named = [v for v in values if isinstance(v, str)]
    assert set(request.key_ids) <= set(named)
    assert all(parse_key_id(k) == k for k in request.key_ids)
    assert len(request.key_ids) == len(set(request.key_ids))
    assert len(request.rejected) == sum(
        1 for v in values if not (isinstance(v, str) and v in request.key_ids)
    )


# -- key ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("AKIA" + "A" * 12, True),  # 16 characters: IAM's shortest
        ("AKIA" + "A" * 11, False),
        ("AKIA" + "Z9" * 62, True),  # 128: IAM's longest
        ("AKIA" + "A" * 125, False),
        ("AKIA" + "a" * 16, False),
        ("AKIA" + "A" * 15 + "-", False),
        (" AKIA" + "A" * 16, False),
        ("AKIA" + "A" * 16 + "\n", False),
        ("AKIB" + "A" * 16, False),
    ],
)
def test_key_id_edges(text: str, ok: bool) -> None:
    if ok:
        assert parse_key_id(text) == text
    else:
        with pytest.raises(BadInputError, match="is not an IAM access key id"):
            parse_key_id(text)


def test_key_id_refusals_word_for_word() -> None:
    with pytest.raises(BadInputError) as refused:
        parse_key_id("ASIA" + "B" * 16)
    assert str(refused.value) == (
        "ASIABBBBBBBBBBBBBBBB is a temporary (STS) key id: it cannot be deactivated; revoke the "
        "role's sessions instead (IAM console: Revoke active sessions)"
    )
    with pytest.raises(BadInputError) as refused:
        parse_key_id("ASIA" + "B" * 11)
    assert str(refused.value) == "'ASIABBBBBBBBBBB' is not an IAM access key id (AKIA...)"
    with pytest.raises(BadInputError) as refused:
        parse_key_id(b"AKIA")
    assert str(refused.value) == "an access key id must be a string"


# -- the sealed marks -----------------------------------------------------------------------


def test_marks_encode_in_step_order_with_the_rotation_last() -> None:
    marks = (
        IncidentMarks()
        .mark(Step.NOTIFIED, T0 + timedelta(seconds=3))
        .mark(Step.OPENED, T0)
        .mark(Step.ROTATED, T0 + timedelta(seconds=2), rotation="rotated", new_key_id=KEY2)
    )
    epoch = int(T0.timestamp())
    assert marks.encode() == f"v1 o={epoch} r={epoch + 2} n={epoch + 3} rot=rotated k={KEY2}"
    assert IncidentMarks.decode(marks.encode()) == marks
    assert IncidentMarks().encode() == "v1"
    assert IncidentMarks.decode("v1") == IncidentMarks()


def test_a_step_keeps_its_first_time() -> None:
    marks = IncidentMarks().mark(Step.OPENED, T0).mark(Step.OPENED, T0 + timedelta(hours=1))
    assert marks.at(Step.OPENED) == T0
    assert marks.has(Step.OPENED)
    assert not marks.has(Step.DELETED)
    assert marks.at(Step.DELETED) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v2 o=1",
        "o=1",
        "v1 o=soon",
        "v1 q=1",
        "v1 rot=maybe",  # not a rotation word
        "v1 k=ASIAIOSFODNN7EXAMPLE",  # not a user key id
        "v1 o",
        "v1  o=1",
    ],
)
def test_marks_decode_refuses_other_texts(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the adapter turns any into a Rejected)
        IncidentMarks.decode(text)


def test_the_version_refusal_says_what_it_expected() -> None:
    with pytest.raises(ValueError, match=r"^not a v1 incident record$"):
        IncidentMarks.decode("v0 o=1")


def test_every_rotation_word_round_trips() -> None:
    for word in ROTATION_WORDS:
        marks = IncidentMarks().mark(Step.ROTATED, T0, rotation=word)
        assert IncidentMarks.decode(marks.encode()).rotation == word


def test_the_incident_tag_and_what_its_seal_covers() -> None:
    assert INCIDENT_TAG_PREFIX == "keyturn:incident:"
    assert incident_tag(KEY) == f"keyturn:incident:{KEY}"
    assert sealed_message(ACCOUNT, "alice", KEY, "v1 o=1") == message(
        QUARANTINE_PURPOSE, "alice", ACCOUNT, KEY, "v1 o=1"
    )
    assert sealed_message(ACCOUNT, "alice", KEY, "v1") != sealed_message(
        "210987654321", "alice", KEY, "v1"
    )
    assert sealed_message(ACCOUNT, "alice", KEY, "v1") != sealed_message(ACCOUNT, "bob", KEY, "v1")
    assert sealed_message(ACCOUNT, "alice", KEY, "v1") != sealed_message(
        ACCOUNT, "alice", KEY2, "v1"
    )


# -- decisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enrolled", "served", "choice"),
    [
        (None, KEY, "untrusted"),
        (False, KEY, "not-enrolled"),
        (True, KEY2, "not-served"),
        (True, None, "not-served"),
        (True, KEY, "rotate"),
    ],
)
def test_rotation_choice(enrolled: bool | None, served: str | None, choice: str) -> None:
    assert rotation_choice(enrolled, served, KEY) == choice


@pytest.mark.parametrize(
    ("contact", "security", "cap", "expected"),
    [
        ("a@x.org B@x.org", "sec@x.org", 2, (("a@x.org", "b@x.org", "sec@x.org"), 0)),
        ("a@x.org b@x.org c@x.org", None, 2, (("a@x.org", "b@x.org"), 1)),
        ("a@x.org bad", "SEC@x.org", 5, (("a@x.org", "sec@x.org"), 1)),
        ("a@x.org b@x.org c@x.org", None, 3, (("a@x.org", "b@x.org", "c@x.org"), 0)),
        ("", "sec@x.org", 2, (("sec@x.org",), 0)),
        ("", "not an address", 2, ((), 0)),
        ("Sec@X.org", "sec@x.org", 2, (("sec@x.org",), 0)),  # once, whatever its case
        ("", "", 2, ((), 0)),
    ],
)
def test_recipients(
    contact: str, security: str | None, cap: int, expected: tuple[tuple[str, ...], int]
) -> None:
    assert recipients({"Contact": contact}, "Contact", security, cap) == expected


def test_recipients_read_the_named_tag_only() -> None:
    assert recipients({"Owner": "a@x.org"}, "Contact", None, 2) == ((), 0)


def test_actions_rebuild_the_record_in_step_order() -> None:
    marks = IncidentMarks()
    for index, step in enumerate(reversed(list(Step))):
        marks = marks.mark(step, T0 + timedelta(seconds=index))
    marks = marks.mark(Step.ROTATED, T0, rotation="rotated", new_key_id=KEY2)
    found = actions_of(marks, KEY)
    assert [a.step for a in found] == [s.name.lower() for s in Step]
    assert found[0] == Action("opened", T0 + timedelta(seconds=6), STEP_NAMES[Step.OPENED])
    assert found[1].detail == f"{KEY} set Inactive (kept as evidence, not deleted)"
    assert found[2].detail == f"rotated: the store serves a new, verified key ({KEY2})"
    assert [a.detail for a in found[3:]] == [
        "CloudTrail activity summarised",
        "people told",
        "incident record written",
        "key deleted",
    ]
    assert found[0].to_dict() == {
        "step": "opened",
        "at": "2026-03-01T12:00:06+00:00",
        "detail": "incident opened (sealed record written before any change)",
    }


def test_an_unrotated_record_says_why_or_names_the_step() -> None:
    plain = IncidentMarks().mark(Step.ROTATED, T0)
    assert actions_of(plain, KEY)[0].detail == "consumers' store"
    said = IncidentMarks().mark(Step.ROTATED, T0, rotation="not-served")
    assert actions_of(said, KEY)[0].detail == (
        "not rotated: the store does not serve the exposed key"
    )
    assert actions_of(IncidentMarks(), KEY) == []
