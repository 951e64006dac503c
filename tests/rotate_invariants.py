"""The rotation invariants, checked against the real servers' state after any run.

Each check reads IAM and the store directly (not through keyturn), so a bug in keyturn's
own reading cannot hide a broken invariant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.rotate_fixtures import AuthedAws

ACCOUNT = "123456789012"


@dataclass
class StoreProbe:
    """Reads a user's stored entries (current, pending, previous) without keyturn."""

    kind: str
    authed: AuthedAws
    vault: Any = None
    prefix: str = ""

    def path(self, user: str) -> str:
        return f"{self.prefix}/{user}"

    def seed_current(self, user: str, key_id: str, secret: str) -> None:
        """What consumers read before keyturn's first rotation: the old key, as current."""
        if self.kind == "secretsmanager":
            doc = {"UserName": user, "AccessKeyId": key_id, "SecretAccessKey": secret}
            self.authed.client("secretsmanager").create_secret(
                Name=self.path(user), SecretString=json.dumps(doc)
            )
        else:
            self.vault.secrets.kv.v2.create_or_update_secret(
                path=self.path(user), secret={"access_key": key_id, "secret_key": secret}
            )

    def entry(self, user: str, stage: str) -> tuple[str, str] | None:
        if self.kind == "secretsmanager":
            label = {"current": "AWSCURRENT", "pending": "AWSPENDING", "previous": "AWSPREVIOUS"}
            sm = self.authed.client("secretsmanager")
            try:
                found = sm.get_secret_value(SecretId=self.path(user), VersionStage=label[stage])
            except sm.exceptions.ResourceNotFoundException:
                return None
            doc = json.loads(found["SecretString"])
            if "AccessKeyId" not in doc:
                return None
            return doc["AccessKeyId"], doc["SecretAccessKey"]
        import hvac.exceptions

        suffix = {"current": "", "pending": ".pending", "previous": ".previous"}[stage]
        try:
            found = self.vault.secrets.kv.v2.read_secret_version(
                path=self.path(user) + suffix, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        data = found["data"]["data"]
        return data["access_key"], data["secret_key"]

    def known_secrets(self, user: str) -> dict[str, str]:
        found = {}
        for stage in ("current", "pending", "previous"):
            entry = self.entry(user, stage)
            if entry is not None:
                found[entry[0]] = entry[1]
        return found


def check_current_key_works(probe: StoreProbe, user: str) -> list[str]:
    """Invariants 1 and 4: what consumers read is an active key that authenticates."""
    entry = probe.entry(user, "current")
    if entry is None:
        return [f"{user}: no current entry in the store"]
    key_id, secret = entry
    status = probe.authed.keys(user).get(key_id)
    problems = []
    if status != "Active":  # moto lets an inactive key authenticate: ask IAM
        problems.append(f"{user}: stored current key {key_id} is {status or 'deleted'}")
    if not probe.authed.authenticates(key_id, secret):
        problems.append(f"{user}: stored current key {key_id} does not authenticate")
    return problems


def check_key_limit(probe: StoreProbe, user: str) -> list[str]:
    """Invariant 3: never more than 2 keys."""
    keys = probe.authed.keys(user)
    return [f"{user}: {len(keys)} keys"] if len(keys) > 2 else []


def check_no_lost_secret(probe: StoreProbe, user: str) -> list[str]:
    """Invariant 2: every active key's secret is in the store or held by its owner, and
    what is held there is that key's real secret (it authenticates)."""
    known = {key_id: key.secret for key_id, key in probe.authed.known.items()}
    known.update(probe.known_secrets(user))
    problems = []
    for key_id, status in probe.authed.keys(user).items():
        if status != "Active":
            continue
        if key_id not in known:
            problems.append(f"{user}: active key {key_id} has its secret nowhere")
        elif not probe.authed.authenticates(key_id, known[key_id]):
            problems.append(f"{user}: active key {key_id}: the secret held for it is wrong")
    return problems


def check_untouched(probe: StoreProbe, before: dict[str, dict[str, str]]) -> list[str]:
    """Keys keyturn did not create and was not asked to rotate are never touched."""
    problems = []
    for user, keys in before.items():
        now = probe.authed.keys(user)
        if now != keys:
            problems.append(f"bystander {user}: keys were {keys}, now {now}")
    return problems


def all_problems(probe: StoreProbe, user: str, bystanders: dict[str, dict[str, str]]) -> list[str]:
    return (
        check_current_key_works(probe, user)
        + check_key_limit(probe, user)
        + check_no_lost_secret(probe, user)
        + check_untouched(probe, bystanders)
    )
