"""The broker's pure rules, tested where mutation testing found them loose (issue 18):

- broker_proof: any change to a bound value (the STS host, the server id, the request hash,
  the body) is refused, as is a proof that does not sign one of them, or one signed too long
  ago (properties, and the edges as tables: header count and size, freshness, the messages);
- authorization: no principal outside the patterns is allowed, admins only over their roles
  (properties), the pattern language's edges (`*`, `?`, length, account) as tables.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.authorization import (
    Caller,
    CallerKind,
    Verdict,
    canonical_caller,
    check_patterns,
    matches,
    may_issue,
    may_manage,
)
from keyturn.domain.broker_proof import (
    AMZ_DATE,
    CONTENT_TYPE,
    GET_CALLER_IDENTITY,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MUST_SIGN,
    REQUEST_HASH_HEADER,
    SERVER_ID_HEADER,
    Proof,
    ProofError,
    check_proof,
    parse_proof,
    request_digest,
)
from keyturn.domain.errors import BadInputError

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SIGNED = "content-type;host;x-amz-date;x-keyturn-request-sha256;x-keyturn-server-id"
DIGEST = request_digest("POST", "/v1/issue", "{}")
HOST = "sts.example"
SERVER = "broker-1"
AGE = timedelta(seconds=300)


def headers(*, signed: str | None = SIGNED, **changes: str | None) -> dict[str, str]:
    found: dict[str, str | None] = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/sts/aws4_request, "
        f"SignedHeaders={signed or SIGNED}, Signature=abc",
        "Host": HOST,
        "X-Amz-Date": NOW.strftime(AMZ_DATE),
        "X-Keyturn-Server-ID": SERVER,
        "X-Keyturn-Request-SHA256": DIGEST,
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def check(proof_headers: dict[str, str], body: str = GET_CALLER_IDENTITY, **kw: Any) -> None:
    check_proof(
        parse_proof({"headers": proof_headers, "body": body}),
        server_id=kw.get("server_id", SERVER),
        digest=kw.get("digest", DIGEST),
        sts_host=kw.get("sts_host", HOST),
        now=kw.get("now", NOW),
        max_age=kw.get("max_age", AGE),
    )


def refusal(proof_headers: dict[str, str], body: str = GET_CALLER_IDENTITY, **kw: Any) -> str:
    with pytest.raises(ProofError) as refused:
        check(proof_headers, body, **kw)
    return str(refused.value)


# -- the constants the client and the broker share ------------------------------------------


def test_the_wire_constants() -> None:
    assert SERVER_ID_HEADER == "X-Keyturn-Server-ID"
    assert REQUEST_HASH_HEADER == "X-Keyturn-Request-SHA256"
    assert GET_CALLER_IDENTITY == "Action=GetCallerIdentity&Version=2011-06-15"
    assert CONTENT_TYPE == "application/x-www-form-urlencoded; charset=utf-8"
    assert MUST_SIGN == ("host", "x-amz-date", "x-keyturn-server-id", "x-keyturn-request-sha256")
    assert (MAX_HEADERS, MAX_HEADER_VALUE, AMZ_DATE) == (20, 4096, "%Y%m%dT%H%M%SZ")


def test_the_request_digest_is_the_sha256_of_method_path_and_text() -> None:
    expected = hashlib.sha256(b"POST\n/v1/issue\n{}").hexdigest()
    assert request_digest("POST", "/v1/issue", "{}") == expected
    assert request_digest("post", "/v1/issue", "{}") == expected
    assert request_digest("POST", "/v1/renew", "{}") != expected
    assert request_digest("POST", "/v1/issue", "{ }") != expected


# -- a good proof passes; any change to a bound value is refused ----------------------------


def test_the_good_proof_passes_with_header_names_in_any_case() -> None:
    check(headers())
    check({k.upper(): v for k, v in headers().items()})
    check({k.lower(): v for k, v in headers().items()})


BOUND = {
    "Host": "STS host",
    "X-Keyturn-Server-ID": "another server",
    "X-Keyturn-Request-SHA256": "different request",
}


@given(
    field=st.sampled_from(sorted(BOUND)),
    value=st.text(
        alphabet=st.characters(blacklist_characters="\r\n\0", codec="utf-8"),
        max_size=70,
    ),
)
def test_any_change_to_a_bound_header_is_refused(field: str, value: str) -> None:
    if value == headers()[field]:
        return
    with pytest.raises(ProofError, match=BOUND[field]):
        check(headers(**{field: value}))
    with pytest.raises(ProofError, match=BOUND[field]):
        check(headers(**{field: None}))


@given(st.text(max_size=60))
def test_any_other_body_is_refused(body: str) -> None:
    if body == GET_CALLER_IDENTITY:
        return
    with pytest.raises(ProofError, match="exactly sts:GetCallerIdentity"):
        check(headers(), body)


@given(
    host=st.sampled_from(["sts.example", "sts.other"]),
    server=st.sampled_from(["broker-1", "broker-2"]),
    digest=st.sampled_from([DIGEST, request_digest("POST", "/v1/revoke", "{}")]),
    skew=st.integers(-1000, 1000),
)
def test_a_proof_passes_only_for_its_own_host_server_request_and_time(
    host: str, server: str, digest: str, skew: int
) -> None:
    """The broker's side of each binding: the same proof, checked by brokers that differ."""
    ok = (host, server, digest) == (HOST, SERVER, DIGEST) and abs(skew) <= 300
    kw = {"sts_host": host, "server_id": server, "digest": digest}
    kw["now"] = NOW + timedelta(seconds=skew)  # type: ignore[assignment]
    if ok:
        check(headers(), **kw)
    else:
        with pytest.raises(ProofError):
            check(headers(), **kw)


