"""The Organization fan-out on moto: the scheduler queues one message per active account,
the worker runs each account as the member role and reports only the failed ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keyturn.domain.errors import BadInputError
from keyturn.handlers.fanout import parse_job, scheduler, worker
from keyturn.sandbox.aws import ACCOUNT, MEMBER_ROLE, REGION, LocalAws

ROLE = MEMBER_ROLE
SCHEDULED = {
    "version": "0",
    "id": "0f8c7a1e-0a4b-4a57-9a7e-6d6f1c0e2b11",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": ACCOUNT,
    "time": "2026-11-22T08:00:00Z",
    "region": REGION,
    "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/keyturn-fanout"],
    "detail": {},
}


class Context:
    aws_request_id = "6bc28136-4d2a-4a5e-9c8a-6e0c3c7b1f11"
    function_name = "keyturn-fanout-worker"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyturn-fanout-worker"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@pytest.fixture
def organization(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    members = aws.create_organization("prod", "dev")
    url = aws.client("sqs").create_queue(QueueName="keyturn-accounts")["QueueUrl"]
    for name, value in {
        "KEYTURN_FANOUT_QUEUE_URL": url,
        "KEYTURN_FANOUT_ROLE_NAME": ROLE,
        "SOURCEMAIL": "keys@example.com",
        "KEYTURN_ENFORCE_DRY_RUN": "true",
    }.items():
        monkeypatch.setenv(name, value)
    return {"members": members, "queue": url}


def received(aws: LocalAws, url: str) -> list[dict[str, Any]]:
    """Messages as the SQS event source hands them to the worker (the real record shape)."""
    sqs = aws.client("sqs")
    records = []
    while True:
        found = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not found:
            return records
        for message in found:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:keyturn-accounts",
                    "awsRegion": REGION,
                }
            )


def test_scheduler_queues_one_message_per_active_account(
    aws: LocalAws, organization: dict[str, Any]
) -> None:
    summary = scheduler(SCHEDULED, Context())  # type: ignore[arg-type]
    assert summary == {"accounts": 3, "task": "enforce"}
    bodies = [json.loads(r["body"]) for r in received(aws, organization["queue"])]
    assert sorted(b["account_id"] for b in bodies) == sorted([ACCOUNT, *organization["members"]])
    assert {b["task"] for b in bodies} == {"enforce"}


def test_worker_reports_only_the_failed_account(
    aws: LocalAws, organization: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = organization["members"]
    for account in (good, bad):
        iam = aws.client_in_account("iam", account)
        iam.create_user(UserName="alice", Tags=[{"Key": "Contact", "Value": "a@example.com"}])
        iam.create_access_key(UserName="alice")
    # the bad account lacks the configured exempt group: its enforce run must stop (a bad
    # tag no longer does: it flags one user and the run goes on, see issue 12)
    monkeypatch.setenv("KEYTURN_POLICY_EXEMPT_GROUPS", "break-glass")
    aws.client("iam").create_group(GroupName="break-glass")
    aws.client_in_account("iam", good).create_group(GroupName="break-glass")

    scheduler(SCHEDULED, Context())  # type: ignore[arg-type]
    records = received(aws, organization["queue"])
    assert len(records) == 3
    by_account = {json.loads(r["body"])["account_id"]: r["messageId"] for r in records}

    answer = worker({"Records": records}, Context())  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": [{"itemIdentifier": by_account[bad]}]}


def test_a_poison_message_is_a_failure_of_its_own(
    aws: LocalAws, organization: dict[str, Any]
) -> None:
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=organization["queue"], MessageBody="not json")
    sqs.send_message(
        QueueUrl=organization["queue"],
        MessageBody=json.dumps({"account_id": organization["members"][0], "task": "audit"}),
    )
    records = received(aws, organization["queue"])
    poison = next(r["messageId"] for r in records if r["body"] == "not json")
    answer = worker({"Records": records}, Context())  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": [{"itemIdentifier": poison}]}


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        json.dumps({"account_id": "12345", "task": "enforce"}),
        json.dumps({"account_id": ACCOUNT, "task": "rm -rf"}),
        json.dumps({"account_id": ACCOUNT, "task": "audit", "dry_run": "yes"}),
    ],
)
def test_bad_messages_are_named(body: str) -> None:
    with pytest.raises(BadInputError):
        parse_job(body)
