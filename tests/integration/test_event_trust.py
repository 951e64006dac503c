"""Events and queue messages may only tighten a run (issue 12 item 10).

Each case drives the real handler on moto as someone who may invoke the function or send to
the queue, but not configure it, would: asking for an acting run against a dry-run
deployment, for enforce against an audit deployment, for another member role, or for an
account outside the Organization. Each is refused in one line with an `event refused`
audit record, and no key is touched, no mail sent, no role assumed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from keyturn.domain.errors import BadInputError
from keyturn.handlers import enforce as enforce_handler
from keyturn.handlers.fanout import scheduler, worker
from keyturn.handlers.rotate import handler as rotate_handler
from keyturn.sandbox.aws import ACCOUNT, MEMBER_ROLE, REGION, LocalAws
from tests.integration.test_fanout_handlers import SCHEDULED, Context, received

SENDER = "keys@example.com"


def refused(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The `event refused` audit records (Powertools log records, their extra fields)."""
    return [
        vars(r)
        for r in caplog.records
        if getattr(r, "action", None) == "event" and getattr(r, "outcome", None) == "refused"
    ]


@pytest.fixture
def due_key(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """A dry-run deployment and a key 40 days old whose owner would be mailed for real."""
    for name, value in {
        "SOURCEMAIL": SENDER,
        "KEYTURN_ENFORCE_DRY_RUN": "true",
        "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
    }.items():
        monkeypatch.setenv(name, value)
    aws.client("ses").verify_email_identity(EmailAddress=SENDER)
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    aws.add_key("alice", age_days=40)
    return aws


def untouched(aws: LocalAws) -> None:
    assert aws.data()["ses"]["Message"] == []
    tags = aws.client("iam").list_user_tags(UserName="alice")["Tags"]
    assert [t["Key"] for t in tags] == ["Contact"]


# -- the enforce function ---------------------------------------------------------------------


def test_an_event_cannot_turn_a_dry_run_deployment_into_an_acting_one(
    due_key: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    event = {**SCHEDULED, "detail": {"dry_run": False}}
    with pytest.raises(BadInputError) as failed:
        enforce_handler.handler(event, Context())  # type: ignore[arg-type]
    message = str(failed.value)
    assert "\n" not in message
    assert "asks for dry_run false" in message
    assert "configured as a dry run" in message
    untouched(due_key)
    (record,) = refused(caplog)
    assert record["requested_dry_run"] is False


def test_an_event_may_make_an_acting_deployment_a_dry_run(
    due_key: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_ENFORCE_DRY_RUN", "false")
    event = {**SCHEDULED, "detail": {"dry_run": True}}
    summary = enforce_handler.handler(event, Context())  # type: ignore[arg-type]
    assert summary["dry_run"] is True
    untouched(due_key)


def test_a_misspelt_dry_run_is_refused_not_ignored(due_key: LocalAws) -> None:
    with pytest.raises(BadInputError, match="unknown field"):
        enforce_handler.handler({**SCHEDULED, "detail": {"dryrun": True}}, Context())  # type: ignore[arg-type]
    untouched(due_key)


# -- the rotation function --------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {"users": ["alice"], "dry_run": True},
        {"users": ["alice"], "dryrun": True},
        {"user": "alice"},
        {**SCHEDULED, "detail": {"users": ["alice"], "dry_run": True}},
        {"users": ["../admin"]},
    ],
)
def test_a_rotation_event_asking_for_what_it_cannot_have_is_refused(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch, event: dict[str, Any]
) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    aws.create_user("alice")
    old = aws.add_key("alice", age_days=100)
    with pytest.raises(BadInputError) as failed:
        rotate_handler(event)
    assert "\n" not in str(failed.value)
    keys = aws.client("iam").list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(old.key_id, "Active")]


