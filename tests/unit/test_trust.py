"""Sealed state (keyturn.domain.trust): what keyturn believes, tested without a server.

The journal's `open` and the enrollment check run against a local key here; the KMS key's
behaviour is in tests/integration/test_kms_authenticator.py.
"""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.adapters.iam_enrollment import IamTagEnrollments
from keyturn.adapters.iam_rotation import IamTagJournal
from keyturn.adapters.mac_local import LocalAuthenticator
from keyturn.domain.enrollment import Enrollment, payload, sealed_text
from keyturn.domain.errors import ConfigError
from keyturn.domain.rotation import RotationRecord, RotationState, encode
from keyturn.domain.trust import JOURNAL_PURPOSE, Rejected, decode_tag, encode_tag, message

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = "111122223333"
RECORD = RotationRecord(
    user="alice",
    token="tok",
    state=RotationState.PROMOTED,
    intent_at=T0,
    old_key_id="AKIAOLD0000000000000",
    existing=("AKIAOLD0000000000000",),
    new_key_id="AKIANEW0000000000000",
)


@pytest.fixture
def auth(tmp_path: Path) -> LocalAuthenticator:
    return LocalAuthenticator(tmp_path / "keyturn" / "journal.key")


def sealed(auth: LocalAuthenticator, record: RotationRecord) -> str:
    text = encode(record)
    return f"{text}:{auth.seal(message(JOURNAL_PURPOSE, record.user, ACCOUNT, text))}"


text_parts = st.lists(st.text(max_size=12), min_size=1, max_size=4)


@given(text_parts, text_parts)
def test_distinct_records_never_share_a_message(a: list[str], b: list[str]) -> None:
    """Length-prefixed: no user name or field value can shift bytes into another field."""
    if a != b:
        assert message("p", *a) != message("p", *b)


def test_purpose_separates_kinds_of_record() -> None:
    assert message(JOURNAL_PURPOSE, "alice", "x") != message("keyturn-enrollment", "alice", "x")


@given(st.binary(max_size=64))
def test_tag_encoding_round_trips_and_is_iam_safe(raw: bytes) -> None:
    text = encode_tag(raw)
    assert decode_tag(text) == raw
    assert all(c.isalnum() or c in "-_" for c in text)


def test_the_journal_believes_only_its_own_seal(auth: LocalAuthenticator, tmp_path: Path) -> None:
    journal = IamTagJournal(None, auth, ACCOUNT)  # type: ignore[arg-type]
    good = sealed(auth, RECORD)
    assert journal.open("alice", good) == RECORD
    assert len(good) <= 256  # an IAM tag value

    other = LocalAuthenticator(tmp_path / "other" / "journal.key")
    forged = {
        "unsealed v1": "v1:promoted:tok:1767225600:AKIAOLD:-:AKIANEW",
        "unsealed v2": encode(RECORD),
        "another key's seal": sealed(other, RECORD),
        "payload changed": good.replace("promoted", "intent", 1),
        "old key changed": good.replace("AKIAOLD", "AKIANEW", 1),
        "seal cut": good[:-3],
        "empty": "",
    }
    for what, value in forged.items():
        assert isinstance(journal.open("alice", value), Rejected), what
    assert isinstance(journal.open("bob", good), Rejected)  # bound to the user
    elsewhere = IamTagJournal(None, auth, "444455556666")  # type: ignore[arg-type]
    assert isinstance(elsewhere.open("alice", good), Rejected)  # and to the account


def test_a_sealed_but_unreadable_entry_is_rejected_not_raised(auth: LocalAuthenticator) -> None:
    journal = IamTagJournal(None, auth, ACCOUNT)  # type: ignore[arg-type]
    text = "v2:exploded:tok:1:-:-:-:-"
    value = f"{text}:{auth.seal(message(JOURNAL_PURPOSE, 'alice', ACCOUNT, text))}"
    found = journal.open("alice", value)
    assert isinstance(found, Rejected)
    assert "unreadable" in found.reason


def test_enrollment_is_bound_to_user_store_and_location(auth: LocalAuthenticator) -> None:
    where = {"alice": "keyturn/1/alice", "bob": "keyturn/1/bob"}
    registry = IamTagEnrollments(None, auth, "vault", where.__getitem__, account=ACCOUNT)  # type: ignore[arg-type]
    enrolled = Enrollment("alice", "vault", "keyturn/1/alice", T0)
    value = f"{payload(enrolled)}:{auth.seal(sealed_text(enrolled, ACCOUNT))}"
    assert registry.check("alice", value) == enrolled
    assert isinstance(registry.check("bob", value), Rejected)  # copied to bob
    moved = IamTagEnrollments(
        None, auth, "vault", lambda user: "elsewhere/" + user, account=ACCOUNT
    )  # type: ignore[arg-type]
    assert isinstance(moved.check("alice", value), Rejected)  # the path changed since
    other_account = IamTagEnrollments(None, auth, "vault", where.__getitem__, account="9" * 12)  # type: ignore[arg-type]
    assert isinstance(other_account.check("alice", value), Rejected)
    other_store = IamTagEnrollments(
        None, auth, "secretsmanager", where.__getitem__, account=ACCOUNT
    )  # type: ignore[arg-type]
    assert isinstance(other_store.check("alice", value), Rejected)
    for bad in (
        "v1:vault:1",
        "yes",
        "v1:vault:x:AAAA",
        "",
        value.replace("vault", "secretsmanager"),
    ):
        assert isinstance(registry.check("alice", bad), Rejected), bad


def test_local_key_is_private_and_shared_by_every_process(tmp_path: Path) -> None:
    path = tmp_path / "keyturn" / "journal.key"
    made: list[LocalAuthenticator] = []
    threads = [
        threading.Thread(target=lambda: made.append(LocalAuthenticator(path))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seals = {a.seal(b"x") for a in made}
    assert len(seals) == 1  # one key, whoever won the race
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["journal.key"]  # no staging leftovers


def test_a_loose_key_is_tightened_and_a_wrong_size_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyturn" / "journal.key"
    LocalAuthenticator(path)
    os.chmod(path, 0o644)
    LocalAuthenticator(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="not a keyturn journal key"):
        LocalAuthenticator(path)


def test_hold_survives_the_journal(auth: LocalAuthenticator) -> None:
    journal = IamTagJournal(None, auth, ACCOUNT)  # type: ignore[arg-type]
    held = RotationRecord(
        user="alice",
        token="t",
        state=RotationState.PROMOTED,
        intent_at=T0,
        old_key_id="AKIAOLD",
        hold_until=T0 + timedelta(days=7),
    )
    assert journal.open("alice", sealed(auth, held)) == held


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_a_key_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    """Whoever owns the key file can rewrite it, and so make seals keyturn would believe."""
    path = tmp_path / "keyturn" / "journal.key"
    LocalAuthenticator(path)
    os.chown(path, 65534, -1)  # nobody
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        LocalAuthenticator(path)
