"""Demo stage: a leaked key is reported, keyturn contains it and moves its consumers.

AWS Health's `AWS_RISK_CREDENTIALS_EXPOSED` event (AWS's documented sample, with the key id
filled in) is handed to the exposed-key Lambda, run locally as a subprocess. Shows: the key
deactivated (kept as evidence, not deleted), the consumer's Secrets Manager entry serving a
new key that authenticates, the owner and the security contact mailed, what the key did
read from CloudTrail (the sandbox LookupEvents responder in front of moto, one endpoint,
AWS's 2 requests a second enforced), the incident record, and the same event again
changing nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from rich.markup import escape
from rich.table import Table

from keyturn.sandbox.aws import ACCOUNT, REGION
from keyturn.sandbox.cloudtrail import CloudTrailResponder, generate_events

if TYPE_CHECKING:
    from demo import DemoContext  # type: ignore[attr-defined]

TITLE = "quarantine: an exposed key contained in seconds, its consumers moved, its story told"
USER = "app-api"
SENDER, OWNER, SECURITY = "keys@example.com", "api-team@example.com", "security@example.com"
# AWS's documented sample (aws/aws-health-tools, AWS_RISK_CREDENTIALS_EXPOSED), key id and
# account filled in below.
SAMPLE: dict[str, Any] = {
    "version": "0",
    "id": "121345678-1234-1234-1234-123456789012",
    "detail-type": "AWS Health Event",
    "source": "aws.health",
    "account": "123456789012",
    "time": "2016-06-05T06:27:57Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "eventArn": "arn:aws:health:us-east-1::event/"
        "AWS_RISK_CREDENTIALS_EXPOSED_XXXXXXXXXXXXXXXXX",
        "service": "RISK",
        "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED",
        "eventTypeCategory": "issue",
        "startTime": "Sat, 05 Jun 2016 15:10:09 GMT",
        "eventDescription": [
            {
                "language": "en_US",
                "latestDescription": "A description of the event will be provided here",
            }
        ],
        "affectedEntities": [{"entityValue": "ACCESS_KEY_ID_HERE"}],
    },
}
# The Lambda, invoked locally with the event on stdin (as `sam local invoke` would).
INVOKE = (
    "import json, sys; from keyturn.handlers.exposed_key import handler; "
    "print(json.dumps(handler(json.load(sys.stdin))))"
)


def run(ctx: DemoContext) -> None:
    import subprocess
    import sys

    from demo.context import DemoError

    console = ctx.console
    aws = ctx.aws
    aws.reset()
    key_id, secret = _seed(ctx)
    events = generate_events(
        key_id, 600, ["us-east-1", "eu-west-1", "ap-southeast-2"], user=USER, account=ACCOUNT,
        end=datetime.now(UTC) - timedelta(minutes=3), span=timedelta(hours=6), grants_every=60,
    )  # fmt: skip
    records = ctx.workdir / "incidents"
    with CloudTrailResponder(events, upstream=aws.url, throttle=True) as trail:
        extra = {
            "AWS_ENDPOINT_URL": trail.url,  # LookupEvents answered, the rest sent to moto
            "KEYTURN_ROTATE_STORE": "secretsmanager",
            "KEYTURN_ROTATE_PATH": "apps/{user}",
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0.2",
            "SOURCEMAIL": SENDER,
            "KEYTURN_QUARANTINE_SECURITY_CONTACT": SECURITY,
            "KEYTURN_QUARANTINE_RECORD_LOCATION": str(records),
        }
        env = ctx.env(extra)  # the Lambda's; the CLI is given only what differs
        ctx.say(
            f"[bold]{USER}[/]'s consumers read its key from Secrets Manager at "
            "[cyan]apps/app-api[/]; keyturn enrolled it earlier:"
        )
        ctx.keyturn("enroll", USER, env=extra)

        ctx.step("1. AWS finds the key in a public repository and emits the Health event")
        event = json.loads(json.dumps(SAMPLE))
        event["account"] = ACCOUNT
        event["detail"]["affectedEntities"][0]["entityValue"] = key_id
        ctx.say(
            "The EventBridge rule delivers AWS's documented sample event (key id filled in) "
            "to the exposed-key Lambda, invoked here on this machine:"
        )
        started = datetime.now(UTC)
        done = subprocess.run(
            [sys.executable, "-c", INVOKE], input=json.dumps(event), env=env,
            capture_output=True, text=True, timeout=300, check=False, cwd=ctx.workdir,
        )  # fmt: skip
        took = (datetime.now(UTC) - started).total_seconds()
        if done.returncode != 0:
            tail = " / ".join(done.stderr.strip().splitlines()[-3:])
            raise DemoError(f"the exposed-key Lambda failed: {tail}")
        [row] = _result(done.stdout)["results"]
        ctx.say(
            f"Lambda result: [bold]{row['state']}[/], rotation [bold]{row['rotation']}[/], "
            f"in {took:.1f} s (CloudTrail read at 2 requests a second per region)"
        )

        ctx.step("2. Contained: the key is inactive, kept as evidence; consumers moved")
        _prove(ctx, key_id, secret)

        ctx.step("3. People told: the owner (Contact tag) and the security contact")
        mails = [m for m in aws.data()["ses"]["Message"] if key_id in m["subject"]]
        table = Table()
        for column in ("to", "subject"):
            table.add_column(column)
        for mail in mails:
            table.add_row(", ".join(mail["destinations"]["ToAddresses"]), escape(mail["subject"]))
        console.print(table)
        if sorted(a for m in mails for a in m["destinations"]["ToAddresses"]) != sorted(
            [OWNER, SECURITY]
        ):
            raise DemoError("the owner and the security contact were not each mailed once")

        ctx.step("4. The incident record: every action with its time, and what the key did")
        [record_file] = records.glob("incident-*.json")
        _show_record(ctx, json.loads(record_file.read_text()))
        ctx.say(f"JSON and HTML: [cyan]{ctx.shown_path(record_file.with_suffix(''))}.*[/]")

        ctx.step("5. The same event again (EventBridge retries), then the operator's CLI")
        again = subprocess.run(
            [sys.executable, "-c", INVOKE], input=json.dumps(event), env=env,
            capture_output=True, text=True, timeout=300, check=False, cwd=ctx.workdir,
        )  # fmt: skip
        [second] = _result(again.stdout)["results"] if again.returncode == 0 else [{}]
        if second.get("state") != "already contained":
            raise DemoError(f"the second delivery was not a no-op: {second or again.stderr}")
        ctx.say("Lambda result: [bold]already contained[/]: nothing changed, nobody mailed again")
        ctx.keyturn("quarantine", key_id, env=extra)


def _result(stdout: str) -> Any:
    """The handler's return value: the last line (the function's JSON logs come first)."""
    return json.loads(stdout.strip().splitlines()[-1])


def _seed(ctx: DemoContext) -> tuple[str, str]:
    aws = ctx.aws
    ses = aws.client("ses")
    for address in (SENDER, OWNER, SECURITY):
        ses.verify_email_identity(EmailAddress=address)
    aws.create_user(USER, tags={"Contact": OWNER})
    key = aws.add_key(USER, age_days=45)
    aws.client("secretsmanager").create_secret(
        Name=f"apps/{USER}",
        SecretString=json.dumps(
            {"UserName": USER, "AccessKeyId": key.key_id, "SecretAccessKey": key.secret}
        ),
    )
    return key.key_id, key.secret


def _prove(ctx: DemoContext, exposed: str, exposed_secret: str) -> None:
    from demo.context import DemoError

    aws = ctx.aws
    keys = {
        k["AccessKeyId"]: k["Status"]
        for k in aws.client("iam").list_access_keys(UserName=USER)["AccessKeyMetadata"]
    }
    served = json.loads(
        aws.client("secretsmanager").get_secret_value(
            SecretId=f"apps/{USER}", VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    new = served["AccessKeyId"]
    sts = boto3.client(
        "sts", endpoint_url=aws.url, region_name=REGION, aws_access_key_id=new,
        aws_secret_access_key=served["SecretAccessKey"],
    )  # fmt: skip
    arn = sts.get_caller_identity()["Arn"]
    table = Table()
    for column in ("key", "IAM status", "in the store"):
        table.add_column(column)
    table.add_row(exposed, keys.get(exposed, "deleted"), "previous version")
    table.add_row(new, keys.get(new, "?"), f"current; authenticates as {arn}")
    ctx.console.print(table)
    if keys.get(exposed) != "Inactive" or keys.get(new) != "Active" or new == exposed:
        raise DemoError(f"expected {exposed} inactive and a new active key served, got {keys}")
    if exposed_secret in json.dumps(served):
        raise DemoError("the store still serves the exposed secret")


def _show_record(ctx: DemoContext, record: dict[str, Any]) -> None:
    from demo.context import DemoError

    table = Table(title=f"incident {record['key']['key_id']} of {record['key']['user']}")
    for column in ("time (UTC)", "action"):
        table.add_column(column)
    for action in record["actions"]:
        table.add_row(action["at"][11:19], action["detail"])
    ctx.console.print(table)
    activity = record["activity"]
    ctx.say(
        f"What the key did: [bold]{activity['total_events']}[/] CloudTrail events in "
        f"{len(activity['regions_searched'])} regions, "
        f"[bold]{activity['access_calls_total']}[/] of them calls that create access, first:"
    )
    calls = Table()
    for column in ("time", "region", "call", "target", "from"):
        calls.add_column(column)
    for call in activity["access_calls"][:5]:
        calls.add_row(
            call["time"][11:19], call["region"], call["name"], call.get("target") or "",
            call.get("source_ip") or "",
        )  # fmt: skip
    ctx.console.print(calls)
    top = ", ".join(f"{t['value']} {t['count']}" for t in activity["by_action"]["top"][:4])
    ctx.say(f"Most frequent calls: {top}")
    if activity["total_events"] != 600 or not activity["complete"]:
        raise DemoError("the incident record does not list the key's CloudTrail activity")
