"""The operators' SNS channel (issue 13) on moto: a queue subscribed to the topic reads what
the enforce and rotate functions publish, as AWS Chatbot or PagerDuty would receive it.

Messages carry counts, ids and state words only: never a secret, never text from a tag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.handlers import enforce as enforce_handler
from keyturn.handlers.rotate import handler as rotate_handler
from keyturn.sandbox.aws import LocalAws
from tests.conftest import run_cli
from tests.integration.test_fanout_handlers import SCHEDULED, Context
from tests.rotate_fixtures import enroll_users

SENDER = "keys@example.com"
LURE = "URGENT your access is suspended re-verify at https://phish.example"


@pytest.fixture
def topic(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> str:
    """A topic with an SQS queue subscribed; returns the queue's URL."""
    sns, sqs = aws.client("sns"), aws.client("sqs")
    arn = sns.create_topic(Name="keyturn-notices")["TopicArn"]
    url = sqs.create_queue(QueueName="notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("KEYTURN_NOTIFY_SNS_TOPIC_ARN", arn)
    return str(url)


def published(aws: LocalAws, url: str) -> list[dict[str, Any]]:
    """Every notice in the subscribed queue: SNS's envelope, its Message parsed."""
    sqs = aws.client("sqs")
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            envelope = json.loads(message["Body"])
            envelope["document"] = json.loads(envelope["Message"])
            found.append(envelope)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def enforce_env(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    for name, value in {
        "SOURCEMAIL": SENDER,
        "KEYTURN_ENFORCE_DRY_RUN": "false",
        "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
    }.items():
        monkeypatch.setenv(name, value)
    aws.client("ses").verify_email_identity(EmailAddress=SENDER)
    return aws


def test_an_enforce_run_publishes_its_summary_and_no_tag_text(
    enforce_env: LocalAws, topic: str
) -> None:
    aws = enforce_env
    aws.create_user("alice", tags={"Contact": "alice@example.com", "Team": LURE})
    key = aws.add_key("alice", age_days=40)
    summary = enforce_handler.handler(SCHEDULED, Context())  # type: ignore[arg-type]

    (notice,) = published(aws, topic)
    document = notice["document"]
    assert notice["Subject"] == "keyturn enforce done"
    assert notice["MessageAttributes"]["event"]["Value"] == "keyturn.enforce"
    assert notice["MessageAttributes"]["outcome"]["Value"] == "ok"
    assert (document["version"], document["source"]) == ("1.0", "custom")
    context = document["metadata"]["additionalContext"]
    assert context["notified"] == str(summary["notified"]) == "1"
    assert context["request_id"] == Context.aws_request_id
    text = json.dumps(notice)
    assert "phish" not in text
    assert "URGENT" not in text
    assert key.secret not in text


def test_a_failed_enforce_run_publishes_the_error_kind_only(
    enforce_env: LocalAws, topic: str
) -> None:
    with pytest.raises(BadInputError):
        enforce_handler.handler({**SCHEDULED, "detail": {LURE: True}}, Context())  # type: ignore[arg-type]
    (notice,) = published(enforce_env, topic)
    assert notice["MessageAttributes"]["outcome"]["Value"] == "failed"
    context = notice["document"]["metadata"]["additionalContext"]
    assert context["error_kind"] == "BadInputError"
    assert "phish" not in json.dumps(notice)  # the error's text (it quotes the event) stays out


def test_a_rotation_run_publishes_users_states_and_key_ids(
    aws: LocalAws, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", "keyturn/{user}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_SUCCESSES", "1")
    aws.create_user("alice")
    old = aws.add_key("alice", age_days=100)
    aws.create_user("two")
    aws.add_key("two")
    aws.add_key("two")  # two active keys: this user's rotation fails
    enroll_users("alice", "two")  # an operator enrolled both (issue 17)
    with pytest.raises(OperationFailedError, match="two"):
        rotate_handler({"users": ["alice", "two"]}, Context())
    (notice,) = published(aws, topic)
    assert notice["MessageAttributes"]["outcome"]["Value"] == "failed"
    document = notice["document"]
    context = document["metadata"]["additionalContext"]
    assert (context["ok"], context["failed"], context["failed_users"]) == ("1", "1", "two")
    new_key = next(
        k["AccessKeyId"]
        for k in aws.client("iam").list_access_keys(UserName="alice")["AccessKeyMetadata"]
        if k["AccessKeyId"] != old.key_id
    )
    assert "alice: " in document["content"]["description"]
    assert f"({old.key_id} -> {new_key})" in document["content"]["description"]
    stored = aws.client("secretsmanager").get_secret_value(
        SecretId="keyturn/alice", VersionStage="AWSCURRENT"
    )["SecretString"]
    assert json.loads(stored)["SecretAccessKey"] not in json.dumps(notice)
    assert old.secret not in json.dumps(notice)


def test_no_topic_no_notice(enforce_env: LocalAws) -> None:
    """SES stays the owners' channel; without a topic nothing else is called."""
    enforce_env.create_user("alice", tags={"Contact": "alice@example.com"})
    enforce_env.add_key("alice", age_days=40)
    summary = enforce_handler.handler(SCHEDULED, Context())  # type: ignore[arg-type]
    assert summary["notified"] == 1
    assert enforce_env.client("sns").list_topics()["Topics"] == []


def test_the_cli_publishes_acting_runs_only(
    enforce_env: LocalAws, topic: str, tmp_path: Path
) -> None:
    aws = enforce_env
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    old = aws.add_key("alice", age_days=100)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")},
        **aws.env(),
        "SOURCEMAIL": SENDER,
        "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
        "KEYTURN_NOTIFY_SNS_TOPIC_ARN": os.environ["KEYTURN_NOTIFY_SNS_TOPIC_ARN"],
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    dry = run_cli(env, "enforce")
    assert dry.returncode == 0, dry.stderr
    assert published(aws, topic) == []  # a dry run from a laptop does not page anyone
    acted = run_cli(env, "enforce", "--apply")
    assert acted.returncode == 0, acted.stderr
    (enforced,) = published(aws, topic)
    assert enforced["document"]["metadata"]["additionalContext"]["notified"] == "1"
    rotated = run_cli(
        {
            **env,
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
            "KEYTURN_ROTATE_VERIFY_SUCCESSES": "1",
        },
        "rotate",
        "alice",
        "--enroll",
        "--store",
        "secretsmanager",
        "--path",
        "cli/{user}",
    )
    assert rotated.returncode == 0, rotated.stderr
    (notice,) = published(aws, topic)
    assert notice["MessageAttributes"]["event"]["Value"] == "keyturn.rotate"
    assert "alice: " in notice["document"]["content"]["description"]
    assert old.key_id in notice["document"]["content"]["description"]
    assert old.secret not in json.dumps(notice)
