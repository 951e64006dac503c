"""`rotate --rollback` in both stores, against moto (auth on) and OpenBao.

A rollback puts the store's previous entry back as current. After a user's *first*
rotation there is no such entry holding the old key: Vault had nothing at the path, and
Secrets Manager's AWSPREVIOUS is the key-less placeholder keyturn created. Restoring would
leave consumers without a working secret, so the rollback must refuse before its first
write (DESIGN.md invariant 7: an impossible operation changes nothing).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from keyturn.config import load_settings
from keyturn.domain.errors import OperationFailedError
from keyturn.services.rotate import RotationService
from keyturn.wiring import build_aws, build_rotation
from tests.rotate_fixtures import AuthedAws
from tests.rotate_invariants import StoreProbe, all_problems


@pytest.fixture(params=["secretsmanager", "vault"])
def probe(request: pytest.FixtureRequest, authed: AuthedAws) -> StoreProbe:
    prefix = f"r{uuid.uuid4().hex[:10]}"
    if request.param == "vault":
        return StoreProbe("vault", authed, vault=request.getfixturevalue("vault"), prefix=prefix)
    return StoreProbe("secretsmanager", authed, prefix=prefix)


def service(probe: StoreProbe) -> RotationService:
    flags = {
        "rotate.store": probe.kind,
        "rotate.path": f"{probe.prefix}/{{user}}",
        "rotate.verify_interval_seconds": 0,
        "vault.kv_mount": "secret",
    }
    settings = load_settings(flags=flags).settings
    return build_rotation(settings, build_aws(settings))


def snapshot(probe: StoreProbe, user: str) -> tuple[dict[str, str], dict[str, Any]]:
    stages = ("current", "pending", "previous")
    return probe.authed.keys(user), {stage: probe.entry(user, stage) for stage in stages}


def test_rollback_of_a_first_rotation_is_refused_before_any_write(
    probe: StoreProbe, authed: AuthedAws
) -> None:
    (old,) = authed.seed_user("ivy")  # nothing stored for ivy before keyturn's rotation
    first = service(probe).rotate("ivy")
    assert first.ok, first.message
    before = snapshot(probe, "ivy")
    assert before[0] == {old.key_id: "Inactive", first.new_key_id: "Active"}

    with pytest.raises(OperationFailedError) as caught:
        service(probe).rollback("ivy")

    message = str(caught.value)
    assert f"cannot roll back ivy: old key {old.key_id} was never in" in message
    assert "nothing changed" in message
    assert "\n" not in message
    assert snapshot(probe, "ivy") == before  # IAM and every store entry as they were
    assert all_problems(probe, "ivy", {}) == []
    # The refusal recorded nothing: a later rotation runs, and then a rollback can restore.
    second = service(probe).rotate("ivy")
    assert second.ok, second.message
    back = service(probe).rollback("ivy")
    assert back.state == "rolled_back"
    assert (probe.entry("ivy", "current") or ("",))[0] == first.new_key_id
    assert all_problems(probe, "ivy", {}) == []


def test_rollback_of_a_rotation_of_a_stored_key_restores_it(
    probe: StoreProbe, authed: AuthedAws
) -> None:
    """The ordinary case still works: the old key was current in the store before."""
    (old,) = authed.seed_user("jay")
    probe.seed_current("jay", old.key_id, old.secret)
    rotated = service(probe).rotate("jay")
    back = service(probe).rollback("jay")
    assert back.state == "rolled_back", back.message
    assert (probe.entry("jay", "current") or ("",))[0] == old.key_id
    assert authed.keys("jay") == {old.key_id: "Active", rotated.new_key_id: "Inactive"}
    assert all_problems(probe, "jay", {}) == []
