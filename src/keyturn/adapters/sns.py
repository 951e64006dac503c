"""Amazon SNS: run notices for operators (enforce summaries, rotation results, failed runs).

SES mails a key's owner; this is the second channel, for the team that runs keyturn: one
message per run to a topic (`notify.sns_topic_arn`), from which AWS's own fan-out reaches
e-mail lists, SQS, AWS Chatbot (Slack, Teams), PagerDuty or any HTTPS endpoint.

What a message may hold: counts, AWS account ids, IAM user names and access key ids, the
run's state words, and the kind (class name) of an error; never a secret, and never free
text that another principal could have written: not a tag value, not an error's message
(it may quote a tag or a secret's document). `RunNotice` enforces that by construction:
its fields are typed, user names and key ids are checked against IAM's own alphabets, and
the text is composed here from those fields only.

The body is AWS Chatbot's custom-notification document (`version` 1.0, `source` custom,
`content` title/description, `metadata.additionalContext`), so a Chatbot subscription shows
it as is, and it is plain JSON for every other subscriber: the counts, the account and the
failed users are in `metadata.additionalContext` (strings, as that schema has them), and
nothing is added outside the documented fields. Message attributes `event` and
`outcome` let a subscription filter (e.g. only failures to PagerDuty).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from keyturn.adapters.aws_errors import translate
from keyturn.domain.model import IAM_USER_NAME
from keyturn.permissions import requires

# IAM's alphabets: user names `[\w+=,.@-]` (after the account id and a slash in a
# multi-account run), access key ids upper-case letters and digits.
USER_NAME = re.compile(rf"^(\d{{12}}/)?{IAM_USER_NAME.pattern}$")  # account/ in fan-out
KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
WORD = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
ERROR_KIND = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# At most this many users are named in one message; the rest are counted.
MAX_NAMED = 20
# SNS takes 256 KB a message; subjects at most 100 characters, ASCII, no line breaks.
MAX_SUBJECT = 100

Outcome = Literal["ok", "failed", "dry-run"]


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        # Never echo the value: it may be the hostile text this check keeps out.
        raise ValueError(f"{what} is not a valid identifier; left out of the notice")
    return value


@dataclass(frozen=True)
class UserResult:
    """One user's line in a rotation notice: ids and a state word only."""

    user: str
    state: str
    old_key_id: str | None = None
    new_key_id: str | None = None

    def __post_init__(self) -> None:
        _checked(USER_NAME, self.user, "user name")
        _checked(WORD, self.state, "state")
        for key in (self.old_key_id, self.new_key_id):
            if key is not None:
                _checked(KEY_ID, key, "access key id")


@dataclass(frozen=True)
class RunNotice:
    """What one run did, as counts and identifiers.

    `event` names the run (`keyturn.enforce`, `keyturn.rotate`, `keyturn.fanout`);
    `counts` are the run's summary numbers; `error_kind` is the exception's class name for
    a failed run (its message stays in the function's log, where access is controlled).
    """

    event: str
    outcome: Outcome
    counts: Mapping[str, int | bool] = field(default_factory=dict)
    account: str | None = None
    request_id: str | None = None
    error_kind: str | None = None
    users: Sequence[UserResult] = ()
    failed_users: Sequence[str] = ()

    def __post_init__(self) -> None:
        _checked(WORD, self.event, "event")
        for name in self.counts:
            _checked(WORD, name, "count name")
        if self.account is not None:
            _checked(ACCOUNT_ID, self.account, "account id")
        if self.request_id is not None:
            _checked(re.compile(r"^[A-Za-z0-9-]{1,64}$"), self.request_id, "request id")
        if self.error_kind is not None:
            _checked(ERROR_KIND, self.error_kind, "error kind")
        for user in self.failed_users:
            _checked(USER_NAME, user, "user name")

    @property
    def subject(self) -> str:
        where = f" in {self.account}" if self.account else ""
        words = {"ok": "done", "failed": "FAILED", "dry-run": "dry run"}[self.outcome]
        return f"keyturn {self.event.removeprefix('keyturn.')} {words}{where}"[:MAX_SUBJECT]

    def description(self) -> str:
        lines = [f"{name}: {str(value).lower()}" for name, value in sorted(self.counts.items())]
        if self.error_kind:
            lines.append(f"error: {self.error_kind} (the reason is in the function's log)")
        for result in self.users[:MAX_NAMED]:
            keys = " -> ".join(k for k in (result.old_key_id, result.new_key_id) if k)
            lines.append(f"{result.user}: {result.state}" + (f" ({keys})" if keys else ""))
        if len(self.users) > MAX_NAMED:
            lines.append(f"... and {len(self.users) - MAX_NAMED} more")
        if self.failed_users:
            named = ", ".join(self.failed_users[:MAX_NAMED])
            more = len(self.failed_users) - MAX_NAMED
            lines.append(f"failed: {named}" + (f" and {more} more" if more > 0 else ""))
        return "\n".join(lines)

    def document(self) -> dict[str, Any]:
        """The message body: AWS Chatbot's custom-notification shape."""
        context: dict[str, str] = {name: str(value) for name, value in self.counts.items()}
        context["outcome"] = self.outcome
        if self.account:
            context["account"] = self.account
        if self.request_id:
            context["request_id"] = self.request_id
        if self.error_kind:
            context["error_kind"] = self.error_kind
        if self.failed_users:
            context["failed_users"] = ",".join(self.failed_users)
        return {
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": self.subject,
                "description": self.description(),
            },
            "metadata": {
                "eventType": self.event,
                "summary": self.subject,
                "additionalContext": context,
            },
        }


class RotationResult(Protocol):
    """What a rotation outcome offers a notice (keyturn.services.rotate.Outcome has it)."""

    @property
    def user(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def old_key_id(self) -> str | None: ...
    @property
    def new_key_id(self) -> str | None: ...


def rotation_notice(results: Iterable[RotationResult], request_id: str | None = None) -> RunNotice:
    """A rotation run's notice: each user's state and key ids, the failed users by name.

    An entry whose user or state is not an identifier is counted but not named.
    """
    users: list[UserResult] = []
    failed: list[str] = []
    ok = bad = 0
    for result in results:
        ok, bad = (ok + 1, bad) if result.ok else (ok, bad + 1)
        try:
            if result.ok:
                users.append(
                    UserResult(result.user, str(result.state), result.old_key_id, result.new_key_id)
                )
            else:
                failed.append(_checked(USER_NAME, result.user, "user name"))
        except ValueError:
            continue
    return RunNotice(
        "keyturn.rotate",
        "failed" if bad else "ok",
        {"ok": ok, "failed": bad},
        request_id=request_id,
        users=users,
        failed_users=failed,
    )


class SnsNotices:
    """Publishes `RunNotice`s to one topic."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        # `client` is a boto3 SNS client (no mypy-boto3 stub for SNS in this environment).
        self._sns = client
        self.topic_arn = topic_arn

    @requires("sns:Publish")
    def publish(self, notice: RunNotice) -> str:
        """SNS: Publish, with `event` and `outcome` as message attributes; the message id."""
        with translate("sns:Publish", self.topic_arn):
            answer = self._sns.publish(
                TopicArn=self.topic_arn,
                Subject=notice.subject,
                Message=json.dumps(notice.document(), sort_keys=True),
                MessageAttributes={
                    "event": {"DataType": "String", "StringValue": notice.event},
                    "outcome": {"DataType": "String", "StringValue": notice.outcome},
                },
            )
        return str(answer["MessageId"])