@pytest.mark.parametrize("dropped", MUST_SIGN)
def test_each_bound_header_must_be_signed(dropped: str) -> None:
    signed = ";".join(name for name in SIGNED.split(";") if name != dropped)
    assert refusal(headers(signed=signed)) == (f"proof: {dropped} must be among the signed headers")


def test_every_unsigned_header_is_named() -> None:
    assert refusal(headers(signed="content-type;host")) == (
        "proof: x-amz-date, x-keyturn-server-id, x-keyturn-request-sha256 must be among the "
        "signed headers"
    )


@pytest.mark.parametrize(
    "authorization",
    [
        # the names must be SignedHeaders' own, not a substring elsewhere in the header
        f"AWS4-HMAC-SHA256 Credential=x/{SIGNED}, SignedHeaders=host, Signature=a",
        f"AWS4-HMAC-SHA256 SignedHeaders=host, Signature={SIGNED}",
        f"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=a;{SIGNED}",
        f"AWS4-HMAC-SHA256 Credential=x, Signed={SIGNED}, Signature=a",
        f"AWS4-HMAC-SHA256 SignedHeaders={SIGNED.upper()}, Signature=a",
        # read where the header first names them
        f"AWS4-HMAC-SHA256 SignedHeaders=host, Signature=a, SignedHeaders={SIGNED}",
    ],
)
def test_the_signed_list_is_read_from_signed_headers_only(authorization: str) -> None:
    assert "must be among the signed headers" in refusal(headers(Authorization=authorization))


def test_signed_headers_may_come_last() -> None:
    last = f"AWS4-HMAC-SHA256 Credential=x, Signature=a, SignedHeaders={SIGNED}"
    check(headers(Authorization=last))


@pytest.mark.parametrize(
    ("authorization", "ok"),
    [
        (None, False),
        ("", False),
        ("AWS4-HMAC-SHA256", False),  # no space: nothing after the scheme
        (f"aws4-hmac-sha256 SignedHeaders={SIGNED}", False),
        (f" AWS4-HMAC-SHA256 SignedHeaders={SIGNED}", False),
        (f"AWS4-HMAC-SHA256 SignedHeaders={SIGNED}", True),
    ],
)
def test_the_signature_scheme(authorization: str | None, ok: bool) -> None:
    proof = headers(Authorization=authorization)
    if ok:
        check(proof)
    else:
        assert refusal(proof) == "proof: not signed (no AWS4-HMAC-SHA256 Authorization header)"


