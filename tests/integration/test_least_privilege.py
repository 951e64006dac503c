"""Least privilege, proven on moto's server with authentication on.

For each function in keyturn.deploy.functions: a user holding exactly the declared actions
runs the function's whole flow and it succeeds (the policy is enough); then, for every
declared action, a user holding all but that one runs the same flow and it fails, naming
the action (the policy is no more than needed). moto only checks statements on
`Resource: "*"`, so these runs use the unscoped form; the scoping itself is checked by
parliament (tests/unit/test_deploy_template.py).

Each case seeds a small account from scratch (reset, seed as admin, then auth on), so the
cases are independent; the flows are built so that every declared action is reached.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from keyturn.adapters.lease_dynamodb import DynamoLeaseStore
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.config import load_settings
from keyturn.deploy.functions import FUNCTIONS, member_role_document
from keyturn.domain.enforcement import KeyRecord, Mark, state_tag
from keyturn.domain.errors import KeyturnError
from keyturn.domain.leases import TAG_LEASE, TAG_STORE, LeaseState, Role
from keyturn.sandbox.aws import ACCOUNT, LocalAws
from keyturn.services.audit import AuditRequest
from keyturn.services.leases import LeaseEngineSettings, LeaseService
from keyturn.wiring import build_audit, build_leases
from tests.enforce_seals import process_key, sealed

RUNNER = "proof-runner"
SENDER = "keys@example.com"
TABLE = "proof-leases"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)

# Declared actions that no flow on moto can reach, each with the reason. Keep this short:
# an entry is an action whose necessity is argued, not proven.
UNREACHABLE_ON_MOTO: dict[tuple[str, str], str] = {
    **{
        (name, action): "only after DeleteUser answers DeleteConflict because of"
        " service-specific credentials (CodeCommit, Keyspaces); moto implements neither call"
        for name in ("leases", "lease-issuer", "broker")
        for action in ("iam:ListServiceSpecificCredentials", "iam:DeleteServiceSpecificCredential")
    },
    **{
        (name, "kms:GenerateDataKey"): "moto's Secrets Manager does not call KMS, so it never"
        " checks it; AWS does for a secret under a customer managed key"
        for name in ("rotate", "secretsmanager-rotation")
    },
    **{
        (name, "kms:Decrypt"): "moto's Secrets Manager does not call KMS, so it never checks"
        " it; AWS does when reading a secret under a customer managed key"
        for name in ("rotate", "secretsmanager-rotation")
    },
    **{
        (name, "secretsmanager:TagResource"): "CreateSecret with Tags needs it on AWS (tag on"
        " create); moto does not check it"
        for name in ("rotate",)
    },
    **{
        ("exposed-key", action): "as for rotate: moto's Secrets Manager does not call KMS nor"
        " check TagResource on create"
        for action in ("kms:GenerateDataKey", "kms:Decrypt")
    },
    ("exposed-key", "ses:VerifyEmailIdentity"): "asked only for an unverified recipient in the"
    " SES sandbox, and the flow's recipients are verified so that every notice goes out;"
    " enforce's flow proves it on moto through the same gate (services/enforce.recipient_gate)",
    **{
        (name, "iam:TagUser"): "CreateUser with Tags needs iam:TagUser on AWS (tag on"
        " create); moto does not check it. enforce proves iam:TagUser on moto."
        for name in ("lease-issuer", "broker")
    },
}


# Where moto authorizes an API call under a name that is not the IAM action AWS checks.
# AWS authorizes SendMessageBatch as sqs:SendMessage (there is no sqs:SendMessageBatch
# action; parliament rejects it); moto asks for sqs:SendMessageBatch. Granting or removing
# the declared action grants or removes its moto spelling with it.
MOTO_SPELLING = {
    "sqs:SendMessage": ("sqs:SendMessageBatch",),
    # moto checks Invoke under its operation name; IAM's action is lambda:InvokeFunction
    "lambda:InvokeFunction": ("lambda:Invoke",),
}


@dataclass
class Flow:
    seed: Callable[[LocalAws, pytest.MonkeyPatch], Any]
    run: Callable[[LocalAws, pytest.MonkeyPatch], None]


# -- shared helpers ------------------------------------------------------------------------


def grant(aws: LocalAws, actions: list[str]) -> dict[str, str]:
    """A user holding exactly `actions` on "*"; its credentials as environment variables."""
    iam = aws.client("iam")
    iam.create_user(UserName=RUNNER)
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    if actions:  # "all but the only one" is no policy at all
        iam.put_user_policy(
            UserName=RUNNER, PolicyName="proof", PolicyDocument=json.dumps(document)
        )
    key = iam.create_access_key(UserName=RUNNER)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


@pytest.fixture
def authenticated(aws: LocalAws) -> Iterator[LocalAws]:
    aws.set_authentication(False)
    try:
        yield aws
    finally:
        aws.set_authentication(False)


def days_ago(days: int) -> date:
    return (datetime.now(UTC) - timedelta(days=days)).date()


def notice_topic(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    """The operators' SNS topic, so the flow publishes its run notice (sns:Publish)."""
    arn = aws.client("sns").create_topic(Name="keyturn-notices")["TopicArn"]
    env.setenv("KEYTURN_NOTIFY_SNS_TOPIC_ARN", arn)


