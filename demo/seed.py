"""A sandbox account that looks like a real one: 64 IAM users, about 80 access keys.

Deterministic (`random.Random(SEED)`), so every run tells the same story, and built around
the policy's edges: keys of 29, 30, 31, 36 and 37 days sit on both sides of "notify at 30"
and "deactivate at 37". Other stages may import `population()` and `seed_account()` to
build on the same account.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from keyturn.sandbox.aws import LocalAws

SEED = 20240611
EXEMPT_TAG = ("keyturn:exempt", "true")
# Half an hour past the whole day: the age keyturn computes a few seconds later is still
# exactly that many days, never one less.
_PAST_MIDNIGHT = 0.02


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


PEOPLE = _names(
    "alice.martin bob.nguyen carla.rossi dmitri.volkov emma.schmidt farid.haddad "
    "grace.okafor hiro.tanaka ines.garcia jonas.berg kavya.iyer liam.obrien maria.silva "
    "noah.cohen olivia.brown pedro.alves quentin.dubois rania.aziz sofia.lindqvist "
    "tom.walker uma.patel victor.chen wen.li zoe.fischer"
)
SERVICES = _names(
    "svc-billing-exporter svc-invoice-renderer svc-search-indexer svc-metrics-shipper "
    "svc-backup-runner svc-email-sender svc-thumbnailer svc-payments-webhook svc-ledger-sync "
    "svc-audit-log-forwarder svc-report-builder svc-cdn-purger svc-geoip-updater "
    "svc-fraud-scorer svc-etl-nightly svc-feature-flags svc-session-cleaner svc-pdf-archiver "
    "svc-dns-updater svc-queue-drainer svc-healthcheck"
)
CI = _names(
    "ci-deployer ci-terraform-plan ci-terraform-apply ci-artifact-uploader "
    "ci-integration-tests ci-release-bot ci-docs-publisher ci-image-scanner ci-nightly-cleanup"
)
OTHERS = _names(
    "vendor-datadog-integration vendor-snowflake-loader vendor-pagerduty partner-acme-sftp "
    "legacy-ftp-bridge legacy-jenkins temp-migration-2021 backup-offsite-sync "
    "break-glass-admin vendor-sso-bridge"
)

# Ages the random part draws from: mostly young keys, a cluster at the thresholds, a tail.
AGE_POOL = (1, 2, 4, 8, 12, 16, 21, 25, 27, 29, 30, 32, 34, 36, 37, 41, 52, 75, 120, 210, 365)
SERVICE_NAMES = ("s3", "sqs", "dynamodb", "sts", "kinesis", "ses", "lambda", "ec2")
# Nobody to tell: keys whose owner left no Contact tag (plus some drawn at random).
STORY_UNTAGGED = frozenset({"temp-migration-2021", "legacy-ftp-bridge", "svc-search-indexer"})


@dataclass(frozen=True)
class KeySpec:
    age_days: int
    active: bool = True
    last_used_days_ago: float | None = None  # None: never used
    service: str = "s3"


@dataclass(frozen=True)
class UserSpec:
    name: str
    path: str
    keys: tuple[KeySpec, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def exempt(self) -> bool:
        return self.tags.get(EXEMPT_TAG[0]) == EXEMPT_TAG[1]


@dataclass
class SeededAccount:
    users: list[UserSpec]
    key_ids: dict[str, list[str]]  # user -> key ids, oldest first
    seconds: float

    @property
    def keys(self) -> int:
        return sum(len(ids) for ids in self.key_ids.values())

    def facts(self) -> dict[str, int]:
        keys = [key for user in self.users for key in user.keys]
        return {
            "users": len(self.users),
            "keys": len(keys),
            "two_keys": sum(1 for user in self.users if len(user.keys) == 2),
            "inactive": sum(1 for key in keys if not key.active),
            "never_used": sum(1 for key in keys if key.last_used_days_ago is None),
            "no_contact": sum(1 for user in self.users if "Contact" not in user.tags),
            "exempt": sum(1 for user in self.users if user.exempt),
        }


def _used(rng: random.Random, age: int, *, stale: bool = False) -> float:
    """A last use no earlier than the key's creation: recent, or (stale) long ago."""
    ago = rng.uniform(age * 0.5, age) if stale else rng.uniform(0.02, 2.5)
    return round(min(ago, max(age - 0.1, 0.01)), 3)


