"""The enrollment generation: `keyturn unenroll` sticks against a tag-writer.

Attackers: a tag-writer (iam:TagUser/UntagUser/ListUserTags on the users) who saved
genuine enrollment records; a principal who may tag the KMS key (the key admin, or anyone
under an older key policy) and writes the generation. Both seal modes run: the
deployment's KMS key (the generation is a tag on it) and the CLI's local key (a file
beside it).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.enrollment_generation import TAG_PREFIX
from keyturn.adapters.iam_enrollment import IamTagEnrollments
from keyturn.config import load_settings
from keyturn.domain.enrollment import ENROLL_TAG, LEGACY_VERSION, Enrollment, sealed_payload
from keyturn.handlers.rotate import handler
from keyturn.sandbox.aws import ACCOUNT
from keyturn.services.enrollment import EnrollmentService
from keyturn.wiring import build_authenticator, build_aws, build_enrollment
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(params=["kms", "local"])
def mode(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    authed: AuthedAws,
    tmp_path: Path,
) -> str:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"g{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    if request.param == "kms":
        kms = authed.client("kms")
        made = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
        monkeypatch.setenv("KEYTURN_TRUST_MAC_KEY", made["KeyMetadata"]["Arn"])
    return str(request.param)


def tags(authed: AuthedAws, user: str) -> dict[str, str]:
    found = authed.client("iam").list_user_tags(UserName=user)["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def put_back(authed: AuthedAws, user: str, value: str) -> None:
    authed.client("iam").tag_user(UserName=user, Tags=[{"Key": ENROLL_TAG, "Value": value}])


def service() -> EnrollmentService:
    found: EnrollmentService = build_enrollment(load_settings().settings)
    return found


def split(*users: str) -> tuple[list[str], dict[str, str]]:
    """Who the schedule would rotate, and the report line of each rejected record."""
    parts = service().partition(users)
    return parts.enrolled, {r.user: r.line() for r in parts.rejected}


def generation_value(authed: AuthedAws) -> str:
    """The stored, sealed generation (an admin reading it: anyone may)."""
    key = os.environ.get("KEYTURN_TRUST_MAC_KEY")
    if key:
        found = authed.client("kms").list_resource_tags(KeyId=key)["Tags"]
        return next(t["TagValue"] for t in found if t["TagKey"] == TAG_PREFIX + ACCOUNT)
    path = Path(os.environ["XDG_STATE_HOME"]) / "keyturn" / f"enrollment-generation.{ACCOUNT}"
    return path.read_text().strip()


def write_generation(authed: AuthedAws, value: str) -> None:
    """Whoever may tag the key (or write the operator's state directory) writes it."""
    key = os.environ.get("KEYTURN_TRUST_MAC_KEY")
    if key:
        tag = [{"TagKey": TAG_PREFIX + ACCOUNT, "TagValue": value}]
        authed.client("kms").tag_resource(KeyId=key, Tags=tag)
        return
    path = Path(os.environ["XDG_STATE_HOME"]) / "keyturn" / f"enrollment-generation.{ACCOUNT}"
    path.write_text(value + "\n")


def three(authed: AuthedAws) -> dict[str, Any]:
    for user in ("alice", "bob", "carol"):
        authed.seed_user(user)
    authed.enroll("alice", "bob", "carol", environ=os.environ)
    return {user: tags(authed, user)[ENROLL_TAG] for user in ("alice", "bob", "carol")}


def test_unenroll_stales_saved_copies_and_keeps_the_others(authed: AuthedAws, mode: str) -> None:
    saved = three(authed)
    outcome = service().unenroll("alice")
    assert outcome.ok, outcome.message
    assert "generation 1" in outcome.message
    assert ENROLL_TAG not in tags(authed, "alice")
    # bob and carol were re-sealed at the new generation: still enrolled
    assert tags(authed, "bob")[ENROLL_TAG] != saved["bob"]
    put_back(authed, "alice", saved["alice"])
    enrolled, rejected = split("alice", "bob", "carol")
    assert enrolled == ["bob", "carol"]
    assert rejected == {
        "alice": "alice: ignored an enrollment sealed before the last unenroll (generation "
        "0 < 1); re-run `keyturn enroll alice` if it should be enrolled"
    }
    # a saved copy of bob's older record is stale too (harmless, but not believed)
    put_back(authed, "bob", saved["bob"])
    enrolled, rejected = split("bob")
    assert enrolled == []
    assert "before the last unenroll" in rejected["bob"]


def test_the_scheduled_run_rotates_only_who_is_still_enrolled(authed: AuthedAws, mode: str) -> None:
    if mode == "local":
        pytest.skip("the Rotate function runs with the deployment's KMS key")
    saved = three(authed)
    (old,) = [k for k in authed.known.values() if k.user == "alice"]
    assert service().unenroll("alice").ok
    put_back(authed, "alice", saved["alice"])
    result = handler({"users": ["alice", "bob"]})
    assert [r["user"] for r in result["results"]] == ["bob"]
    assert [u["user"] for u in result["untrusted"]] == ["alice"]
    assert authed.keys("alice") == {old.key_id: "Active"}


def test_a_record_claiming_the_new_generation_with_an_old_seal_enrolls_nobody(
    authed: AuthedAws, mode: str
) -> None:
    saved = three(authed)
    assert service().unenroll("alice").ok
    current = generation_value(authed).rpartition(":")[0]
    text, _, seal = saved["alice"].rpartition(":")
    forged = f"{text.rsplit(':', 1)[0]}:{current}:{seal}"  # the generation field rewritten
    put_back(authed, "alice", forged)
    enrolled, rejected = split("alice")
    assert enrolled == []
    assert "did not write" in rejected["alice"]
    assert "not sealed by" in rejected["alice"]


def test_a_generation_keyturn_did_not_seal_is_not_believed(authed: AuthedAws, mode: str) -> None:
    """Planted where the generation lives (under an older key policy any IAM principal
    allowed kms:TagResource could): nobody is believed enrolled, nothing breaks, and the
    next unenroll writes a sealed one again."""
    three(authed)
    write_generation(authed, "7.deadbeef:" + "A" * 43)
    enrolled, rejected = split("bob", "carol")
    assert enrolled == []
    assert "was not sealed by" in rejected["bob"]
    assert "planted" in rejected["bob"]
    refused = service().enroll("dave")
    assert not refused.ok
    assert service().unenroll("alice").ok  # writes a sealed generation (re-seals nobody)
    enrolled, rejected = split("bob")
    assert enrolled == []
    assert "before the last unenroll" in rejected["bob"]
    authed.enroll("bob", environ=os.environ)  # an operator re-enrolls who should be
    assert split("bob") == (["bob"], {})


def test_a_lowered_generation_revives_nobody(authed: AuthedAws, mode: str) -> None:
    """The key admin (or a leaked tagging right) writes an older genuine generation back,
    and a tag-writer puts back a record sealed at it: records sealed at a later generation
    prove the lowering, so nobody in the account is believed until an unenroll."""
    three(authed)
    assert service().unenroll("alice").ok  # generation 1: bob, carol re-sealed
    first = generation_value(authed)
    carol_at_1 = tags(authed, "carol")[ENROLL_TAG]
    assert service().unenroll("carol").ok  # generation 2: bob re-sealed
    write_generation(authed, first)
    put_back(authed, "carol", carol_at_1)
    enrolled, rejected = split("bob", "carol")
    assert enrolled == []
    assert "lowered" in rejected["carol"]
    assert "lowered" in rejected["bob"]
    # recovery: an unenroll goes above every generation seen; the replay stays stale
    assert service().unenroll("carol").ok
    enrolled, rejected = split("bob", "carol")
    assert enrolled == []
    assert "generation 2 < 3" in rejected["bob"]


def test_v1_records_hold_until_the_first_unenroll(authed: AuthedAws, mode: str) -> None:
    """Records from before generations existed: believed at generation 0; the first
    unenroll re-seals the valid ones as v2, and a saved v1 copy is stale after it."""
    for user in ("alice", "bob"):
        authed.seed_user(user)
    settings = load_settings().settings
    aws = build_aws(settings)
    auth = build_authenticator(settings, aws)
    registry: IamTagEnrollments = service()._registry  # type: ignore[assignment]
    legacy = {}
    for user in ("alice", "bob"):
        location = registry.location(user)
        text = f"{LEGACY_VERSION}:secretsmanager:1767225600"
        legacy[user] = f"{text}:{auth.seal(sealed_payload(user, ACCOUNT, location, text))}"
        put_back(authed, user, legacy[user])
    assert split("alice", "bob") == (["alice", "bob"], {})
    assert service().unenroll("alice").ok
    assert tags(authed, "bob")[ENROLL_TAG].startswith("v2:secretsmanager:1767225600:1.")
    enrolled = registry.read("bob")
    assert isinstance(enrolled, Enrollment)
    assert int(enrolled.enrolled_at.timestamp()) == 1767225600  # the enrollment time kept
    put_back(authed, "alice", legacy["alice"])
    put_back(authed, "bob", legacy["bob"])
    assert split("alice", "bob")[0] == []


def test_an_enroll_overtaken_by_an_unenroll_says_it_is_not_in_force(
    authed: AuthedAws, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail safe: the enroll's record is stale (sealed at the old generation), and the
    enroll fails, telling the operator to run it again (which then only records it)."""
    three(authed)
    authed.seed_user("dave")
    put = IamTagEnrollments._put
    fired: list[str] = []

    def unenroll_first(self: IamTagEnrollments, enrollment: Enrollment) -> None:
        if enrollment.user == "dave" and not fired:  # enroll read generation 0 already
            fired.append("alice")
            assert service().unenroll("alice").ok  # lists before dave's record exists
        put(self, enrollment)

    monkeypatch.setattr(IamTagEnrollments, "_put", unenroll_first)
    outcome = service().enroll("dave")
    assert fired
    assert not outcome.ok  # the first rotation happened; the record is not in force
    assert "not in force: run `keyturn enroll dave` again" in outcome.message
    enrolled, rejected = split("dave", "bob")
    assert enrolled == ["bob"]
    assert "generation 0 < 1" in rejected["dave"]
    assert service().enroll("dave").ok
    assert split("dave") == (["dave"], {})


def test_two_unenrolls_at_once_revive_neither_user(
    authed: AuthedAws, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's unenroll runs while alice's re-seals: alice's unenroll sees the generation
    raised under it and starts over; neither alice nor bob is left enrolled. carol's record,
    re-sealed by the unenroll bob's overtook, is stale: not rotated (fail safe), and the
    outcome says to enroll her again."""
    three(authed)
    reseal = IamTagEnrollments.reseal
    fired: list[str] = []

    def interleaved(self: IamTagEnrollments, *args: Any) -> bool:
        if not fired:
            fired.append("bob")
            assert service().unenroll("bob").ok
        return reseal(self, *args)

    monkeypatch.setattr(IamTagEnrollments, "reseal", interleaved)
    outcome = service().unenroll("alice")
    assert outcome.ok
    monkeypatch.setattr(IamTagEnrollments, "reseal", reseal)
    enrolled, rejected = split("alice", "bob", "carol")
    assert "alice" not in enrolled
    assert "bob" not in enrolled
    if "carol" not in enrolled:
        assert "before the last unenroll" in rejected["carol"]
        assert any(w.startswith("carol: ") for w in outcome.warnings), outcome.warnings
