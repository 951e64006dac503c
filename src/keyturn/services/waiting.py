"""Which users' old keys `retire = "when-quiet"` is still waiting on, and why, for the audit.

The line is the rotation's own: `keyturn.domain.retirement.decide` writes it ("old key still
used by <service> in <region> <n> min ago, waiting") for the rotate summary and here, so an
operator finds the consumer that did not move from either place.

Read-only, and on state only keyturn can have written: a user is listed only when its
journal record is sealed (keyturn.domain.trust), was promoted (it carries the promotion
time), and IAM still lists the old key as active. Costs, per user with a journal record:
ListUserTags, ListAccessKeys, GetAccessKeyLastUsed; nothing for the others (one paginated
GetAccountAuthorizationDetails finds them).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from keyturn.domain.errors import KeyturnError
from keyturn.domain.retirement import QuietPolicy, Verdict, decide
from keyturn.domain.rotation import RotationRecord
from keyturn.ports import Clock, KeyManager, RotationJournal


class WaitingLines:
    def __init__(
        self,
        keys: KeyManager,
        journal: RotationJournal,
        clock: Clock,
        policy: QuietPolicy,
        *,
        workers: int = 8,
    ) -> None:
        self._iam = keys
        self._journal = journal
        self._clock = clock
        self._policy = policy
        self._workers = max(1, workers)

    def lines(self, users: Iterable[str] | None = None) -> dict[str, str]:
        """user -> the waiting line, for every (named, or journaled) user still waiting or
        escalated; a user whose state cannot be read is left out (the audit goes on)."""
        chosen = list(users) if users is not None else self._journal.users_with_records()
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            found = dict(zip(chosen, pool.map(self.line, chosen), strict=True))
        return {user: line for user, line in sorted(found.items()) if line is not None}

    def line(self, user: str) -> str | None:
        try:
            record = self._journal.read(user)
            if not isinstance(record, RotationRecord):  # none, or not sealed by keyturn
                return None
            old, promoted = record.old_key_id, record.promoted_at
            if old is None or promoted is None or record.state.terminal:
                return None
            keys = {key.key_id: key for key in self._iam.list_keys(user)}
            if old not in keys or not keys[old].active:
                return None  # retired already
            decision = decide(promoted, self._iam.last_used(old), self._clock.now(), self._policy)
        except KeyturnError:
            return None
        return None if decision.verdict is Verdict.RETIRE else decision.reason
