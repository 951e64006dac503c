"""The key inventory: every access key, its age, last use, owner and policy finding.

Two sources. The credential report costs a handful of IAM calls for the whole account and
is the default. `--user` reads named users directly (GetUser, ListAccessKeys,
GetAccessKeyLastUsed), which is exact and live but costs calls per user.

Per-user extras (key ids, Contact tags, exemption tags) cost one call per user each, so
they are read only when asked, concurrently, in chunks, keeping the stream bounded in
memory for accounts with 100,000 users.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import groupby, islice
from typing import TypeVar

from keyturn.adapters.iam import KeyMetadata
from keyturn.domain.errors import NotFoundError
from keyturn.domain.model import ROOT_USER, AccessKey, AuditedKey, Finding
from keyturn.domain.policy import PolicySettings, classify
from keyturn.ports import Clock, UserDirectory

CHUNK_USERS = 256
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AuditRequest:
    users: tuple[str, ...] = ()
    key_ids: bool = False
    contacts: bool = False


@dataclass(slots=True)
class AuditResult:
    generated_at: datetime
    policy: PolicySettings
    source: str
    keys: list[AuditedKey]
    warnings: list[str] = field(default_factory=list)
    # retire = "when-quiet": user -> "old key still used by ... waiting" (services.waiting)
    waiting: dict[str, str] = field(default_factory=dict)

    def counts(self) -> Counter[Finding]:
        return Counter(key.finding for key in self.keys)

    @property
    def out_of_policy(self) -> int:
        return sum(1 for key in self.keys if key.finding.out_of_policy)


@dataclass(slots=True)
class AuditStream:
    """An audit whose keys are produced while they are consumed, one at a time.

    What JSON and CSV need for 100,000 users without holding 100,000 keys: the caller
    iterates `keys` once. `warnings` fills up during that iteration, so read it after.
    Reading the credential report (and any error doing so) happens on the first key.
    """

    generated_at: datetime
    policy: PolicySettings
    source: str
    keys: Iterator[AuditedKey]
    warnings: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)


class AuditService:
    def __init__(
        self,
        directory: UserDirectory,
        clock: Clock,
        policy: PolicySettings,
        *,
        contact_tag: str = "Contact",
        workers: int = 8,
    ) -> None:
        self._iam = directory
        self._clock = clock
        self._policy = policy
        self._contact_tag = contact_tag
        self._workers = max(1, workers)

    def run(self, request: AuditRequest) -> AuditResult:
        """Every key in a list: for reports that sort or count before writing (table, HTML)."""
        stream = self.stream(request)
        keys = list(stream.keys)
        return AuditResult(
            generated_at=stream.generated_at,
            policy=stream.policy,
            source=stream.source,
            keys=keys,
            warnings=stream.warnings,
        )

    def stream(self, request: AuditRequest) -> AuditStream:
        """The same audit as `run`, lazily: memory stays flat whatever the account's size."""
        warnings: list[str] = []
        now = self._clock.now()
        return AuditStream(
            generated_at=now,
            policy=self._policy,
            source="iam-api" if request.users else "credential-report",
            keys=self.iter_keys(request, now, warnings),
            warnings=warnings,
        )

    def iter_keys(
        self, request: AuditRequest, now: datetime, warnings: list[str]
    ) -> Iterator[AuditedKey]:
        """Classified keys, in report order (or the order of `request.users`)."""
        groups = self._exempt_group_members()
        if request.users:
            keys: Iterable[AccessKey] = self._direct(request, groups)
        else:
            keys = self._from_report(request, groups, warnings)
        for key in keys:
            yield classify(key, now, self._policy)

    # -- credential report ------------------------------------------------------------

    def _from_report(
        self,
        request: AuditRequest,
        groups: dict[str, frozenset[str]],
        warnings: list[str],
    ) -> Iterator[AccessKey]:
        want_tags = request.contacts or bool(self._policy.exempt_tags)
        by_user = (list(rows) for _, rows in groupby(self._iam.credential_report(), _user_of))
        if not (want_tags or request.key_ids):
            for rows in by_user:
                yield from (self._with_groups(key, groups) for key in rows)
            return

        def enrich(rows: list[AccessKey]) -> list[AccessKey]:
            return self._enrich(rows, request, want_tags, groups, warnings)

        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            for chunk in _chunks(by_user, CHUNK_USERS):
                for enriched in pool.map(enrich, chunk):
                    yield from enriched

    def _enrich(
        self,
        rows: list[AccessKey],
        request: AuditRequest,
        want_tags: bool,
        groups: dict[str, frozenset[str]],
        warnings: list[str],
    ) -> list[AccessKey]:
        user = rows[0].user
        if user == ROOT_USER:
            return [self._with_groups(key, groups) for key in rows]
        tags = self._iam.user_tags(user) if want_tags else None
        ids: dict[int, str] = {}
        if request.key_ids:
            ids = match_slots(rows, self._iam.list_access_keys(user))
            for key in rows:
                if key.slot not in ids:
                    warnings.append(
                        f"{user}: access_key_{key.slot} is no longer in IAM "
                        "(the report is older than the key's change)"
                    )
        return [
            replace(
                self._with_groups(key, groups),
                key_id=ids.get(key.slot),
                user_tags=tags,
                contact=self._contact(tags) if request.contacts else None,
            )
            for key in rows
        ]

    # -- named users, read directly ---------------------------------------------------

    def _direct(
        self, request: AuditRequest, groups: dict[str, frozenset[str]]
    ) -> Iterator[AccessKey]:
        users = list(dict.fromkeys(request.users))
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            results = list(pool.map(self._read_user, users))
        unknown = [user for user, keys in zip(users, results, strict=True) if keys is None]
        if unknown:
            raise NotFoundError(f"no such IAM user: {', '.join(unknown)}")
        for keys in results:
            for key in keys or ():
                yield replace(
                    self._with_groups(key, groups),
                    contact=self._contact(key.user_tags) if request.contacts else None,
                )

    def _read_user(self, name: str) -> list[AccessKey] | None:
        try:
            user = self._iam.get_user(name)
        except NotFoundError:
            return None
        keys = []
        for slot, meta in enumerate(self._iam.list_access_keys(name), start=1):
            keys.append(
                AccessKey(
                    account=user.account,
                    user=user.name,
                    slot=slot,
                    status=meta.status,
                    created=meta.created,
                    last_used=self._iam.last_used(meta.key_id),
                    key_id=meta.key_id,
                    user_tags=user.tags,
                )
            )
        return keys

    # -- helpers ----------------------------------------------------------------------

    def _exempt_group_members(self) -> dict[str, frozenset[str]]:
        return {group: self._iam.group_members(group) for group in self._policy.exempt_groups}

    def _with_groups(self, key: AccessKey, groups: dict[str, frozenset[str]]) -> AccessKey:
        if not groups:
            return key
        member_of = frozenset(group for group, users in groups.items() if key.user in users)
        return replace(key, user_groups=member_of)

    def _contact(self, tags: Mapping[str, str] | None) -> str | None:
        if not tags:
            return None
        return tags.get(self._contact_tag)


def match_slots(rows: Sequence[AccessKey], live: Sequence[KeyMetadata]) -> dict[int, str]:
    """Map report slots to key ids by creation time.

    The report's `last_rotated` is the key's creation time, to the second. Keys created in
    the same second are matched in creation order, as IAM numbers its slots that way.
    """
    unclaimed = sorted(live, key=lambda meta: meta.created)
    found: dict[int, str] = {}
    for key in sorted(rows, key=lambda key: key.slot):
        second = int(key.created.timestamp())
        for meta in unclaimed:
            if int(meta.created.timestamp()) == second:
                found[key.slot] = meta.key_id
                unclaimed.remove(meta)
                break
    return found


def _user_of(key: AccessKey) -> str:
    return key.user


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