def test_the_refusals_word_for_word() -> None:
    assert refusal(headers(), GET_CALLER_IDENTITY + "&x=1") == (
        "proof: the signed request must be exactly sts:GetCallerIdentity"
    )
    assert refusal(headers(Host="169.254.169.254")) == (
        "proof: signed for STS host '169.254.169.254'; this broker verifies at 'sts.example'"
    )
    assert refusal(headers(Host=None)) == (
        "proof: signed for STS host None; this broker verifies at 'sts.example'"
    )
    assert refusal(headers(**{"X-Keyturn-Server-ID": "b"})) == (
        "proof: made for another server (the X-Keyturn-Server-ID is not this broker's id)"
    )
    assert refusal(headers(**{"X-Keyturn-Request-SHA256": "0" * 64})) == (
        "proof: signed for a different request than this one"
    )
    assert refusal(headers(**{"X-Amz-Date": "2026-01-01T12:00:00Z" + "x" * 50})) == (
        "proof: X-Amz-Date '2026-01-01T12:00:00Z" + "x" * 20 + "' is not a timestamp"
    )
    assert refusal(headers(**{"X-Amz-Date": None})) == "proof: X-Amz-Date '' is not a timestamp"
    assert refusal(headers(), now=NOW + timedelta(seconds=301)) == (
        "proof: signed at 2026-01-01T12:00:00+00:00, more than 300s from the broker's clock "
        "(expired or clock skew)"
    )


@pytest.mark.parametrize(
    ("skew", "age", "ok"),
    [
        (timedelta(0), timedelta(0), True),
        (timedelta(seconds=1), timedelta(0), False),
        (timedelta(seconds=-1), timedelta(0), False),
        (timedelta(seconds=900), timedelta(seconds=900), True),
        (timedelta(seconds=901), timedelta(seconds=900), False),
        (timedelta(seconds=-900), timedelta(seconds=900), True),
        (timedelta(seconds=-901), timedelta(seconds=900), False),
        (timedelta(seconds=300, microseconds=1), AGE, False),
        (timedelta(seconds=-300, microseconds=-1), AGE, False),
    ],
)
def test_freshness_edges(skew: timedelta, age: timedelta, ok: bool) -> None:
    if ok:
        check(headers(), now=NOW + skew, max_age=age)
    else:
        assert "expired or clock skew" in refusal(headers(), now=NOW + skew, max_age=age)


def test_the_date_is_read_as_utc() -> None:
    later = NOW + timedelta(hours=5)
    check(headers(**{"X-Amz-Date": later.strftime(AMZ_DATE)}), now=later)


# -- parsing what the client sent -----------------------------------------------------------


def parse_refusal(data: Any) -> str:
    with pytest.raises(ProofError) as refused:
        parse_proof(data)
    return str(refused.value)


def test_header_count_and_size_edges() -> None:
    many = {f"h{i}": "v" for i in range(MAX_HEADERS)}
    assert parse_proof({"headers": many, "body": ""}).headers == many
    assert parse_refusal({"headers": {**many, "one-more": "v"}, "body": ""}) == (
        "proof: more than 20 headers"
    )
    big = {"h": "v" * MAX_HEADER_VALUE}
    assert parse_proof({"headers": big, "body": ""}).headers == big
    assert parse_refusal({"headers": {"h": "v" * (MAX_HEADER_VALUE + 1)}, "body": ""}) == (
        "proof: header 'h' is malformed"
    )


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (None, "proof: expected an object with headers and body"),
        ([("headers", {})], "proof: expected an object with headers and body"),
        ({"body": ""}, "proof: expected headers (an object) and body (a string)"),
        ({"headers": {}}, "proof: expected headers (an object) and body (a string)"),
        ({"headers": {}, "body": b""}, "proof: expected headers (an object) and body (a string)"),
        ({"headers": {"a": 1}, "body": ""}, "proof: header names and values must be strings"),
        ({"headers": {1: "a"}, "body": ""}, "proof: header names and values must be strings"),
        ({"headers": {"a\r": "b"}, "body": ""}, "proof: header 'a\\r' is malformed"),
        ({"headers": {"a": "b\nc"}, "body": ""}, "proof: header 'a' is malformed"),
        ({"headers": {"a": "b\0"}, "body": ""}, "proof: header 'a' is malformed"),
        ({"headers": {"n" * 50: "\r"}, "body": ""}, f"proof: header {'n' * 40!r} is malformed"),
        (
            {"headers": {"Host": "a", "HOST": "a"}, "body": ""},
            "proof: header 'HOST' appears twice",
        ),
        (
            {"headers": {"x": "1", "n" * 50: "a", "N" * 50: "b"}, "body": ""},
            f"proof: header {'N' * 40!r} appears twice",
        ),
    ],
)
def test_malformed_proofs_word_for_word(data: Any, said: str) -> None:
    assert parse_refusal(data) == said


