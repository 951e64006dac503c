"""Fuzzing the inputs that come from outside keyturn (invariant 7): Lambda events, IAM tag
values (state tags, contact addresses), lease ids, TTL strings, username templates, role
fields. Each is accepted, or rejected with keyturn's own error and one line of text; no
other exception escapes. (Config files and credential reports: tests/unit/test_fuzz_inputs.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyturn.domain.enforcement import KeyRecord, MalformedRecordError, recipients_of
from keyturn.domain.errors import KeyturnError
from keyturn.domain.leases import (
    NameParts,
    Role,
    check_prefix,
    check_template,
    parse_duration,
    parse_lease_id,
    render_name,
)
from keyturn.handlers.enforce import parse_event

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
events = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "source": st.sampled_from(["aws.events", "aws.s3", ""]) | st.text(max_size=5),
            "detail-type": st.sampled_from(["Scheduled Event", "x"]),
            "detail": json_values | st.fixed_dictionaries({"dry_run": json_values}),
        }
    ),
)
# Text as IAM tags allow it (letters, digits, spaces, _ . : / = + - @), plus anything.
tag_text = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(list("@.:/=+-_ ")), max_size=60
)


def outcome(action: Callable[[], object]) -> str:
    """'accepted', or keyturn's one-line error text; any other exception fails the test."""
    try:
        action()
    except (KeyturnError, MalformedRecordError) as exc:  # the planner reports the latter
        text = str(exc)
        assert text.strip(), "an error with no text"
        assert "Traceback" not in text
        return text
    return "accepted"


@FUZZ
@given(events)
def test_enforce_lambda_events(event: object) -> None:
    result = outcome(lambda: parse_event(event))
    if result == "accepted":
        assert parse_event(event) in (None, True, False)


@FUZZ
@given(tag_text)
def test_state_tag_values(value: str) -> None:
    result = outcome(lambda: KeyRecord.decode(value))
    if result == "accepted":
        decoded = KeyRecord.decode(value)
        assert KeyRecord.decode(decoded.encode()) == decoded  # what we write, we read back


@FUZZ
@given(tag_text, st.sampled_from([None, "secops@example.com"]))
def test_contact_tag_values(value: str, fallback: str | None) -> None:
    to, warnings = recipients_of({"Contact": value}, "Contact", fallback)
    for address in to:
        assert " " not in address
        assert address.count("@") == 1
    assert all(isinstance(warning, str) for warning in warnings)


@FUZZ
@given(st.text(max_size=80) | st.from_regex(r"aws/creds/[a-z]{1,5}/[A-Za-z0-9]{0,30}"))
def test_lease_ids_and_prefixes(text: str) -> None:
    outcome(lambda: parse_lease_id(text))
    outcome(lambda: check_prefix(text))


@FUZZ
@given(st.text(max_size=20) | st.from_regex(r"[0-9]{1,12}(ms|s|m|h|d)?", fullmatch=True))
@example("1000000000D")  # found by this test: OverflowError escaped, now a clear error
@example("²")  # "²".isdigit() is True, int("²") is a ValueError
def test_ttl_strings(text: str) -> None:
    result = outcome(lambda: parse_duration(text, "ttl"))
    if result == "accepted":
        assert parse_duration(text, "ttl") > timedelta(0)


PARTS = NameParts("keyturn", "alice", "dev", 1_700_000_000, "a" * 40)


@FUZZ
@given(
    st.text(max_size=80)
    | st.lists(
        st.sampled_from(
            [
                "{{.DisplayName}}",
                "{{.RoleName}}",
                "{{.UnixTime}}",
                "{{.Random 8}}",
                "-",
                "x",
                "{{",
                "}}",
                "{{.Nope}}",
                "{{.Random 999}}",
                "{{ printf }}",
                "@",
            ]
        ),
        max_size=8,
    ).map("".join)
)
def test_username_templates(template: str) -> None:
    if outcome(lambda: check_template(template)) == "accepted":
        name = outcome(lambda: render_name(template, PARTS))
        if name != "accepted":
            return
        rendered = render_name(template, PARTS)
        assert 1 <= len(rendered) <= 64


@FUZZ
@given(
    name=st.text(max_size=20),
    kind=st.sampled_from(["iam_user", "assumed_role", "federation_token", "root", ""]),
    ttl=st.text(max_size=6),
    doc=st.none() | st.text(max_size=30) | st.just('{"Version": "2012-10-17"}'),
    tags=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
def test_role_fields(name: str, kind: str, ttl: str, doc: str | None, tags: dict[str, str]) -> None:
    outcome(
        lambda: Role.build(
            name,
            credential_type=kind,
            policy_document=doc,
            iam_groups=["g"],
            iam_tags=tags,
            default_ttl=ttl or None,
        )
    )


@pytest.mark.parametrize("event", [None, [], "x", 3, {"source": "aws.events"}])
def test_a_bad_event_is_a_keyturn_error(event: object) -> None:
    assert outcome(lambda: parse_event(event)) != "accepted"
