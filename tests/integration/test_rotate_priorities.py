"""Every IAM request of a rotation carries the priority rotation chose for it.

Rotation spends IAM's budget first on the calls that start a propagation clock
(services/rotate.py: CREATE, START, READ, RETIRE). On the run's shared pacer a priority is
the thread's *next* IAM call's only, so a call made without `_iam_call(...)` just before it
would wait at the default priority, not the one rotation meant. This pacer, on the real
clients against moto, records every IAM request that found no priority set for it, and
every priority set that no request used (the call it announced never came).
"""

from __future__ import annotations

from typing import Any

import pytest

from keyturn.adapters.pacing import Pacer
from keyturn.config import load_settings
from keyturn.domain.errors import OperationFailedError
from keyturn.services.rotate import RotationService
from keyturn.wiring import build_aws, build_rotation, build_store
from tests.rotate_fixtures import AuthedAws


class Strict(Pacer):
    """The run's pacer, recording what breaks "one priority, then one IAM call"."""

    def __init__(self) -> None:
        super().__init__({"iam": 1000.0})
        self.problems: list[str] = []
        self.iam_requests = 0
        self._unannounced = False

    def set_priority(self, service: str, priority: int) -> None:
        if service == "iam" and "iam" in self._priorities():
            self.problems.append("a priority was set for an IAM call that never came")
        super().set_priority(service, priority)

    def take_priority(self, service: str) -> int:
        self._unannounced = service == "iam" and "iam" not in self._priorities()
        return super().take_priority(service)

    def acquire(
        self, service: str, operation: str, region: str | None = None, priority: int = 2
    ) -> None:
        if service == "iam":
            self.iam_requests += 1
            if self._unannounced:
                self.problems.append(f"iam:{operation} without a priority of its own")
            self._unannounced = False
        super().acquire(service, operation, region, priority)


def service(pacer: Strict, store: Any = None) -> RotationService:
    flags = {
        "rotate.store": "secretsmanager",
        "rotate.path": "iam/{account}/{user}",
        "rotate.verify_interval_seconds": 0,
    }
    settings = load_settings(flags=flags).settings
    aws = build_aws(settings)
    aws.pacer = pacer
    return build_rotation(settings, aws, store=store)


class FailingStore:
    """The configured store, except that storing a new key fails."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def put_pending(self, *_: Any) -> None:
        raise OperationFailedError("the store refused the new key")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_every_iam_call_of_a_rotation_has_its_own_priority(authed: AuthedAws) -> None:
    pacer = Strict()
    authed.seed_user("alice")
    authed.seed_user("bob")
    rotation = service(pacer)
    assert rotation.rotate("alice").ok  # fresh: read, intent, create, promote, retire
    assert rotation.rotate("alice").ok  # retires the inactive old key to make room first
    assert rotation.rollback("alice").state == "rolled_back"
    assert rotation.resume("alice") is None
    rotation.pending_users()
    settings = load_settings(
        flags={"rotate.store": "secretsmanager", "rotate.path": "iam/{account}/{user}"}
    ).settings
    failing = service(pacer, store=FailingStore(build_store(settings, build_aws(settings))))
    with pytest.raises(OperationFailedError, match="deleted"):
        failing.rotate("bob")  # the new key is deleted again: a cleanup IAM call
    assert pacer.iam_requests > 20
    assert pacer.problems == []
