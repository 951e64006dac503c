"""In-memory IAM, store, journal and verifier for the rotation service's unit tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from keyturn.domain.errors import NotFoundError, OperationFailedError
from keyturn.domain.model import KeyStatus, LastUse, NewKeySecret
from keyturn.domain.rotation import IamKey, RotationRecord, StoredEntry, StoreView

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeClock:
    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class FakeKeys:
    clock: FakeClock
    keys: dict[str, dict[str, IamKey]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, user: str, *, active: bool = True, age_days: float = 90) -> str:
        key_id = f"AKIA{next(self._ids):016d}"
        status = KeyStatus.ACTIVE if active else KeyStatus.INACTIVE
        created = self.clock.now() - timedelta(days=age_days)
        self.keys.setdefault(user, {})[key_id] = IamKey(key_id, status, created)
        self.secrets[key_id] = f"secret-of-{key_id}"
        return key_id

    def list_keys(self, user: str) -> list[IamKey]:
        self.calls.append("list")
        if user not in self.keys:
            raise NotFoundError(f"iam:ListAccessKeys ({user}): not found")
        return sorted(self.keys[user].values(), key=lambda key: key.created)

    def create_key(self, user: str) -> NewKeySecret:
        self.calls.append("create")
        if len(self.keys[user]) >= 2:
            raise OperationFailedError("LimitExceeded")
        key_id = self.add(user, age_days=0)
        return NewKeySecret(key_id, self.secrets[key_id])

    def set_active(self, user: str, key_id: str, active: bool) -> None:
        self.calls.append(f"{'activate' if active else 'deactivate'} {key_id}")
        key = self.keys[user][key_id]
        status = KeyStatus.ACTIVE if active else KeyStatus.INACTIVE
        self.keys[user][key_id] = IamKey(key_id, status, key.created)

    def delete_key(self, user: str, key_id: str) -> None:
        self.calls.append(f"delete {key_id}")
        self.keys[user].pop(key_id, None)

    uses: dict[str, LastUse] = field(default_factory=dict)

    def last_used(self, key_id: str) -> LastUse | None:
        self.calls.append(f"last_used {key_id}")
        return self.uses.get(key_id)

    def use(self, key_id: str, *, service: str = "s3", region: str = "eu-west-1") -> None:
        """A consumer calls AWS with `key_id` now (as IAM's last-used record shows)."""
        self.uses[key_id] = LastUse(self.clock.now(), service, region)

    def status(self, user: str) -> dict[str, str]:
        return {key_id: key.status.value for key_id, key in self.keys[user].items()}


@dataclass
class FakeStore:
    entries: dict[str, dict[str, tuple[str, NewKeySecret]]] = field(default_factory=dict)
    fail_put: bool = False

    def location(self, user: str) -> str:
        return f"fake/{user}"

    def describe(self, user: str) -> StoreView:
        stages = self.entries.get(user, {})

        def entry(stage: str) -> StoredEntry | None:
            if stage not in stages:
                return None
            token, secret = stages[stage]
            return StoredEntry(token, secret.access_key_id)

        return StoreView(entry("current"), entry("pending"), entry("previous"))

    def key_id(self, user: str, stage: str) -> str | None:
        found = self.entries.get(user, {}).get(stage)
        return None if found is None else found[1].access_key_id

    def put_pending(self, user: str, secret: NewKeySecret, token: str) -> None:
        if self.fail_put:
            raise OperationFailedError("store write refused")
        self.entries.setdefault(user, {})["pending"] = (token, secret)

    def read_pending(self, user: str, token: str) -> NewKeySecret | None:
        found = self.entries.get(user, {}).get("pending")
        return found[1] if found and found[0] == token else None

    def read_current(self, user: str) -> NewKeySecret | None:
        found = self.entries.get(user, {}).get("current")
        return None if found is None else found[1]

    def promote(self, user: str, token: str) -> None:
        stages = self.entries[user]
        if stages.get("current", ("",))[0] == token:
            return
        if "current" in stages:
            stages["previous"] = stages["current"]
        stages["current"] = stages.pop("pending")

    def restore_previous(self, user: str, from_token: str) -> None:
        stages = self.entries[user]
        if stages["current"][0] != from_token:
            return
        stages["current"], stages["previous"] = stages["previous"], stages["current"]

    def discard_pending(self, user: str, token: str) -> None:
        stages = self.entries.get(user, {})
        if stages.get("pending", ("",))[0] == token:
            del stages["pending"]


@dataclass
class FakeJournal:
    records: dict[str, RotationRecord] = field(default_factory=dict)

    def read(self, user: str) -> RotationRecord | None:
        return self.records.get(user)

    def write(self, record: RotationRecord) -> None:
        self.records[record.user] = record

    def users_with_records(self) -> list[str]:
        return sorted(self.records)


@dataclass
class FakeVerifier:
    keys: FakeKeys
    fail: bool = False
    verified: list[str] = field(default_factory=list)

    def verify(self, user: str, secret: NewKeySecret) -> None:
        if self.fail:
            raise OperationFailedError(f"new key {secret.access_key_id} did not authenticate")
        assert self.keys.secrets[secret.access_key_id] == secret.secret_access_key
        self.verified.append(secret.access_key_id)