def test_a_parsed_proof_keeps_its_headers_and_body_and_hides_values_from_repr() -> None:
    proof = parse_proof({"headers": headers(), "body": GET_CALLER_IDENTITY})
    assert proof == Proof(headers(), GET_CALLER_IDENTITY)
    assert repr(proof) == (
        "Proof(headers=['Authorization', 'Host', 'X-Amz-Date', 'X-Keyturn-Request-SHA256', "
        "'X-Keyturn-Server-ID'], body='Action=GetCallerIdentity&Version=2011-06-15')"
    )
    assert "abc" not in repr(proof)
    assert proof.signature == "abc"
    assert Proof({"authorization": "x Signature= s1 "}, "").signature == "s1"
    assert Proof({}, "").signature == ""


def test_the_replay_key_covers_the_signed_values_only() -> None:
    base = Proof(headers(), GET_CALLER_IDENTITY).replay_key
    material = f"{DIGEST}\n{NOW.strftime(AMZ_DATE)}\n{SERVER}"
    assert base == hashlib.sha256(material.encode()).hexdigest()
    reformatted = headers(Authorization=headers()["Authorization"] + ",")
    assert Proof(reformatted, GET_CALLER_IDENTITY).replay_key == base
    lower = {k.lower(): v for k, v in headers().items()}
    assert Proof(lower, GET_CALLER_IDENTITY).replay_key == base
    for name, value in [
        ("X-Keyturn-Request-SHA256", "0" * 64),
        ("X-Amz-Date", "20260101T120001Z"),
        ("X-Keyturn-Server-ID", "broker-2"),
    ]:
        assert Proof(headers(**{name: value}), GET_CALLER_IDENTITY).replay_key != base
    assert Proof({}, "").replay_key == hashlib.sha256(b"\n\n").hexdigest()


# -- authorization --------------------------------------------------------------------------

A = "123456789012"
B = "210987654321"
ALICE = f"arn:aws:iam::{A}:user/alice"


def test_a_canonical_caller_in_full() -> None:
    assert canonical_caller(f"arn:aws:iam::{A}:user/team/alice") == Caller(
        f"arn:aws:iam::{A}:user/team/alice", A, CallerKind.USER, "alice"
    )
    assert canonical_caller(f"arn:aws-us-gov:sts::{B}:assumed-role/dev/s@x") == Caller(
        f"arn:aws-us-gov:iam::{B}:role/dev", B, CallerKind.ROLE, "dev", "s@x"
    )
    assert canonical_caller(f"arn:aws:sts::{A}:assumed-role/svc/path/dev/s") == Caller(
        f"arn:aws:iam::{A}:role/dev", A, CallerKind.ROLE, "dev", "s"
    )
    assert canonical_caller(ALICE).display_name == "alice"
    assert canonical_caller(f"arn:aws:sts::{A}:assumed-role/dev/s").display_name == "s"
    assert (CallerKind.USER.value, CallerKind.ROLE.value) == ("user", "role")


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:iam::{A}:user/al ice",
        f"xarn:aws:iam::{A}:user/alice",
        f"arn:gcp:iam::{A}:user/alice",
        f"arn:aws:iam::{A}1:user/alice",
        f"arn:aws:sts::{A}:user/alice",
        f"arn:aws:iam::{A}:assumed-role/dev/s",
        f"arn:aws:sts::{A}:assumed-role//s",
    ],
)
def test_near_miss_identities_are_refused_word_for_word(arn: str) -> None:
    with pytest.raises(BadInputError) as refused:
        canonical_caller(arn)
    assert str(refused.value) == (
        f"caller {arn!r} is neither an IAM user nor an assumed role; the broker serves only those"
    )


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        (f"arn:aws:iam::{A}:user/a", True),
        (f"arn:aws:iam::{A}:role/" + "a" * 512, True),
        (f"arn:aws:iam::{A}:role/" + "a" * 513, False),
        (f"arn:aws:iam::{A}:role/*", True),
        (f"arn:aws:iam::{A}:role/team/?x*", True),
        (f"arn:aws-cn:iam::{A}:role/x", True),
        (f"xarn:aws:iam::{A}:role/x", False),
        (f"arn:aws:iam::{A}:role/[x]", False),
        (f"arn:aws:iam::{A}:role/x y", False),
        (f"arn:aws:iam::{A[:-1]}?:role/x", False),
        (f"arn:aws:iam::{A}0:role/x", False),
        (f"arn:azure:iam::{A}:role/x", False),
    ],
)
def test_pattern_edges(pattern: str, ok: bool) -> None:
    if ok:
        assert check_patterns("dev", "admin_principals", [pattern]) == (pattern,)
    else:
        with pytest.raises(BadInputError) as refused:
            check_patterns("dev", "admin_principals", [pattern])
        assert str(refused.value) == (
            f"role dev: admin_principals {pattern!r} is not an IAM user or role ARN pattern "
            "naming its 12-digit account (e.g. arn:aws:iam::123456789012:role/dev-*)"
        )


