"""Enforce mails while IAM steps go on (issue 19), and never ahead of the steps a mail names.

Fakes from test_enforce_service; no time is asserted: a blocked IAM call waits on an event
that only a sent mail sets (a bounded wait, so the old one-after-the-other code fails the
test instead of hanging it).
"""

from __future__ import annotations

import re
import threading

from keyturn.adapters.ses import SendQuota
from keyturn.domain.enforcement import EnforcementSettings
from keyturn.domain.errors import OperationFailedError
from keyturn.domain.model import KeyStatus
from tests.unit.test_enforce_service import SENDER, FakeIam, FakeSes, service

KEY_ID = re.compile(r"AKIA[0-9A-Z]{16}")
WITHOUT_NOTICE = EnforcementSettings(deactivate_without_notice=True)


class SlowIam(FakeIam):
    """Deactivating `slow_user`'s key waits (bounded) until a mail went out."""

    def __init__(self, slow_user: str) -> None:
        super().__init__()
        self.slow_user = slow_user
        self.mailed = threading.Event()
        self.saw_mail_while_deactivating = False
        self.inactive: set[str] = set()
        self.failing: set[str] = set()
        self._lock = threading.Lock()

    def set_status(self, user: str, key_id: str, status: KeyStatus) -> None:
        if user in self.failing:
            raise OperationFailedError(f"iam:UpdateAccessKey ({user}) failed: Throttling")
        if user == self.slow_user:
            self.saw_mail_while_deactivating = self.mailed.wait(timeout=5)
        with self._lock:
            super().set_status(user, key_id, status)
            if status is KeyStatus.INACTIVE:
                self.inactive.add(key_id)


class CheckingSes(FakeSes):
    """Records, at send time, any key a deactivation notice names that is still active."""

    def __init__(self, iam: SlowIam) -> None:
        super().__init__({SENDER: "Success"})
        self.iam = iam
        self.named_but_active: list[str] = []
        self._lock = threading.Lock()

    def send(self, *, source: str, to: str, subject: str, text: str, html: str) -> str:
        with self._lock:
            self.named_but_active += [k for k in KEY_ID.findall(text) if k not in self.iam.inactive]
            message_id = super().send(source=source, to=to, subject=subject, text=text, html=html)
        self.iam.mailed.set()
        return message_id

    def send_quota(self) -> SendQuota:
        return SendQuota(self.quota, 0, 14)


def test_a_notice_goes_out_while_another_users_deactivation_is_still_under_way() -> None:
    iam = SlowIam(slow_user="user5")
    for number in range(6):
        iam.add(f"user{number}", f"AKIA{number:016d}", 60, f"user{number}@example.com")
    ses = CheckingSes(iam)
    rates: list[float] = []
    enforcer, _ = service(iam, ses, rules=WITHOUT_NOTICE)
    enforcer._send_rate = rates.append  # what wiring passes: the pacer's SES limit
    outcome = enforcer.apply(enforcer.plan())
    assert iam.saw_mail_while_deactivating, "mails waited for every deactivation"
    assert outcome.counts["deactivated"] == 6
    assert sorted(ses.sent) == sorted(f"user{n}@example.com" for n in range(6))
    assert outcome.counts["told_deactivated"] == 6
    assert ses.named_but_active == []
    assert rates == [14]  # SES's MaxSendRate reached the pacer


def test_a_shared_address_is_mailed_once_after_all_its_keys_and_never_for_a_failed_one() -> None:
    iam = SlowIam(slow_user="user3")
    iam.add("user0", "AKIA0000000000000000", 60, "solo@example.com")  # first in plan order
    for number in range(1, 6):
        iam.add(f"user{number}", f"AKIA{number:016d}", 60, "team@example.com")
    iam.failing.add("user1")
    ses = CheckingSes(iam)
    enforcer, sink = service(iam, ses, rules=WITHOUT_NOTICE)
    outcome = enforcer.apply(enforcer.plan())
    # solo's mail went out while user3 (on team's mail) was still being deactivated ...
    assert iam.saw_mail_while_deactivating
    # ... and team's one mail only after all its keys' steps, naming none that is active.
    assert sorted(ses.sent) == ["solo@example.com", "team@example.com"]
    assert ses.named_but_active == []
    team = next(
        e for e in sink.events if e["action"] == "mail" and e["recipients"] == ["team@example.com"]
    )
    assert "AKIA0000000000000001" not in team["keys"]
    assert outcome.counts["deactivated"] == 5
    assert outcome.counts["told_deactivated"] == 5
    assert outcome.counts["failed"] == 1
