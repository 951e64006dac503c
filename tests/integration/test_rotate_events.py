"""Consumers told, not polled (issue 16): the scheduled rotation puts `Access Key Rotated`
and `Access Key Retired` on the configured EventBridge bus; read back here through an
ordinary rule whose target is an SQS queue, as a consumer would subscribe."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from keyturn.handlers.rotate import handler
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"ev{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    authed.enroll_with = os.environ


def subscribe(authed: AuthedAws, bus: str) -> str:
    """A rule on `bus` for keyturn's events, delivering to a new queue; its URL."""
    sqs = authed.client("sqs")
    url = sqs.create_queue(QueueName=f"consumer-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = authed.client("events")
    events.put_rule(
        Name="keyturn-consumer", EventBusName=bus, EventPattern=json.dumps({"source": ["keyturn"]})
    )
    events.put_targets(
        Rule="keyturn-consumer", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}]
    )
    return str(url)


def received(authed: AuthedAws, url: str) -> list[dict[str, Any]]:
    sqs = authed.client("sqs")
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in found]


def test_rotated_and_retired_events_reach_a_consumer_rule(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    authed.client("events").create_event_bus(Name="consumers")
    url = subscribe(authed, "consumers")
    monkeypatch.setenv("KEYTURN_ROTATE_EVENT_BUS", "consumers")
    (old,) = authed.seed_user("alice")

    result = handler({"users": ["alice"]})
    (done,) = result["results"]
    assert done["warnings"] == []
    events = received(authed, url)
    assert [e["detail-type"] for e in events] == ["Access Key Rotated", "Access Key Retired"]
    assert {e["source"] for e in events} == {"keyturn"}
    rotated, retired = (e["detail"] for e in events)
    assert rotated["user"] == "alice"
    assert (rotated["old_key_id"], rotated["new_key_id"]) == (old.key_id, done["new_key_id"])
    assert (rotated["state"], retired["state"]) == ("promoted", "old_deactivated")
    assert rotated["store"] == "secretsmanager"
    assert rotated["location"].endswith("/alice")
    assert rotated["account"].isdigit()
    secret = authed.known.get(old.key_id)
    assert secret is not None
    assert secret.secret not in json.dumps(events)
    assert "Secret" not in json.dumps(events)


def test_an_unpublished_event_is_reported_and_the_rotation_still_succeeds(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_EVENT_BUS", "no-such-bus")
    (old,) = authed.seed_user("alice")
    result = handler({"users": ["alice"]})
    (done,) = result["results"]
    assert authed.keys("alice") == {old.key_id: "Inactive", done["new_key_id"]: "Active"}
    assert len(done["warnings"]) == 2, done
    assert all("not published on bus no-such-bus" in w for w in done["warnings"])


def test_an_event_the_bus_refused_is_published_by_the_next_scheduled_run(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bus that fails (not created yet), then works: the first run marks both events in
    the sealed journal record, the next publishes them in order and clears the mark."""
    monkeypatch.setenv("KEYTURN_ROTATE_EVENT_BUS", "late")
    (old,) = authed.seed_user("alice")
    first = handler({"users": ["alice"]})
    (done,) = first["results"]
    assert done["unpublished_events"] == ["Access Key Rotated", "Access Key Retired"]
    assert first["summary"]["unpublished_events"] == 2
    assert authed.keys("alice") == {old.key_id: "Inactive", done["new_key_id"]: "Active"}

    authed.client("events").create_event_bus(Name="late")
    url = subscribe(authed, "late")
    later = handler({"due": False})
    (retried,) = later["results"]
    assert retried["unpublished_events"] == []
    assert later["summary"]["unpublished_events"] == 0
    assert any("published on retry" in w for w in retried["warnings"])
    events = received(authed, url)
    assert [e["detail-type"] for e in events] == ["Access Key Rotated", "Access Key Retired"]
    assert events[0]["detail"]["new_key_id"] == done["new_key_id"]

    handler({"due": False})  # once published, never again
    assert received(authed, url) == []


def test_a_forged_unpublished_mark_publishes_nothing(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark lives in the journal tag, which anyone with iam:TagUser can write: a mark
    keyturn did not seal is reported as untrusted and makes keyturn publish nothing."""
    authed.client("events").create_event_bus(Name="consumers")
    url = subscribe(authed, "consumers")
    monkeypatch.setenv("KEYTURN_ROTATE_EVENT_BUS", "consumers")
    (old,) = authed.seed_user("alice")
    forged = f"v4:old_deactivated:{'t' * 36}:1767225600:{old.key_id}:-:AKIAFORGED0000000000:-:-:RD"
    authed.client("iam").tag_user(
        UserName="alice", Tags=[{"Key": "keyturn:rotation", "Value": f"{forged}:AAAA"}]
    )
    result = handler({"due": False})
    assert [u["user"] for u in result["untrusted"]] == ["alice"]
    assert received(authed, url) == []
