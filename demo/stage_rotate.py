"""Demo stage: `keyturn rotate` into OpenBao (KV v2) and AWS Secrets Manager (moto).

moto runs with authentication on for this stage, so "the new key works" means a real
signature check, and the admin that runs keyturn is itself an IAM user with a policy.
Shows: enrollment (the schedule rotates only users whose consumers read the store; a tag
that claims enrollment is not believed), the plan, a rotation into Vault, the stored
entries (secrets masked), proof that the new keys authenticate and the old ones are
deactivated, a Secrets Manager rotation with its staging labels, a `kill -9` in the middle
of a rotation and `--resume`, and a rollback.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
from rich.table import Table

from keyturn.sandbox.aws import REGION, SeededKey

if TYPE_CHECKING:
    from demo import DemoContext  # type: ignore[attr-defined]

ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
VAULT_PATH = "demo/aws/{user}"


def run(ctx: DemoContext) -> None:
    console = ctx.console
    aws = ctx.aws
    vault = ctx.vault  # skips the stage when OpenBao is not running
    console.rule("[bold]rotate: new key, stored, verified, promoted, old key retired[/]")
    aws.reset()
    admin = _seed(ctx)
    aws.set_authentication(True)
    try:
        env = {
            "AWS_ACCESS_KEY_ID": admin.key_id,
            "AWS_SECRET_ACCESS_KEY": admin.secret,
            "KEYTURN_ROTATE_STORE": "vault",
            "KEYTURN_ROTATE_PATH": VAULT_PATH,
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0.2",
        }
        iam = aws.client("iam", key_id=admin.key_id, secret=admin.secret)
        _stages(ctx, env, iam, vault.client(), admin)
    finally:
        aws.set_authentication(False)


def _stages(ctx: DemoContext, env: dict[str, str], iam: Any, hv: Any, admin: SeededKey) -> None:
    console = ctx.console
    console.print(
        "Users [bold]app-web[/] and [bold]app-batch[/] read their key from OpenBao at "
        f"[cyan]secret/{VAULT_PATH}[/]; [bold]svc-report[/] reads it from Secrets Manager."
        " moto checks every signature in this stage."
    )
    console.print(
        "\n[bold]1. Nobody is rotated until enrolled[/]: [bold]mallory[/] tagged herself "
        "[cyan]keyturn:enrolled[/], which keyturn did not seal"
    )
    ctx.keyturn("rotate", "--due", env=env)
    console.print(
        "\n[bold]2. Enroll[/]: the store already serves app-web's, app-batch's and app-cron's "
        "working keys (recorded after a check); [bold]app-new[/] has no entry yet, so its "
        "enrollment is its first rotation and its old key stays active for the hold period"
    )
    ctx.keyturn("enroll", "app-web", "app-batch", "app-cron", "app-new", env=env)

    console.print("\n[bold]3. The plan[/] (dry run: nothing changes)")
    ctx.keyturn("rotate", "app-web", "app-batch", "--dry-run", env=env)

    console.print("\n[bold]4. Rotate into OpenBao KV v2[/]")
    ctx.keyturn("rotate", "app-web", "app-batch", env=env)
    _show_vault(ctx, hv, ["app-web", "app-batch"])
    _prove(ctx, iam, hv, ["app-web", "app-batch"])

    console.print(
        "\n[bold]5. Enroll and rotate into Secrets Manager[/] in one run (seed 001's shape)"
    )
    sm_env = {**env, "KEYTURN_ROTATE_STORE": "secretsmanager", "KEYTURN_ROTATE_PATH": "iam/{user}"}
    ctx.keyturn("rotate", "svc-report", "--enroll", env=sm_env)
    _show_secretsmanager(ctx, admin, "svc-report")

    console.print(
        "\n[bold]6. kill -9 right after CreateAccessKey[/], before the secret reached the store"
    )
    ctx.keyturn(
        "rotate", "app-cron", env={**env, "KEYTURN_TEST_CRASH_AFTER": "create"}, check=False
    )
    keys = iam.list_access_keys(UserName="app-cron")["AccessKeyMetadata"]
    console.print(
        f"app-cron now has {len(keys)} keys; the new one's secret exists nowhere. "
        "The intent written before CreateAccessKey lets --resume recognise it:"
    )
    ctx.keyturn("rotate", "--resume", "app-cron", env=env)
    _prove(ctx, iam, hv, ["app-cron"])

    console.print("\n[bold]7. Roll back[/] svc-report: old key active and current again")
    ctx.keyturn("rotate", "--rollback", "svc-report", env=sm_env)
    _show_secretsmanager(ctx, admin, "svc-report")


def _seed(ctx: DemoContext) -> SeededKey:
    aws = ctx.aws
    iam = aws.client("iam")
    iam.create_user(UserName="demo-admin")
    iam.put_user_policy(UserName="demo-admin", PolicyName="all", PolicyDocument=ALLOW_ALL)
    created = iam.create_access_key(UserName="demo-admin")["AccessKey"]
    admin = SeededKey("demo-admin", created["AccessKeyId"], created["SecretAccessKey"])
    hv = ctx.vault.client()
    for user, age in (("app-web", 95), ("app-batch", 40), ("app-cron", 33)):
        aws.create_user(user)
        key = aws.add_key(user, age_days=age)
        hv.secrets.kv.v2.create_or_update_secret(
            path=VAULT_PATH.format(user=user),
            secret={"access_key": key.key_id, "secret_key": key.secret},
        )
    aws.create_user("app-new")
    aws.add_key("app-new", age_days=50)  # its consumer still holds this key itself
    aws.create_user("mallory")
    aws.add_key("mallory", age_days=70)
    iam.tag_user(
        UserName="mallory", Tags=[{"Key": "keyturn:enrolled", "Value": "v1:vault:1767225600"}]
    )
    aws.create_user("svc-report")
    key = aws.add_key("svc-report", age_days=61)
    aws.client("secretsmanager").create_secret(
        Name="iam/svc-report",
        SecretString=json.dumps(
            {"UserName": "svc-report", "AccessKeyId": key.key_id, "SecretAccessKey": key.secret}
        ),
    )
    return admin


def _mask(secret: str) -> str:
    return secret[:4] + "…" + "*" * 8


def _show_vault(ctx: DemoContext, hv: Any, users: list[str]) -> None:
    table = Table(title="OpenBao secret/ (secrets masked)")
    for column in ("path", "access_key", "secret_key", "keyturn_token"):
        table.add_column(column)
    for user in users:
        for suffix in ("", ".previous"):
            path = VAULT_PATH.format(user=user) + suffix
            data = hv.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)[
                "data"
            ]["data"]
            table.add_row(
                path,
                data["access_key"],
                _mask(data["secret_key"]),
                str(data.get("keyturn_token", "-"))[:8],
            )
    ctx.console.print(table)


def _prove(ctx: DemoContext, iam: Any, hv: Any, users: list[str]) -> None:
    table = Table(title="proof: the stored key signs in; IAM says what happened to the old one")
    for column in ("user", "stored key", "GetCallerIdentity with it", "all keys (IAM status)"):
        table.add_column(column)
    for user in users:
        data = hv.secrets.kv.v2.read_secret_version(
            path=VAULT_PATH.format(user=user), raise_on_deleted_version=True
        )["data"]["data"]
        sts = boto3.client(
            "sts",
            endpoint_url=ctx.aws.url,
            region_name=REGION,
            aws_access_key_id=data["access_key"],
            aws_secret_access_key=data["secret_key"],
        )
        arn = sts.get_caller_identity()["Arn"]
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        statuses = ", ".join(
            f"{k['AccessKeyId']} [{'green' if k['Status'] == 'Active' else 'yellow'}]"
            f"{k['Status']}[/]"
            for k in keys
        )
        table.add_row(user, data["access_key"], f"[green]{arn}[/]", statuses)
    ctx.console.print(table)


def _show_secretsmanager(ctx: DemoContext, admin: SeededKey, user: str) -> None:
    sm = ctx.aws.client("secretsmanager", key_id=admin.key_id, secret=admin.secret)
    iam = ctx.aws.client("iam", key_id=admin.key_id, secret=admin.secret)
    status = {
        k["AccessKeyId"]: k["Status"]
        for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    }
    table = Table(title=f"Secrets Manager iam/{user} (secrets masked)")
    for column in ("label", "AccessKeyId", "SecretAccessKey", "IAM status"):
        table.add_column(column)
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        doc = json.loads(
            sm.get_secret_value(SecretId=f"iam/{user}", VersionStage=stage)["SecretString"]
        )
        key_id = doc.get("AccessKeyId", "-")
        table.add_row(
            stage, key_id, _mask(doc.get("SecretAccessKey", "")), status.get(key_id, "deleted")
        )
    ctx.console.print(table)
