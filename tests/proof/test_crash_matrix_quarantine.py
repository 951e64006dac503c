"""The crash matrix for the exposed-key response: `keyturn quarantine KEY` killed with
SIGKILL at each step boundary, against moto's server, then run again (as the next delivery
of the Health event, or the operator, would); one matrix row per case.

The kill is the rotation matrix's: KEYTURN_TEST_CRASH_AFTER=<step> makes the CLI kill
itself right after that checkpoint (keyturn.wiring.rotation_checkpoint, which the
quarantine service and its rotation both call). The boundaries, in the order met:

    quarantine_opened       sealed incident tag written, nothing changed yet
    quarantine_deactivated  key Inactive, marked
    intent .. promote       the rotation's own (tests/proof/test_crash_matrix_rotate.py)
    quarantine_rotated      the store serves the new key, marked
    quarantine_notified     owner and security contact mailed, marked
    quarantine_recorded     incident record written, marked

After the rerun: the exposed key is inactive and never deleted (nobody asked), the store
serves a new key that is active and authenticates, the owner and the security contact were
each mailed exactly once, the consumers' "Access Key Rotated" event was put on the bus
exactly once, the incident record lists every step and the key's CloudTrail activity (from
the sandbox responder); a third run changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.sandbox.aws import ACCOUNT
from keyturn.sandbox.cloudtrail import CloudTrailResponder, generate_events
from tests.conftest import run_cli
from tests.rotate_fixtures import AuthedAws

STEPS = (
    "quarantine_opened",
    "quarantine_deactivated",
    "intent",
    "create",
    "store",
    "verify",
    "promote",
    "quarantine_rotated",
    "quarantine_notified",
    "quarantine_recorded",
)
SENDER, OWNER, SECURITY = "keys@example.com", "alice@example.com", "security@example.com"
EVENTS = 30


@pytest.fixture
def trail() -> Iterator[CloudTrailResponder]:
    """LookupEvents for the CloudTrail client only (`trail.cloudtrail_endpoint_url`)."""
    with CloudTrailResponder() as responder:
        yield responder


def subscribe(authed: AuthedAws) -> str:
    sqs = authed.client("sqs")
    url: str = sqs.create_queue(QueueName="alice-consumer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = authed.client("events")
    events.put_rule(Name="consumer", EventPattern=json.dumps({"source": ["keyturn"]}))
    events.put_targets(Rule="consumer", Targets=[{"Id": "queue", "Arn": arn}])
    return url


def rotated_events(authed: AuthedAws, url: str) -> list[dict[str, Any]]:
    found = authed.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in found.get("Messages", [])]
    return [b["detail"] for b in bodies if b["detail-type"] == "Access Key Rotated"]


def mails_about(authed: AuthedAws, key_id: str) -> list[str]:
    sent = authed.server.data()["ses"]["Message"]
    return sorted(
        address
        for message in sent
        if key_id in message["subject"]
        for address in message["destinations"]["ToAddresses"]
    )


# Killed between the store's promotion and the PutEvents after it, the rotation service
# (issue 16) has not yet marked the event owed in its journal, so no later run publishes it:
# consumers learn of the new key from the store only. Closing it needs a write-ahead "owed"
# mark before the promotion (one more sealed IAM tag write per rotation), a change to the
# rotation's hot path left to its owner.
LOST_EVENT = pytest.mark.xfail(
    reason="killed between promotion and PutEvents: 'Access Key Rotated' is never published",
    strict=True,
)
CASES = [pytest.param(s, id=f"quarantine:{s}", marks=LOST_EVENT if s == "promote" else ())
         for s in STEPS]  # fmt: skip


@pytest.mark.parametrize("step", CASES)
def test_quarantine_killed_at_each_step_then_run_again(
    step: str, authed: AuthedAws, trail: CloudTrailResponder, tmp_path: Path, matrix_row: Any
) -> None:
    ses = authed.client("ses")
    for address in (SENDER, OWNER, SECURITY):
        ses.verify_email_identity(EmailAddress=address)
    records = tmp_path / "incidents"
    env = {
        **os.environ,
        **authed.env(),
        "KEYTURN_ROTATE_STORE": "secretsmanager",
        "KEYTURN_ROTATE_PATH": "q/{user}",
        "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
        "KEYTURN_ROTATE_VERIFY_SUCCESSES": "1",
        "KEYTURN_ROTATE_EVENT_BUS": "default",
        "SOURCEMAIL": SENDER,
        "KEYTURN_QUARANTINE_SECURITY_CONTACT": SECURITY,
        "KEYTURN_QUARANTINE_RECORD_LOCATION": str(records),
        "KEYTURN_TRAIL_CLOUDTRAIL_ENDPOINT_URL": trail.url,
        "KEYTURN_TRAIL_REGIONS": "us-east-1",
    }
    exposed, _inactive = authed.seed_user("alice", keys=2, inactive=1, tags={"Contact": OWNER})
    authed.client("secretsmanager").create_secret(
        Name="q/alice",
        SecretString=json.dumps(
            {"UserName": "alice", "AccessKeyId": exposed.key_id,
             "SecretAccessKey": exposed.secret}
        ),
    )  # fmt: skip
    authed.enroll("alice", environ=env)
    trail.add(
        generate_events(exposed.key_id, EVENTS, ["us-east-1"], user="alice", account=ACCOUNT,
                        end=datetime.now(UTC) - timedelta(minutes=1), span=timedelta(hours=1))
    )  # fmt: skip
    consumer = subscribe(authed)

    crashed = run_cli({**env, "KEYTURN_TEST_CRASH_AFTER": step}, "quarantine", exposed.key_id)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    if step != "quarantine_opened":  # contained from the deactivation on, whatever follows
        assert authed.keys("alice")[exposed.key_id] == "Inactive"

    again = run_cli(env, "quarantine", exposed.key_id, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    outcome = json.loads(again.stdout)
    keys = authed.keys("alice")
    assert keys[exposed.key_id] == "Inactive"  # never deleted: nobody asked
    served = json.loads(
        authed.client("secretsmanager").get_secret_value(
            SecretId="q/alice", VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    new_id = served["AccessKeyId"]
    assert new_id != exposed.key_id, (outcome["rotation"], outcome["warnings"])
    assert keys == {exposed.key_id: "Inactive", new_id: "Active"}
    assert authed.authenticates(new_id, served["SecretAccessKey"])
    assert outcome["new_key_id"] == new_id
    assert mails_about(authed, exposed.key_id) == [OWNER, SECURITY]  # once each
    events = rotated_events(authed, consumer)
    [record_file] = records.glob("incident-*.json")
    record = json.loads(record_file.read_text())
    assert [a["step"] for a in record["actions"]] == [
        "opened", "deactivated", "rotated", "notified", "recorded"
    ]  # fmt: skip
    assert record["new_key_id"] == new_id
    assert record["activity"]["total_events"] == EVENTS
    assert record["activity"]["complete"]

    third = run_cli(env, "quarantine", exposed.key_id, "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["state"] == "already contained"
    assert authed.keys("alice") == keys
    assert mails_about(authed, exposed.key_id) == [OWNER, SECURITY]
    events += rotated_events(authed, consumer)
    assert [(e["old_key_id"], e["new_key_id"]) for e in events] == [(exposed.key_id, new_id)]
    matrix_row("contained, replaced and verified, told once, recorded; a rerun changes nothing")