def test_patterns_keep_their_order_without_duplicates() -> None:
    one, two = f"arn:aws:iam::{A}:role/b", f"arn:aws:iam::{A}:role/a"
    assert check_patterns("dev", "x", [one, two, one, two]) == (one, two)
    assert check_patterns("dev", "x", []) == ()


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        (f"arn:aws:iam::{A}:user/*", f"arn:aws:iam::{A}:user/", True),  # * matches nothing
        (f"arn:aws:iam::{A}:user/*", f"arn:aws:iam::{A}:user/team/alice", True),  # and a /
        (f"arn:aws:iam::{A}:user/a*e", f"arn:aws:iam::{A}:user/ae", True),
        (f"arn:aws:iam::{A}:user/a*e", f"arn:aws:iam::{A}:user/a\ne", True),  # any character
        (f"arn:aws:iam::{A}:user/a?e", f"arn:aws:iam::{A}:user/ae", False),  # ? is exactly one
        (f"arn:aws:iam::{A}:user/a?e", f"arn:aws:iam::{A}:user/a\ne", True),
        (f"arn:aws:iam::{A}:user/a??e", f"arn:aws:iam::{A}:user/alie", True),
        (f"arn:aws:iam::{A}:user/a+e", f"arn:aws:iam::{A}:user/a+e", True),  # + is a literal
        (f"arn:aws:iam::{A}:user/a+e", f"arn:aws:iam::{A}:user/aae", False),
        (f"arn:aws:iam::{A}:user/alice", f"xarn:aws:iam::{A}:user/alice", False),
    ],
)
def test_wildcard_edges(pattern: str, arn: str, expected: bool) -> None:
    assert matches(arn, [pattern]) is expected


def test_matches_any_of_several_and_none_of_none() -> None:
    other = f"arn:aws:iam::{A}:user/bob"
    assert matches(ALICE, [other, ALICE])
    assert matches(ALICE, iter([ALICE, other]))
    assert not matches(ALICE, [other])
    assert not matches(ALICE, [])


def test_verdicts_word_for_word() -> None:
    alice = canonical_caller(ALICE)
    assert may_issue(alice, "dev", (), ()) == Verdict(
        False, "role dev names no allowed_principals: nobody may lease it through the broker"
    )
    assert may_issue(alice, "dev", (ALICE,), ()) == Verdict(True, f"{ALICE} may lease role dev")
    assert may_issue(alice, "dev", (), (ALICE,)) == Verdict(True, f"{ALICE} may lease role dev")
    assert may_issue(alice, "dev", (f"arn:aws:iam::{A}:user/bob",), ()) == Verdict(
        False, f"{ALICE} is not allowed to lease role dev"
    )
    alice = canonical_caller(ALICE, "AIDAALICE0000000001")
    lease = "aws/creds/dev/x"
    assert may_manage(alice, lease, ALICE, (), "AIDAALICE0000000001") == Verdict(
        True, f"{ALICE} owns aws/creds/dev/x"
    )
    assert may_manage(alice, lease, "bob", (ALICE,)) == Verdict(
        True, f"{ALICE} is an admin of aws/creds/dev/x's role"
    )
    assert may_manage(alice, lease, ALICE, (ALICE,)) == Verdict(
        True, f"{ALICE} is an admin of aws/creds/dev/x's role"
    )
    assert may_manage(alice, lease, "bob", ()) == Verdict(
        False, f"aws/creds/dev/x is not {ALICE}'s lease"
    )
    assert may_manage(alice, lease, "bob", (), "AIDAALICE0000000001") == Verdict(
        False, f"aws/creds/dev/x is not {ALICE}'s lease"
    )
    assert may_manage(alice, lease, ALICE, ()) == Verdict(
        False,
        "aws/creds/dev/x records its owner by ARN only (issued before owners' unique ids "
        "were recorded): only an admin of its role may manage it",
    )
    assert may_manage(alice, lease, ALICE, (), "AIDAALICE0000000002") == Verdict(
        False,
        f"aws/creds/dev/x belongs to an earlier principal named {ALICE} (deleted and "
        "created again: another unique id)",
    )
    # A caller STS gave no unique id owns nothing, not even a lease recorded without one.
    assert not may_manage(canonical_caller(ALICE), lease, ALICE, ()).allowed


