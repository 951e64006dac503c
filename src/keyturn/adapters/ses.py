"""Amazon SES (v1 API) behind a small class: send a notice, read and request verification.

What this adapter never does: DeleteIdentity. Seed 002 deleted identities still pending
verification, which throws away the owner's verification link and starts over every day.
Verification requests are paced by the caller (`keyturn.services.enforce.RateLimiter`),
which skips instead of sleeping, so a run never blocks on SES's 1 request a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyturn.adapters.aws_errors import translate
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient

# GetIdentityVerificationAttributes takes at most 100 identities a call.
BATCH = 100
VERIFIED = "Success"
NOT_REQUESTED = "NotStarted"
# SES sandbox accounts get 200 messages a day; production accounts start at 50,000.
SANDBOX_DAILY_QUOTA = 200.0


@dataclass(frozen=True, slots=True)
class SendQuota:
    max_24_hour: float
    sent_last_24_hours: float
    max_send_rate: float

    @property
    def remaining(self) -> float | None:
        """Mails still allowed today; None when unlimited (SES reports -1)."""
        if self.max_24_hour < 0:
            return None
        return max(0.0, self.max_24_hour - self.sent_last_24_hours)

    @property
    def looks_like_sandbox(self) -> bool:
        """A heuristic: SES v1 has no "am I in the sandbox" call; the sandbox quota is 200."""
        return 0 <= self.max_24_hour <= SANDBOX_DAILY_QUOTA


class SesMailer:
    def __init__(self, client: SESClient) -> None:
        self._ses = client

    @requires("ses:SendEmail")
    def send(self, *, source: str, to: str, subject: str, text: str, html: str) -> str:
        """SES: SendEmail with a text and an HTML part; returns the message id."""
        with translate("ses:SendEmail", to):
            response = self._ses.send_email(
                Source=source,
                Destination={"ToAddresses": [to]},
                Message={
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": text, "Charset": "UTF-8"},
                        "Html": {"Data": html, "Charset": "UTF-8"},
                    },
                },
            )
        return response["MessageId"]

    @requires("ses:GetIdentityVerificationAttributes")
    def verification_status(self, identities: Iterable[str]) -> dict[str, str]:
        """SES: GetIdentityVerificationAttributes, 100 at a time.

        Identities SES has never heard of come back as "NotStarted".
        """
        wanted = list(dict.fromkeys(identities))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start : start + BATCH]
            with translate("ses:GetIdentityVerificationAttributes"):
                answer = self._ses.get_identity_verification_attributes(Identities=batch)
            for identity, attributes in answer["VerificationAttributes"].items():
                found[identity] = attributes["VerificationStatus"]
        return {identity: found.get(identity, NOT_REQUESTED) for identity in wanted}

    @requires("ses:VerifyEmailIdentity")
    def request_verification(self, address: str) -> None:
        """SES: VerifyEmailIdentity (SES mails the address a link; nothing waits for it)."""
        with translate("ses:VerifyEmailIdentity", address):
            self._ses.verify_email_identity(EmailAddress=address)

    @requires("ses:GetSendQuota")
    def send_quota(self) -> SendQuota:
        """SES: GetSendQuota."""
        with translate("ses:GetSendQuota"):
            answer = self._ses.get_send_quota()
        return SendQuota(
            max_24_hour=float(answer.get("Max24HourSend", -1)),
            sent_last_24_hours=float(answer.get("SentLast24Hours", 0)),
            max_send_rate=float(answer.get("MaxSendRate", 1)),
        )
