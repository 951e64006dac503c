"""The consumer probe (`rotate.probe`, issue 16): the answer's documented shape (pure), the
Lambda adapter against botocore's Stubber (moto's Lambda cannot run a function without
Docker, and cannot answer with a FunctionError or a non-2xx status), and the rotation
service with an in-process probe through the port."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from keyturn.adapters.probe import (
    MAX_ANSWER,
    REASON_CHARS,
    LambdaProbe,
    ProbeRefusedError,
    ProbeRequest,
    judge,
)
from keyturn.domain.rotation import RotationState, Timing
from keyturn.services.rotate import RotationService
from tests.unit.rotate_fakes import FakeClock, FakeJournal, FakeKeys, FakeStore, FakeVerifier

S = RotationState
OK = b'{"ok": true}'


# -- the answer ---------------------------------------------------------------------------


def test_only_ok_true_in_a_json_object_is_a_yes() -> None:
    assert judge(200, None, OK) is None
    assert judge(200, None, b'{"ok": true, "reason": "fine", "skip": "verify"}') is None


@pytest.mark.parametrize(
    ("status", "error", "answer", "said"),
    [
        (200, "Unhandled", OK, "the function failed ('Unhandled')"),
        (500, None, OK, "status 500"),
        (200, None, b'{"ok": "true"}', 'not ok (expected "ok": true)'),
        (200, None, b'{"ok": 1}', 'not ok (expected "ok": true)'),
        (200, None, b"[true]", "not a JSON object"),
        (200, None, b"true", "not a JSON object"),
        (200, None, b"yes", "not JSON"),
        (200, None, b"\xff\xfe", "not JSON"),
        (200, None, b"", "not JSON"),
        (200, None, b'{"ok": false, "reason": "consumer pinned"}', "'consumer pinned'"),
        (200, None, b" " * (MAX_ANSWER + 1) + OK, f"more than {MAX_ANSWER} bytes"),
    ],
)
def test_anything_else_is_a_no_with_its_reason(
    status: int, error: str | None, answer: bytes, said: str
) -> None:
    found = judge(status, error, answer)
    assert found is not None
    assert said in found


def test_a_hostile_reason_is_cut_quoted_and_printable() -> None:
    reason = "\x1b[2J\nAKIA... rotated fine\r" + "x" * 500
    found = judge(200, None, json.dumps({"ok": False, "reason": reason}).encode())
    assert found is not None
    assert not {"\x1b", "\n", "\r"} & set(found)
    assert len(found) < REASON_CHARS + 60


# -- the adapter, on botocore's Stubber -----------------------------------------------------

REQUEST = ProbeRequest("alice", "AKIANEW0000000000000", "AKIAOLD0000000000000", "kv/alice")


def stubbed(function: str = "consumer-check") -> tuple[LambdaProbe, Stubber]:
    client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return LambdaProbe(client, function, account="111122223333", store="vault"), Stubber(client)


def answer(body: bytes, status: int = 200, **extra: Any) -> dict[str, Any]:
    return {"StatusCode": status, "Payload": io.BytesIO(body), **extra}


def test_the_probe_is_invoked_synchronously_with_ids_and_no_secret() -> None:
    probe, stub = stubbed()
    expected = {
        "FunctionName": "consumer-check",
        "InvocationType": "RequestResponse",
        "Payload": json.dumps(
            {
                "source": "keyturn",
                "check": "pending key",
                "account": "111122223333",
                "user": "alice",
                "new_key_id": "AKIANEW0000000000000",
                "old_key_id": "AKIAOLD0000000000000",
                "store": "vault",
                "location": "kv/alice",
            }
        ).encode(),
    }
    stub.add_response("invoke", answer(OK), expected)
    with stub:
        probe.check(REQUEST)
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (answer(OK, FunctionError="Unhandled"), "the function failed"),
        (answer(b'{"ok": false, "reason": "still deploying"}'), "'still deploying'"),
        (answer(b"null"), "not a JSON object"),
    ],
)
def test_a_failing_probe_is_a_refusal_naming_the_probe(reply: dict[str, Any], said: str) -> None:
    probe, stub = stubbed()
    stub.add_response("invoke", reply)
    with stub, pytest.raises(ProbeRefusedError) as refused:
        probe.check(REQUEST)
    assert "consumer probe consumer-check said no" in str(refused.value)
    assert said in str(refused.value)


def test_an_unknown_or_refused_function_is_a_refusal() -> None:
    probe, stub = stubbed()
    stub.add_client_error("invoke", "ResourceNotFoundException", "Function not found")
    with stub, pytest.raises(ProbeRefusedError, match=r"probe consumer-check: .*not found"):
        probe.check(REQUEST)


def test_a_timeout_is_a_refusal() -> None:
    client: Any = type("Slow", (), {})()

    def invoke(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://lambda.example")

    client.invoke = invoke
    probe = LambdaProbe(client, "consumer-check", account="111122223333", store="vault")
    with pytest.raises(ProbeRefusedError, match="timed out"):
        probe.check(REQUEST)


@pytest.mark.parametrize(
    "name",
    [
        "consumer-check",
        "consumer-check:live",
        "111122223333:function:consumer-check",
        "arn:aws:lambda:eu-west-1:111122223333:function:consumer-check",
        "arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:c:$LATEST",
    ],
)
def test_function_names_and_arns_are_accepted(name: str) -> None:
    LambdaProbe(object(), name, account="111122223333", store="vault")


@pytest.mark.parametrize(
    "name",
    ["", "a b", "arn:aws:s3:::bucket", "../x", "x" * 65, "arn:aws:lambda:eu-west-1:1:function:f"],
)
def test_anything_else_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a Lambda function name or ARN"):
        LambdaProbe(object(), name, account="111122223333", store="vault")


# -- the rotation service, with an in-process probe through the port -------------------------


class Probe:
    """A ConsumerProbe fake: answers through the same `judge` as the Lambda adapter."""

    name = "consumer-check"

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.asked: list[ProbeRequest] = []

    def check(self, request: ProbeRequest) -> None:
        self.asked.append(request)
        why = judge(200, None, self.answers.pop(0))
        if why is not None:
            raise ProbeRefusedError(f"consumer probe {self.name} said no: {why}")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.iam = FakeKeys(self.clock)
        self.store = FakeStore()
        self.journal = FakeJournal()
        self.verifier = FakeVerifier(self.iam)

    def service(self, **kwargs: Any) -> RotationService:
        return RotationService(
            self.iam, self.store, self.journal, self.verifier, self.clock, Timing(), **kwargs
        )


def test_a_yes_is_asked_after_verification_and_before_promotion() -> None:
    world = World()
    old = world.iam.add("alice")
    probe = Probe(OK)
    order: list[str] = []
    outcome = world.service(probe=probe, checkpoint=lambda step, _: order.append(step)).rotate(
        "alice"
    )
    assert order == ["intent", "create", "store", "verify", "probe", "promote", "deactivate"]
    (asked,) = probe.asked
    assert (asked.user, asked.new_key_id, asked.old_key_id) == ("alice", outcome.new_key_id, old)
    assert "secret" not in repr(asked).lower()
    assert world.store.key_id("alice", "current") == outcome.new_key_id


def test_a_no_stops_the_rotation_cleanly_as_a_failed_store_write_does() -> None:
    world = World()
    old = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, old))}
    with pytest.raises(ProbeRefusedError) as refused:
        world.service(probe=Probe(b'{"ok": false, "reason": "pinned in the WAF"}')).rotate("alice")
    line = str(refused.value)
    assert "\n" not in line
    assert "consumer probe consumer-check said no: not ok" in line
    assert "'pinned in the WAF'" in line
    assert f"old key {old} untouched" in line
    assert world.iam.status("alice") == {old: "Active"}  # new key deleted, old untouched
    assert world.store.key_id("alice", "current") == old
    assert world.store.key_id("alice", "pending") is None  # pending discarded
    assert world.journal.records["alice"].state is S.ABORTED
    assert world.service().resume("alice") is None  # nothing left to finish
    again = world.service(probe=Probe(OK)).rotate("alice")  # and the next rotation runs
    assert again.state == S.OLD_DEACTIVATED


def test_a_yes_never_skips_verification() -> None:
    world = World()
    old = world.iam.add("alice")
    world.verifier.fail = True
    probe = Probe(b'{"ok": true, "verified": true, "skip_verification": true}')
    with pytest.raises(Exception, match="did not authenticate"):
        world.service(probe=probe).rotate("alice")
    assert probe.asked == []  # never asked: verification comes first
    assert world.iam.status("alice")[old] == "Active"
    assert world.store.key_id("alice", "current") is None


def test_cut_off_between_the_probe_and_the_promotion_the_resume_asks_again() -> None:
    world = World()
    old = world.iam.add("alice")

    def crash(step: str, _: str) -> None:
        if step == "probe":
            raise KeyboardInterrupt  # stands in for kill -9

    with pytest.raises(KeyboardInterrupt):
        world.service(probe=Probe(OK), checkpoint=crash).rotate("alice")
    assert world.store.key_id("alice", "current") is None  # not promoted
    second = Probe(b'{"ok": false}')
    with pytest.raises(ProbeRefusedError):
        world.service(probe=second).resume("alice")
    assert len(second.asked) == 1  # the earlier yes is not carried over
    assert world.iam.status("alice") == {old: "Active"}


def test_cut_off_after_discarding_the_pending_entry_the_resume_deletes_the_key() -> None:
    world = World()
    old = world.iam.add("alice")

    def crash(step: str, _: str) -> None:
        if step == "abort_discard":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        world.service(probe=Probe(b"{}"), checkpoint=crash).rotate("alice")
    (lost,) = [k for k in world.iam.status("alice") if k != old]
    with pytest.raises(ProbeRefusedError):  # starts over, and the probe says no again
        world.service(probe=Probe(b"{}")).resume("alice")
    assert f"delete {lost}" in world.iam.calls
    assert world.iam.status("alice") == {old: "Active"}


def _secret(world: World, key_id: str) -> Any:
    from keyturn.domain.model import NewKeySecret

    return NewKeySecret(key_id, world.iam.secrets[key_id])


@pytest.mark.parametrize("incident", [True, False], ids=["quarantined", "turned-off-by-hand"])
def test_an_inactive_old_key_is_replaced_without_asking_the_probe(incident: bool) -> None:
    """The exposed-key response's rotation: the old key is already inactive, so a no would
    leave consumers only a dead key. Decided from IAM and the sealed journal, not from the
    incident tag: the same with no incident record at all (a tag-writer removed it, or
    someone turned the key off by hand), and no IAM call beyond the rotation's own."""
    world = World()
    old = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, old))}
    world.iam.set_active("alice", old, False)  # the quarantine deactivated it first
    probe = Probe(b'{"ok": false, "reason": "pinned in the WAF"}')
    incidents = {("alice", old): "incident opened 2024-05-02 10:00 UTC"} if incident else {}
    outcome = world.service(probe=probe, quarantined=lambda u, k: incidents.get((u, k))).rotate(
        "alice"
    )
    assert probe.asked == []
    assert world.store.key_id("alice", "current") == outcome.new_key_id != old
    assert any(f"not asked: old key {old} is inactive" in w for w in outcome.warnings)
    # a key that is not quarantined is still asked, and its no still stops the rotation
    with pytest.raises(ProbeRefusedError):
        world.service(probe=Probe(b"{}"), quarantined=lambda u, k: None).rotate("alice")