def test_a_scheduled_rotation_event_is_read_from_its_detail(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    result = rotate_handler({**SCHEDULED, "detail": {"due": False}})
    assert result["summary"] == {
        "ok": 0,
        "failed": 0,
        "due_not_enrolled": 0,
        "untrusted": 0,
        "unpublished_events": 0,
    }


# -- the fan-out ------------------------------------------------------------------------------


@pytest.fixture
def organization(due_key: LocalAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    aws = due_key
    members = aws.create_organization("prod")
    url = aws.client("sqs").create_queue(QueueName="keyturn-accounts")["QueueUrl"]
    monkeypatch.setenv("KEYTURN_FANOUT_QUEUE_URL", url)
    monkeypatch.setenv("KEYTURN_FANOUT_ROLE_NAME", MEMBER_ROLE)
    iam = aws.client_in_account("iam", members[0])
    iam.create_user(UserName="bob", Tags=[{"Key": "Contact", "Value": "bob@example.com"}])
    iam.create_access_key(UserName="bob")
    return {"members": members, "queue": url}


def record(body: dict[str, Any], message_id: str = "m-1") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": json.dumps(body),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:keyturn-accounts",
        "awsRegion": REGION,
    }


def test_the_scheduler_refuses_an_event_that_loosens_the_dry_run(
    organization: dict[str, Any], due_key: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(BadInputError, match="configured as a dry run"):
        scheduler({**SCHEDULED, "detail": {"dry_run": False}}, Context())  # type: ignore[arg-type]
    assert received(due_key, organization["queue"]) == []
    assert len(refused(caplog)) == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"task": "enforce", "dry_run": False}, "configured as a dry run"),
        ({"task": "enforce", "role_name": "attacker-admin"}, "not the configured member role"),
        ({"task": "audit", "account_id": "999999999999"}, "not an active account"),
    ],
)
def test_the_worker_refuses_a_message_that_asks_for_more_than_the_deployment(
    organization: dict[str, Any],
    due_key: LocalAws,
    caplog: pytest.LogCaptureFixture,
    body: dict[str, Any],
    why: str,
) -> None:
    member = organization["members"][0]
    message = {"account_id": member, **body}
    with pytest.raises(BatchProcessingError):  # every record of the batch failed
        worker({"Records": [record(message)]}, Context())  # type: ignore[arg-type]
    (audit,) = refused(caplog)
    assert why in audit["reason"]
    assert audit["message_id"] == "m-1"
    untouched(due_key)
    bob = due_key.client_in_account("iam", member).list_user_tags(UserName="bob")["Tags"]
    assert [t["Key"] for t in bob] == ["Contact"]


def test_an_enforce_message_to_an_audit_deployment_is_refused(
    organization: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("KEYTURN_FANOUT_TASK", "audit")
    monkeypatch.setenv("KEYTURN_ENFORCE_DRY_RUN", "false")
    message = {"account_id": organization["members"][0], "task": "enforce"}
    with pytest.raises(BatchProcessingError):
        worker({"Records": [record(message)]}, Context())  # type: ignore[arg-type]
    (audit,) = refused(caplog)
    assert "task is audit" in audit["reason"]


def test_a_message_that_only_tightens_runs(
    organization: dict[str, Any], due_key: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_ENFORCE_DRY_RUN", "false")
    member = organization["members"][0]
    answer = worker(
        {
            "Records": [
                record({"account_id": member, "task": "enforce", "dry_run": True}, "m-1"),
                record({"account_id": member, "task": "audit", "role_name": MEMBER_ROLE}, "m-2"),
            ]
        },
        Context(),  # type: ignore[arg-type]
    )
    assert answer == {"batchItemFailures": []}
    untouched(due_key)


def test_without_an_organization_no_message_is_trusted(
    due_key: LocalAws, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KEYTURN_FANOUT_ROLE_NAME", MEMBER_ROLE)
    with pytest.raises(BatchProcessingError):
        worker({"Records": [record({"account_id": ACCOUNT, "task": "audit"})]}, Context())  # type: ignore[arg-type]
    errors = [str(getattr(r, "error", "")) for r in caplog.records]
    assert any(
        "cannot check that the message's account is in the Organization" in e
        or "is not an active account of this Organization" in e
        for e in errors
    ), errors