# The users whose keys tell the story; everything else is drawn at random.
def _story(rng: random.Random) -> dict[str, tuple[KeySpec, ...]]:
    def key(age: int, **kwargs: Any) -> KeySpec:
        kwargs.setdefault("last_used_days_ago", _used(rng, age))
        return KeySpec(age_days=age, **kwargs)

    return {
        "ci-deployer": (key(5, service="sts"),),
        "svc-billing-exporter": (key(29),),
        "svc-invoice-renderer": (key(30),),
        "alice.martin": (key(31, service="ec2"),),
        "svc-search-indexer": (key(36, service="es"),),
        "bob.nguyen": (key(37, service="sts"),),
        "svc-metrics-shipper": (key(45, service="cloudwatch"),),
        "svc-backup-runner": (key(90),),
        "legacy-ftp-bridge": (key(400, last_used_days_ago=211.0),),
        "temp-migration-2021": (key(1100, last_used_days_ago=None),),
        "legacy-jenkins": (key(300, active=False, last_used_days_ago=280.0),),
        "break-glass-admin": (key(400, last_used_days_ago=None),),
        "vendor-sso-bridge": (key(200, service="sts"),),
        # rotations: a new key beside the old one, retired or (forgotten) still active
        "svc-payments-webhook": (key(95, active=False, last_used_days_ago=6.0), key(3)),
        "hiro.tanaka": (key(60, service="sts"), key(2, service="sts")),
        "ci-terraform-apply": (key(38, last_used_days_ago=8.0), key(8, service="sts")),
        "svc-email-sender": (key(33, active=False, last_used_days_ago=30.0), key(1, service="ses")),
        "vendor-snowflake-loader": (key(365, last_used_days_ago=120.0), key(29)),
        "ci-image-scanner": (key(12), key(0, last_used_days_ago=None)),
    }


def population(seed: int = SEED) -> list[UserSpec]:
    """The same 64 users every time: people, services, CI robots, vendors and relics."""
    rng = random.Random(seed)
    story = _story(rng)
    names = PEOPLE + SERVICES + CI + OTHERS
    random_two = set(rng.sample([n for n in names if n not in story], k=15 - _two(story)))
    untagged = STORY_UNTAGGED | set(rng.sample([n for n in names if n not in story], k=11))
    users = []
    for name in names:
        path, contact = _owner(name)
        tags = {} if name in untagged else {"Contact": contact}
        if name in ("break-glass-admin", "vendor-sso-bridge"):
            tags[EXEMPT_TAG[0]] = EXEMPT_TAG[1]
        keys = story.get(name) or _random_keys(rng, two=name in random_two)
        users.append(UserSpec(name=name, path=path, keys=keys, tags=tags))
    return users


def _two(story: dict[str, tuple[KeySpec, ...]]) -> int:
    return sum(1 for keys in story.values() if len(keys) == 2)


def _owner(name: str) -> tuple[str, str]:
    if name in PEOPLE:
        return "/people/", f"{name}@example.com"
    if name.startswith("ci-"):
        return "/ci/", "platform-team@example.com"
    if name.startswith("svc-"):
        team = name.removeprefix("svc-").split("-")[0]
        return "/service/", f"team-{team}@example.com"
    return "/external/", "it-ops@example.com"


def _random_keys(rng: random.Random, *, two: bool) -> tuple[KeySpec, ...]:
    age = rng.choice(AGE_POOL)
    stale = rng.random() < 0.15
    first = KeySpec(age, last_used_days_ago=_used(rng, age, stale=stale), service=_svc(rng))
    if not two:
        return (first,)
    old_age = age + rng.choice((20, 35, 60, 150))
    retired = rng.random() < 0.5
    old = KeySpec(
        old_age,
        active=not retired,
        last_used_days_ago=_used(rng, old_age, stale=retired),
        service=first.service,
    )
    return (old, first)


def _svc(rng: random.Random) -> str:
    return rng.choice(SERVICE_NAMES)


def seed_account(
    aws: LocalAws,
    users: list[UserSpec],
    *,
    on_user: Callable[[str], None] | None = None,
    workers: int = 4,
) -> SeededAccount:
    """Create the users and keys through the IAM API, then backdate them in the emulator.

    One shared client and a few threads for the API part (a client per call, as the
    one-off `LocalAws.add_key` helper does, triples the time). Backdating walks moto's
    in-memory users, so it runs after every API call has returned, never beside them.
    """
    started = time.monotonic()
    iam = aws.client("iam")

    def create(user: UserSpec) -> list[str]:
        iam.create_user(
            UserName=user.name,
            Path=user.path,
            Tags=[{"Key": k, "Value": v} for k, v in user.tags.items()],
        )
        ids = []
        for spec in user.keys:
            key_id = iam.create_access_key(UserName=user.name)["AccessKey"]["AccessKeyId"]
            if not spec.active:
                iam.update_access_key(UserName=user.name, AccessKeyId=key_id, Status="Inactive")
            ids.append(key_id)
        return ids

    key_ids: dict[str, list[str]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(create, user): user.name for user in users}
        for future in as_completed(futures):
            key_ids[futures[future]] = future.result()
            if on_user is not None:
                on_user(futures[future])
    for user in users:
        for spec, key_id in zip(user.keys, key_ids[user.name], strict=True):
            aws.backdate(key_id, spec.age_days + _PAST_MIDNIGHT)
            if spec.last_used_days_ago is not None:
                aws.set_last_used(key_id, spec.last_used_days_ago, service=spec.service)
    ordered = {user.name: key_ids[user.name] for user in users}
    return SeededAccount(users=users, key_ids=ordered, seconds=time.monotonic() - started)
