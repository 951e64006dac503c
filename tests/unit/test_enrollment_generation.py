"""The enrollment generation without a server: its text, its seal, the local file's rules."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.enrollment_generation import LocalGenerationFiles, generations_for
from keyturn.adapters.iam_enrollment import IamTagEnrollments
from keyturn.adapters.mac_local import LocalAuthenticator
from keyturn.domain.enrollment import (
    INITIAL,
    Enrollment,
    Generation,
    StaleEnrollment,
    parse,
    parse_generation,
    payload,
    sealed_text,
    staleness,
)
from keyturn.domain.errors import BadInputError, ConfigError
from keyturn.domain.trust import Rejected

A = "111111111111"
B = "222222222222"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class _NoIam:
    def get_paginator(self, name: str) -> Any:  # pragma: no cover - no IAM call expected
        raise AssertionError("no IAM call expected")


def registry(auth: LocalAuthenticator, account: str) -> IamTagEnrollments:
    return IamTagEnrollments(
        _NoIam(),  # type: ignore[arg-type]
        auth,
        "secretsmanager",
        lambda user: f"svc/{user}",
        account=account,
    )


@pytest.fixture
def auth(tmp_path: Path) -> LocalAuthenticator:
    return LocalAuthenticator(tmp_path / "keyturn" / "journal.key")


@pytest.mark.parametrize(
    "text", ["", "00", "1", "1.", "01.abcd", "1.ABCD", "1.abc", "-1.abcd", "1.abcd.ef", "１.abcd"]
)
def test_only_generations_keyturn_writes_parse(text: str) -> None:
    assert parse_generation(text) is None


def test_generation_text_round_trips() -> None:
    assert parse_generation("0") == INITIAL
    raised = INITIAL.after("deadbeef")
    assert raised == Generation(1, "deadbeef")
    assert parse_generation(raised.text) == raised


@pytest.mark.parametrize(
    "text",
    [
        "v2:vault:1767225600:01.abcd",  # not canonical
        "v2:vault:1767225600",  # v2 without a generation
        "v1:vault:1767225600:0",  # v1 with one
        "v3:vault:1767225600:0",
    ],
)
def test_non_canonical_records_are_unreadable(text: str) -> None:
    with pytest.raises(BadInputError):
        parse("alice", text, "loc")


def test_staleness_orders_by_number_and_tells_siblings_apart() -> None:
    one, sibling, two = Generation(1, "aaaa"), Generation(1, "bbbb"), Generation(2, "cccc")
    assert staleness("alice", one, one) is None
    older = staleness("alice", one, two)
    assert isinstance(older, StaleEnrollment)
    assert older.line() == (
        "alice: ignored an enrollment sealed before the last unenroll (generation 1 < 2); "
        "re-run `keyturn enroll alice` if it should be enrolled"
    )
    assert isinstance(staleness("alice", sibling, one), StaleEnrollment)
    newer = staleness("alice", two, one)
    assert isinstance(newer, Rejected)
    assert not isinstance(newer, StaleEnrollment)
    assert "lowered" in newer.line()


def test_a_generation_sealed_for_another_account_is_not_believed(
    auth: LocalAuthenticator,
) -> None:
    """One CLI, many accounts: account B's genuine generation copied to A's place."""
    in_a, in_b = registry(auth, A), registry(auth, B)
    in_b.raise_generation(in_b.generation())
    files = generations_for(auth)
    copied = files.load(B)
    assert copied is not None
    files.save(A, copied)
    view = in_a.generation()
    assert view.current is None
    assert view.problem
    assert "not sealed" in view.problem


def test_a_record_is_believed_only_at_its_generation(auth: LocalAuthenticator) -> None:
    reg = registry(auth, A)
    enrolled = Enrollment("alice", "secretsmanager", "svc/alice", T0)
    value = f"{payload(enrolled)}:{auth.seal(sealed_text(enrolled, A))}"
    assert isinstance(reg.check("alice", value), Enrollment)
    reg.raise_generation(reg.generation())
    assert isinstance(reg.check("alice", value), StaleEnrollment)


def test_the_local_generation_file_is_private_and_atomic(tmp_path: Path) -> None:
    files = LocalGenerationFiles(tmp_path / "keyturn")
    assert files.load(A) is None
    files.save(A, "1.abcd:seal")
    path = tmp_path / "keyturn" / f"enrollment-generation.{A}"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert files.load(A) == "1.abcd:seal"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # nothing staged left


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_generation_file_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    files = LocalGenerationFiles(tmp_path)
    files.save(A, "1.abcd:seal")
    os.chmod(tmp_path / f"enrollment-generation.{A}", mode)
    with pytest.raises(ConfigError, match="others may write it"):
        files.load(A)


def test_a_generation_file_another_uid_owns_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = LocalGenerationFiles(tmp_path)
    files.save(A, "1.abcd:seal")
    path = tmp_path / f"enrollment-generation.{A}"
    if os.geteuid() == 0:
        os.chown(path, 4242, 4242)
    else:  # cannot give a file away: be someone else instead
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 1)
    with pytest.raises(ConfigError, match="owned by uid"):
        files.load(A)


def test_a_symlink_is_not_a_generation_file(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("1.abcd:seal")
    (tmp_path / f"enrollment-generation.{A}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="not a regular file"):
        LocalGenerationFiles(tmp_path).load(A)


def test_an_account_is_never_a_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        LocalGenerationFiles(tmp_path).load("../x")
