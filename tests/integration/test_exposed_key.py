"""Acceptance (issue 15): AWS's documented sample Health event, with the key id replaced,
drives the exposed-key Lambda against moto's server.

The key ends inactive (not deleted); the store (Secrets Manager) serves a new key that
authenticates; the owner and the security contact are mailed (SES, read back from moto);
the incident record (S3) lists what the key did; the same event again changes nothing.

What the key did: read through the real CloudTrail adapter from the sandbox LookupEvents
responder (keyturn.sandbox.cloudtrail) mounted in front of moto, seeded with the exposed
key's events in three regions; every other call passes through it to moto, and moto checks
the caller's IAM permission for LookupEvents too (the least-privilege proof relies on it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.sandbox.aws import ACCOUNT, LocalAws
from keyturn.sandbox.cloudtrail import CloudTrailResponder, TrailEvent, generate_events
from tests.rotate_fixtures import enroll_users

FIXTURE = Path(__file__).parents[1] / "fixtures" / "health_credentials_exposed.json"
SENDER = "keys@example.com"
SECURITY = "security@example.com"
OWNER = "alice@example.com"
BUCKET = "keyturn-incidents"


def health_event(key_id: str) -> dict[str, Any]:
    event = json.loads(FIXTURE.read_text())
    event.pop("_source")
    event["account"] = ACCOUNT
    event["detail"]["affectedEntities"][0]["entityValue"] = key_id
    return event


TRAIL_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
TRAIL_EVENTS = 120  # 40 a region: one page each; every 10th creates access


def trail_events(key_id: str) -> list[TrailEvent]:
    """What the leaked key did in the two hours before it was reported."""
    return generate_events(
        key_id, TRAIL_EVENTS, TRAIL_REGIONS, end=datetime.now(UTC) - timedelta(minutes=2),
        span=timedelta(hours=2), user="alice", account=ACCOUNT, grants_every=10,
    )  # fmt: skip


def seed(aws: LocalAws, env: pytest.MonkeyPatch) -> str:
    """alice: enrolled, her store serving her one key; mail and record destinations."""
    for name, value in {
        "KEYTURN_ROTATE_STORE": "secretsmanager",
        "KEYTURN_ROTATE_PATH": "keyturn/{user}",
        "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
        "KEYTURN_ROTATE_VERIFY_SUCCESSES": "1",
        "SOURCEMAIL": SENDER,
        "KEYTURN_QUARANTINE_SECURITY_CONTACT": SECURITY,
        "KEYTURN_QUARANTINE_RECORD_LOCATION": f"s3://{BUCKET}/incidents/",
        "KEYTURN_ROTATE_EVENT_BUS": "default",  # the template's RotationEventBus
    }.items():
        env.setenv(name, value)
    made = aws.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    env.setenv("KEYTURN_TRUST_MAC_KEY", made["KeyMetadata"]["Arn"])
    arn = aws.client("sns").create_topic(Name="keyturn-notices")["TopicArn"]
    env.setenv("KEYTURN_NOTIFY_SNS_TOPIC_ARN", arn)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    ses = aws.client("ses")
    for address in (SENDER, SECURITY, OWNER):
        ses.verify_email_identity(EmailAddress=address)
    aws.create_user("alice", tags={"Contact": OWNER})
    key = aws.add_key("alice", age_days=60)
    # a second, inactive key: the rotation retires it to make room (iam:DeleteAccessKey)
    aws.add_key("alice", age_days=200, active=False)
    document = {"UserName": "alice", "AccessKeyId": key.key_id, "SecretAccessKey": key.secret}
    aws.client("secretsmanager").create_secret(
        Name="keyturn/alice", SecretString=json.dumps(document)
    )
    enroll_users("alice")
    return key.key_id


def run(aws: LocalAws, env: pytest.MonkeyPatch, key_id: str) -> dict[str, Any]:
    """The Lambda on the documented event, with one endpoint for everything: the responder
    (LookupEvents) in front of moto (the rest, forwarded), as `aws.endpoint_url`."""
    from keyturn.handlers.exposed_key import handler

    with CloudTrailResponder(trail_events(key_id), upstream=aws.url) as trail:
        env.setenv("AWS_ENDPOINT_URL", trail.url)
        try:
            return handler(health_event(key_id), None)
        finally:
            env.setenv("AWS_ENDPOINT_URL", aws.url)


def subscribe(aws: LocalAws) -> str:
    """A consumer's rule on the default bus for keyturn's events, into a queue; its URL."""
    sqs = aws.client("sqs")
    url: str = sqs.create_queue(QueueName="alice-consumer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = aws.client("events")
    events.put_rule(Name="keyturn-consumer", EventPattern=json.dumps({"source": ["keyturn"]}))
    events.put_targets(Rule="keyturn-consumer", Targets=[{"Id": "queue", "Arn": arn}])
    return url


def consumer_events(aws: LocalAws, url: str) -> list[dict[str, Any]]:
    found = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in found.get("Messages", [])]


def keys_of(aws: LocalAws, user: str) -> dict[str, str]:
    found = aws.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in found}


def test_the_documented_event_contains_rotates_tells_and_records(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    exposed = seed(aws, monkeypatch)
    consumer = subscribe(aws)
    result = run(aws, monkeypatch, exposed)
    [row] = result["results"]
    assert row["ok"], row
    keys = keys_of(aws, "alice")
    assert keys[exposed] == "Inactive"  # contained, not deleted
    served = json.loads(
        aws.client("secretsmanager").get_secret_value(
            SecretId="keyturn/alice", VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    assert served["AccessKeyId"] != exposed
    assert keys[served["AccessKeyId"]] == "Active"
    sts = boto3.client("sts", endpoint_url=aws.url, region_name="us-east-1",
                       aws_access_key_id=served["AccessKeyId"],
                       aws_secret_access_key=served["SecretAccessKey"])  # fmt: skip
    assert sts.get_caller_identity()["Arn"].endswith("user/alice")
    mails = [m for m in aws.data()["ses"]["Message"] if exposed in m["subject"]]
    told = sorted(address for m in mails for address in m["destinations"]["ToAddresses"])
    assert told == [OWNER, SECURITY]
    assert all(served["SecretAccessKey"] not in m["body"] for m in mails)
    listed = aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="incidents/")["Contents"]
    [json_key] = [o["Key"] for o in listed if o["Key"].endswith(".json")]
    record = json.loads(aws.client("s3").get_object(Bucket=BUCKET, Key=json_key)["Body"].read())
    activity = record["activity"]
    assert activity["total_events"] == TRAIL_EVENTS, activity
    assert activity["complete"], activity
    assert set(TRAIL_REGIONS) <= set(activity["regions_searched"])
    assert activity["access_calls_total"] == TRAIL_EVENTS // 10
    assert [c["name"] for c in activity["access_calls"][:2]] == ["CreateUser", "CreateAccessKey"]
    assert [a["step"] for a in record["actions"]][:3] == ["opened", "deactivated", "rotated"]
    # consumers told, as by the Rotate function: the store now serves another key
    rotated = [
        e["detail"]
        for e in consumer_events(aws, consumer)
        if e["detail-type"] == "Access Key Rotated"
    ]
    assert [(e["old_key_id"], e["new_key_id"]) for e in rotated] == [
        (exposed, served["AccessKeyId"])
    ]

    # the same event again: nothing more changes, nobody is mailed again
    again = run(aws, monkeypatch, exposed)
    assert again["results"][0]["state"] == "already contained", again
    assert keys_of(aws, "alice") == keys
    assert len([m for m in aws.data()["ses"]["Message"] if exposed in m["subject"]]) == 2
    assert consumer_events(aws, consumer) == []  # and no consumer event again


def test_rollback_refuses_to_reactivate_the_exposed_key(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyturn.config import load_settings
    from keyturn.domain.errors import OperationFailedError
    from keyturn.wiring import build_rotation

    exposed = seed(aws, monkeypatch)
    run(aws, monkeypatch, exposed)
    rotation = build_rotation(load_settings().settings)
    with pytest.raises(OperationFailedError, match="quarantined as exposed"):
        rotation.rollback("alice")
    assert keys_of(aws, "alice")[exposed] == "Inactive"


@pytest.mark.parametrize(
    "event",
    [
        {"source": "aws.health", "detail-type": "AWS Health Event", "detail": {}},
        {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
        "not json",
    ],
)
def test_other_events_change_nothing(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch, event: Any
) -> None:
    from keyturn.domain.errors import BadInputError
    from keyturn.handlers.exposed_key import handler

    exposed = seed(aws, monkeypatch)
    with pytest.raises(BadInputError):
        handler(event, None)
    assert keys_of(aws, "alice")[exposed] == "Active"


def test_rollback_refuses_the_exposed_key_after_its_incident_tag_is_removed(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile review: the user (who may hold iam:UntagUser on itself) removes the sealed
    incident tag; an operator's later rollback must still never reactivate the leaked key."""
    from keyturn.config import load_settings
    from keyturn.domain.errors import KeyturnError
    from keyturn.wiring import build_rotation

    exposed = seed(aws, monkeypatch)
    run(aws, monkeypatch, exposed)
    aws.client("iam").untag_user(UserName="alice", TagKeys=[f"keyturn:incident:{exposed}"])
    rotation = build_rotation(load_settings().settings)
    with pytest.raises(KeyturnError):
        rotation.rollback("alice")
    assert keys_of(aws, "alice")[exposed] == "Inactive"