@pytest.mark.parametrize(
    ("user_id", "unique"),
    [
        ("A" * 8, "A" * 8),  # the shortest unique id
        ("a1" * 64, "a1" * 64),  # the longest (emulators use other alphabets)
        ("AROA1234567:session:more", "AROA1234567"),  # only the part before the first colon
        ("AROA1234567:", "AROA1234567"),
        ("A" * 7, None),
        ("a1" * 64 + "b", None),
        ("AIDA_1234567", None),
        (":AROA1234567", None),
    ],
)
def test_unique_id_edges(user_id: str, unique: str | None) -> None:
    if unique is None:
        with pytest.raises(BadInputError) as caught:
            canonical_caller(ALICE, user_id)
        assert str(caught.value) == f"caller {ALICE!r}: STS returned no usable unique id"
    else:
        assert canonical_caller(ALICE, user_id).unique_id == unique
    assert canonical_caller(ALICE).unique_id is None


NAMES = st.sampled_from(["alice", "bob", "dev", "dev-eu", "ops", "a", "team/alice"])
PATTERNS = st.lists(
    st.builds(
        lambda account, kind, name: f"arn:aws:iam::{account}:{kind}/{name}",
        st.sampled_from([A, B]),
        st.sampled_from(["user", "role"]),
        st.sampled_from(["alice", "bob", "dev*", "dev-??", "*", "a?", "team/*"]),
    ),
    max_size=3,
)
# Unique ids: two generations of one name (deleted and created again), or none from STS.
UNIQUE_IDS = st.sampled_from([None, "AIDAFIRST0000000001", "AIDASECOND000000002"])
CALLERS = st.builds(
    lambda account, kind, name, unique: (
        canonical_caller(f"arn:aws:iam::{account}:user/{name}", unique)
        if kind == "user"
        else canonical_caller(
            f"arn:aws:sts::{account}:assumed-role/{name.split('/')[-1]}/s",
            None if unique is None else f"{unique}:s",
        )
    ),
    st.sampled_from([A, B]),
    st.sampled_from(["user", "role"]),
    NAMES,
    UNIQUE_IDS,
)


@given(
    CALLERS,
    PATTERNS,
    PATTERNS,
    st.one_of(st.none(), CALLERS.map(lambda c: c.arn)),
    UNIQUE_IDS,
)
def test_only_matching_principals_issue_and_only_owners_or_admins_manage(
    caller: Caller, allowed: list[str], admins: list[str], owner: str | None, owner_id: str | None
) -> None:
    issue = may_issue(caller, "dev", allowed, admins)
    assert issue.allowed is (matches(caller.arn, allowed) or matches(caller.arn, admins))
    if issue.allowed:  # never outside its account, never by a pattern of another kind
        assert any(f"::{caller.account}:{caller.kind}/" in p for p in (*allowed, *admins))
    owns = owner == caller.arn and owner_id is not None and owner_id == caller.unique_id
    manage = may_manage(caller, "l", owner, admins, owner_id)
    assert manage.allowed is (owns or matches(caller.arn, admins))
    if owner is None or owner_id is None:  # no owner, or by ARN alone: admins only
        assert manage.allowed is matches(caller.arn, admins)
    assert may_manage(caller, "l", owner, (), owner_id).allowed is owns
