"""The Lambda handler with a real EventBridge scheduled-event payload, against moto."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from keyturn.domain.errors import BadInputError
from keyturn.handlers.enforce import handler
from keyturn.sandbox.aws import LocalAws

SENDER = "keys@example.com"
# As EventBridge delivers it (a rule with ScheduleExpression "cron(0 8 * * ? *)").
SCHEDULED_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-22T08:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/keyturn-enforce-daily"],
    "detail": {},
}


@dataclass
class Context:
    function_name: str = "keyturn-enforce"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:keyturn-enforce"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/keyturn-enforce"
    log_stream_name: str = "2026/11/22/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def lambda_env(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    for name, value in {
        "SOURCEMAIL": SENDER,
        "NOTIFYKEYAGE": "30",
        "KEYTURN_ENFORCE_DRY_RUN": "false",
        "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
        "KEYTURN_NOTIFY_FALLBACK_CONTACT": "secops@example.com",
        "KEYTURN_POLICY_EXEMPT_TAGS": "keyturn:exempt=true",
    }.items():
        monkeypatch.setenv(name, value)
    aws.client("ses").verify_email_identity(EmailAddress=SENDER)
    return aws


def test_scheduled_event_enforces_once_and_logs_json(
    lambda_env: LocalAws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = lambda_env
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    key = aws.add_key("alice", age_days=31)
    aws.create_user("nobody")
    aws.add_key("nobody", age_days=45)
    aws.create_user("vip", tags={"keyturn:exempt": "true"})
    aws.add_key("vip", age_days=400)

    result = handler(SCHEDULED_EVENT, Context())  # type: ignore[arg-type]
    assert result["notified"] == 2
    assert result["mails_sent"] == 2
    assert result["skipped"] == 1
    assert result["failed"] == 0
    assert json.dumps(result)  # counts only, serialisable
    to = sorted(m["destinations"]["ToAddresses"][0] for m in aws.data()["ses"]["Message"])
    assert to == ["alice@example.com", "secops@example.com"]

    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert any(line.get("action") == "notice" and line.get("outcome") == "sent" for line in logs)
    assert all(line["correlation_id"] == Context.aws_request_id for line in logs)
    assert key.secret not in json.dumps(logs)

    again = handler(SCHEDULED_EVENT, Context())  # type: ignore[arg-type]
    assert again["mails_sent"] == 0
    assert len(aws.data()["ses"]["Message"]) == 2


def test_dry_run_from_the_environment_changes_nothing(
    lambda_env: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_ENFORCE_DRY_RUN", "true")
    lambda_env.create_user("alice", tags={"Contact": "alice@example.com"})
    lambda_env.add_key("alice", age_days=31)
    result = handler(SCHEDULED_EVENT, Context())  # type: ignore[arg-type]
    assert result == {
        "dry_run": True,
        "planned": 1,
        "skipped": 0,
        "within_policy": 0,
        "warnings": 0,
    }
    assert lambda_env.data()["ses"]["Message"] == []


@pytest.mark.parametrize(
    "event",
    [
        {"source": "aws.s3", "detail-type": "Object Created"},
        {**SCHEDULED_EVENT, "detail": {"dry_run": "no"}},
        ["not", "an", "object"],
    ],
)
def test_a_bad_event_raises_before_anything_runs(lambda_env: LocalAws, event: Any) -> None:
    with pytest.raises(BadInputError):
        handler(event, Context())  # type: ignore[arg-type]


def test_bad_configuration_raises(lambda_env: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCEMAIL")
    with pytest.raises(BadInputError, match="SOURCEMAIL"):
        handler(SCHEDULED_EVENT, Context())  # type: ignore[arg-type]