# -- enforce -------------------------------------------------------------------------------


def seed_enforce(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SOURCEMAIL": SENDER,
        "KEYTURN_ENFORCE_DRY_RUN": "false",
        "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "always",
        "KEYTURN_POLICY_DELETE_AFTER_DAYS": "14",
        "KEYTURN_POLICY_EXEMPT_GROUPS": "vips",
    }.items():
        env.setenv(name, value)
    notice_topic(aws, env)
    journal_key(aws, env)  # state tags are sealed with it (GenerateMac) and checked (VerifyMac)
    seal = process_key()
    ses = aws.client("ses")
    for address in (SENDER, "alice@example.com"):
        ses.verify_email_identity(EmailAddress=address)
    iam = aws.client("iam")
    iam.create_group(GroupName="vips")
    aws.create_user("vip", tags={"Contact": "alice@example.com"})
    aws.add_key("vip", age_days=400)
    iam.add_user_to_group(GroupName="vips", UserName="vip")
    # due: a first notice (SendEmail, TagUser)
    aws.create_user("new", tags={"Contact": "alice@example.com"})
    aws.add_key("new", age_days=31)
    # notified 10 days ago: deactivated now (UpdateAccessKey)
    aws.create_user("late", tags={"Contact": "alice@example.com"})
    late = aws.add_key("late", age_days=50)
    notified = KeyRecord().marked(Mark.NOTIFIED, days_ago(10))
    value = sealed(seal, "late", late.key_id, notified.encode())
    iam.tag_user(UserName="late", Tags=[{"Key": state_tag(late.key_id), "Value": value}])
    # deactivated 30 days ago: deleted now, the owner told, the record removed (UntagUser)
    aws.create_user("old", tags={"Contact": "alice@example.com"})
    old = aws.add_key("old", age_days=90, active=False)
    gone = notified.marked(Mark.DEACTIVATED, days_ago(30)).marked(
        Mark.TOLD_DEACTIVATED, days_ago(30)
    )
    value = sealed(seal, "old", old.key_id, gone.encode())
    iam.tag_user(UserName="old", Tags=[{"Key": state_tag(old.key_id), "Value": value}])
    # an unverified recipient in the SES sandbox: a verification request (VerifyEmailIdentity)
    aws.create_user("bob", tags={"Contact": "bob@example.com"})
    aws.add_key("bob", age_days=31)


def run_enforce(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    from keyturn.handlers.enforce import handler

    summary = handler({}, None)  # type: ignore[arg-type]
    # the flow reached every step it is meant to prove
    assert summary["notified"] >= 1, summary
    assert summary["deactivated"] == 1, summary
    assert summary["deleted"] == 1, summary
    assert summary["told_deleted"] == 1, summary
    assert summary["verifications_requested"] == 1, summary


# -- audit ---------------------------------------------------------------------------------


def seed_audit(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    env.setenv("KEYTURN_POLICY_EXEMPT_GROUPS", "vips")
    aws.client("iam").create_group(GroupName="vips")
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    aws.add_key("alice", age_days=40, last_used_days_ago=2)


def run_audit(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    service = build_audit(load_settings().settings)
    everyone = service.run(AuditRequest(key_ids=True, contacts=True))
    assert {key.key.user for key in everyone.keys} >= {"alice"}
    one = service.run(AuditRequest(users=("alice",)))
    assert [key.key.user for key in one.keys] == ["alice"]


# -- leases --------------------------------------------------------------------------------


class PastClock:
    def now(self) -> datetime:
        return datetime.now(UTC) - timedelta(hours=2)


def lease_env(env: pytest.MonkeyPatch) -> None:
    env.setenv("KEYTURN_LEASES_STORE", "dynamodb")
    env.setenv("KEYTURN_LEASES_DYNAMODB_TABLE", TABLE)
    env.setenv("KEYTURN_LEASES_TIDY_MARGIN", "0s")


def lease_roles(aws: LocalAws, store: DynamoLeaseStore) -> None:
    iam = aws.client("iam")
    arn = iam.create_policy(PolicyName="p", PolicyDocument=POLICY)["Policy"]["Arn"]
    iam.create_group(GroupName="readers")
    role_arn = iam.create_role(
        RoleName="target",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{RUNNER}"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    store.put_role(
        Role.build(
            "dev",
            credential_type="iam_user",
            policy_arns=[arn],
            policy_document=POLICY,
            iam_groups=["readers"],
        )
    )
    store.put_role(Role.build("ops", credential_type="assumed_role", role_arns=[role_arn]))
    store.put_role(Role.build("fed", credential_type="federation_token", policy_document=POLICY))


@functools.cache
def ssh_and_certificate() -> tuple[str, str]:
    """One RSA key for the whole session: generating one costs more than a flow."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyturn-proof")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return public.decode(), cert.public_bytes(serialization.Encoding.PEM).decode()


def clutter(aws: LocalAws, user: str) -> None:
    """Everything that blocks DeleteUser, so revoke has to remove each kind."""
    iam = aws.client("iam")
    iam.create_login_profile(UserName=user, Password="Proof-password-123!")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{user}-mfa")["VirtualMFADevice"][
        "SerialNumber"
    ]
    iam.enable_mfa_device(
        UserName=user,
        SerialNumber=serial,
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    public, certificate = ssh_and_certificate()
    iam.upload_ssh_public_key(UserName=user, SSHPublicKeyBody=public)
    iam.upload_signing_certificate(UserName=user, CertificateBody=certificate)


def seed_tidy(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    lease_env(env)
    store = DynamoLeaseStore(aws.client("dynamodb"), TABLE)
    store.create_table()
    lease_roles(aws, store)
    past = LeaseService(
        store,
        IamLeaseAdmin(aws.client("iam")),
        StsLeaseIssuer(aws.client("sts")),
        PastClock(),
        LeaseEngineSettings(),
    )
    expired = past.issue("dev", timedelta(hours=1)).lease
    clutter(aws, expired.principal)
    # an orphan, as an issue that lost its race with tidy leaves it: the record REVOKED,
    # naming a user that still exists (found through ListUsers + ListUserTags)
    orphan = past.issue("dev", timedelta(hours=3)).lease
    record = store.get(orphan.lease_id)
    assert record is not None
    store.replace(record, dataclasses.replace(record, state=LeaseState.REVOKED))
    # tagged as this store's, but no record names it: reported, never removed
    aws.client("iam").create_user(
        UserName="keyturn-orphan",
        Tags=[
            {"Key": TAG_LEASE, "Value": "aws/creds/dev/lostlostlost"},
            {"Key": TAG_STORE, "Value": store.store_id()},
        ],
    )


def run_tidy(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    from keyturn.handlers.leases import handler

    summary = handler({}, None)
    assert len(summary["revoked"]) == 1, summary
    [orphan] = summary["orphans_removed"]
    assert orphan.startswith("keyturn-"), summary
    assert "keyturn-orphan" in summary["not_ours"][0], summary


def seed_issue(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    lease_env(env)
    store = DynamoLeaseStore(aws.client("dynamodb"), TABLE)
    store.create_table()
    lease_roles(aws, store)


def run_issue_and_revoke(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    service = build_leases(load_settings())
    issued = service.issue("dev")
    service.issue("ops", timedelta(minutes=15))
    service.issue("fed", timedelta(minutes=15))
    assert len(service.list_leases()) == 3
    aws.set_authentication(False)  # an admin clutters the user, as a person might
    clutter(aws, issued.lease.principal)
    aws.set_authentication(True)
    outcome = service.revoke(issued.lease.lease_id)
    assert outcome.ok, outcome


# -- broker --------------------------------------------------------------------------------

REQUESTER = "requester"


def seed_broker(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    """The issue flow's roles, opened to a requester that holds no IAM permission at all."""
    seed_issue(aws, env)
    store = DynamoLeaseStore(aws.client("dynamodb"), TABLE)
    for role in store.list_roles():
        store.put_role(
            dataclasses.replace(
                role, allowed_principals=(f"arn:aws:iam::{ACCOUNT}:user/{REQUESTER}",)
            )
        )
    iam = aws.client("iam")
    iam.create_user(UserName=REQUESTER)
    key = iam.create_access_key(UserName=REQUESTER)["AccessKey"]
    env.setenv("PROOF_REQUESTER", f"{key['AccessKeyId']}:{key['SecretAccessKey']}")
    env.setenv("KEYTURN_BROKER_SERVER_ID", "keyturn:proof")


def run_broker(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    """The Lambda handler, as its function URL calls it: issue all three kinds, list, renew,
    revoke. A refusal is the response's error line (the handler answers, never raises)."""
    import base64
    import os

    from botocore.credentials import Credentials

    from keyturn.adapters.broker_client import BrokerClient
    from keyturn.handlers.broker import handler

    # A fresh instance: its rate buckets are per warm instance, and each case is one.
    env.setattr("keyturn.handlers.broker._limits", None)
    key_id, _, secret = os.environ["PROOF_REQUESTER"].partition(":")
    client = BrokerClient(
        "https://broker.example",
        Credentials(key_id, secret),
        sts_url=aws.url,
        region="us-east-1",
        server_id="keyturn:proof",
    )

    def call(action: str, **params: Any) -> dict[str, Any]:
        text = json.dumps({**params, "nonce": os.urandom(8).hex()})
        body = json.dumps({"request": text, "proof": client.proof("POST", f"/v1/{action}", text)})
        answer = handler(
            {
                "rawPath": f"/v1/{action}",
                "requestContext": {"http": {"method": "POST"}},
                "body": base64.b64encode(body.encode()).decode(),
                "isBase64Encoded": True,
            },
            None,
        )
        found: dict[str, Any] = json.loads(answer["body"])
        assert answer["statusCode"] == 200, found.get("error")
        return found

    issued = call("issue", role="dev")["lease"]
    call("issue", role="ops", ttl="15m")
    call("issue", role="fed", ttl="15m")
    assert len(call("list")["leases"]) == 3
    call("renew", lease_id=issued["lease_id"])
    aws.set_authentication(False)  # an admin clutters the user, as a person might
    clutter(aws, issued["principal"])
    aws.set_authentication(True)
    outcome = call("revoke", lease_id=issued["lease_id"])
    assert outcome["ok"], outcome["detail"]


# -- fan-out -------------------------------------------------------------------------------

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def seed_scheduler(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    org = aws.client("organizations")
    org.create_organization(FeatureSet="ALL")
    org.create_account(AccountName="prod", Email="prod@example.com")
    url = aws.client("sqs").create_queue(QueueName="keyturn-accounts")["QueueUrl"]
    env.setenv("KEYTURN_FANOUT_QUEUE_URL", url)


def run_scheduler(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    from keyturn.handlers.fanout import scheduler

    assert scheduler(SCHEDULED, None)["accounts"] == 2  # type: ignore[arg-type]


def seed_worker(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    """The member role, in this same account, holding exactly the member-role policy; the
    Organization the worker checks each message's account against; the notice topic."""
    env.setenv("KEYTURN_FANOUT_ROLE_NAME", "keyturn-member")
    aws.client("organizations").create_organization(FeatureSet="ALL")
    notice_topic(aws, env)
    iam = aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{RUNNER}"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName="keyturn-member", AssumeRolePolicyDocument=json.dumps(trust))
    actions = sorted({a for s in member_role_document()["Statement"] for a in s["Action"]})
    member = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_role_policy(
        RoleName="keyturn-member", PolicyName="member", PolicyDocument=json.dumps(member)
    )
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    aws.add_key("alice", age_days=40)
    # The enforce task: state tags are sealed and checked with the central key, through the
    # worker's own credentials (the member role above holds no KMS action). An inactive
    # key with keyturn's sealed record (VerifyMac) and one without (a new record: GenerateMac).
    journal_key(aws, env)
    for name, value in {
        "KEYTURN_ENFORCE_DRY_RUN": "false",
        "KEYTURN_ENFORCE_NOTIFY": "false",
        "KEYTURN_POLICY_DELETE_AFTER_DAYS": "14",
    }.items():
        env.setenv(name, value)
    aws.create_user("idle")
    idle = aws.add_key("idle", age_days=90, active=False)
    marks = KeyRecord().marked(Mark.INACTIVE, days_ago(3)).encode()
    iam.tag_user(
        UserName="idle",
        Tags=[
            {
                "Key": state_tag(idle.key_id),
                "Value": sealed(process_key(), "idle", idle.key_id, marks),
            }
        ],
    )
    aws.create_user("spare")
    aws.add_key("spare", age_days=90, active=False)


def run_worker(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    from keyturn.handlers.fanout import worker

    body = json.dumps({"account_id": ACCOUNT, "task": "audit"})
    record = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:keyturn-accounts",
        "awsRegion": "us-east-1",
    }
    answer = worker({"Records": [record, {**record, "messageId": "m-2"}]}, None)  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": []}, answer
    # Alone in its batch, so a failure raises with its reason (BatchProcessingError).
    enforce = {**record, "body": json.dumps({"account_id": ACCOUNT, "task": "enforce"})}
    answer = worker({"Records": [{**enforce, "messageId": "m-3"}]}, None)  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": []}, answer
    aws.set_authentication(False)  # an admin looks
    tags = aws.client("iam").list_user_tags(UserName="spare")["Tags"]
    assert [tag["Key"].split(":")[1] for tag in tags] == ["enforce"]  # recorded, sealed


# -- rotation (Secrets Manager store) ---------------------------------------------------------


def rotate_env(env: pytest.MonkeyPatch) -> None:
    env.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    env.setenv("KEYTURN_ROTATE_PATH", "keyturn/{user}")
    env.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    env.setenv("KEYTURN_ROTATE_VERIFY_SUCCESSES", "1")
    # an overlap (0.06 s: over before the next run) makes deactivation look at last use
    env.setenv("KEYTURN_ROTATE_OVERLAP_MINUTES", "0.001")


def events_bus(env: pytest.MonkeyPatch) -> None:
    """The consumers' bus (the template's RotationEventBus: the account's default bus)."""
    env.setenv("KEYTURN_ROTATE_EVENT_BUS", "default")


def journal_key(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    """The deployment's KMS HMAC key (the template's JournalKey) seals keyturn's state."""
    made = aws.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    env.setenv("KEYTURN_TRUST_MAC_KEY", made["KeyMetadata"]["Arn"])


def seed_rotate(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    from tests.rotate_fixtures import enroll_users

    rotate_env(env)
    events_bus(env)
    # the consumers' probe (the template's ProbeFunction): moto's Docker-less Lambda says yes
    env.setenv("KEYTURN_ROTATE_PROBE", aws.probe_function("keyturn-probe", *['{"ok": true}'] * 2))
    journal_key(aws, env)
    notice_topic(aws, env)
    env.setenv("KEYTURN_POLICY_EXEMPT_GROUPS", "vips")
    aws.client("iam").create_group(GroupName="vips")
    aws.create_user("alice")
    aws.add_key("alice", age_days=60)
    enroll_users("alice")


def run_rotate(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    from keyturn.handlers.rotate import handler

    first = handler({})  # the schedule: due users from the audit
    assert [r["user"] for r in first["results"]] == ["alice"], first
    # an event that was not published is a warning, not a failure: the flow checks it
    warned = [w for r in first["results"] for w in r["warnings"]]
    assert warned == [], "; ".join(warned)
    env.setenv("KEYTURN_ROTATE_GRACE_DAYS", "0")  # later: the old key's grace has passed
    later = handler({"due": False})
    assert [r["state"] for r in later["results"]] == ["old_deleted"], later


def seed_sm_rotation(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    rotate_env(env)
    events_bus(env)
    journal_key(aws, env)
    aws.create_user("alice")
    key = aws.add_key("alice", age_days=60)
    document = {"UserName": "alice", "AccessKeyId": key.key_id, "SecretAccessKey": key.secret}
    aws.client("secretsmanager").create_secret(
        Name="keyturn/alice", SecretString=json.dumps(document)
    )


def run_sm_rotation(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    """Two rotations, as Secrets Manager drives them: the second retires the first's old
    (now inactive) key to stay within two keys."""
    import uuid

    from keyturn.handlers.secretsmanager_rotation import STEPS, handler

    for _ in range(2):
        token = str(uuid.uuid4())
        for step in STEPS:
            done = handler({"SecretId": "keyturn/alice", "ClientRequestToken": token, "Step": step})
            # an event that was not published is a warning, not a failure: checked here
            assert "unpublished_events" not in done, done.get("warnings")


def seed_exposed_key(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    from tests.integration.test_exposed_key import seed

    env.setenv("EXPOSED_KEY_ID", seed(aws, env))


def run_exposed_key(aws: LocalAws, env: pytest.MonkeyPatch) -> None:
    import os

    from tests.integration.test_exposed_key import run

    # LookupEvents through the sandbox responder, which asks moto's IAM first; without
    # ec2:DescribeRegions only the fallback regions are searched: either makes the
    # summary incomplete, with the refused call named in its lines.
    result = run(aws, env, os.environ["EXPOSED_KEY_ID"])
    (row,) = result["results"]
    assert row["rotation"] == "rotated", result
    # the warnings whole in the message (a refused call is named in one of them)
    assert row["warnings"] == [], " | ".join(row["warnings"] + row["activity"])


FLOWS: dict[str, Flow] = {
    "enforce": Flow(seed_enforce, run_enforce),
    "audit": Flow(seed_audit, run_audit),
    "leases": Flow(seed_tidy, run_tidy),
    "lease-issuer": Flow(seed_issue, run_issue_and_revoke),
    "broker": Flow(seed_broker, run_broker),
    "fanout-scheduler": Flow(seed_scheduler, run_scheduler),
    "fanout-worker": Flow(seed_worker, run_worker),
    "rotate": Flow(seed_rotate, run_rotate),
    "secretsmanager-rotation": Flow(seed_sm_rotation, run_sm_rotation),
    "exposed-key": Flow(seed_exposed_key, run_exposed_key),
}


def cases() -> Iterator[Any]:
    for name in FLOWS:
        yield pytest.param(name, None, id=f"{name}-enough")
        for action in FUNCTIONS[name].actions():
            if (name, action) not in UNREACHABLE_ON_MOTO:
                yield pytest.param(name, action, id=f"{name}-without-{action}")


@pytest.mark.parametrize(("name", "without"), list(cases()))
def test_declared_policy_is_enough_and_no_more(
    authenticated: LocalAws,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    without: str | None,
) -> None:
    aws = authenticated
    flow = FLOWS[name]
    flow.seed(aws, monkeypatch)
    actions = [a for a in FUNCTIONS[name].actions() if a != without]
    actions += [alias for a in actions for alias in MOTO_SPELLING.get(a, ())]
    for variable, value in grant(aws, actions).items():
        monkeypatch.setenv(variable, value)
    aws.set_authentication(True)
    if without is None:
        flow.run(aws, monkeypatch)
        return
    with pytest.raises((KeyturnError, AssertionError, BatchProcessingError)) as failed:
        flow.run(aws, monkeypatch)
    # The reason is in the error, or (lease tidy) in the log line the handler wrote first.
    said = str(failed.value) + capsys.readouterr().out
    spellings = (without, *MOTO_SPELLING.get(without, ()))
    assert any(f"refused {a}" in said or f"perform: {a}" in said for a in spellings), (
        f"failed, but not for lack of {without}: {failed.value}"
    )


def test_every_flow_is_proven() -> None:
    """A new function in the registry needs a flow here (rotation once it lands)."""
    lambdas = {name for name, function in FUNCTIONS.items() if function.is_lambda}
    assert lambdas <= set(FLOWS)
