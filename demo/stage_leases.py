"""Demo stage: leased AWS credentials, from role to revoke, plus a crash that tidy cleans."""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

from rich.panel import Panel

if TYPE_CHECKING:
    from demo.__main__ import DemoContext  # type: ignore[import-not-found]

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def _users(ctx: Any) -> list[str]:
    return [
        u["UserName"]
        for u in ctx.aws.client("iam").list_users()["Users"]
        if u["UserName"].startswith("keyturn")
    ]


def run(ctx: DemoContext) -> None:
    say = ctx.console.print
    # An account and a lease store of its own: earlier stages' users are not its business.
    ctx.aws.reset()
    shutil.rmtree(ctx.workdir / "lease-state", ignore_errors=True)
    env = {
        "XDG_STATE_HOME": str(ctx.workdir / "lease-state"),
        "KEYTURN_LEASES_TIDY_MARGIN": "0s",  # the demo's crash is seconds old
    }
    say(
        Panel.fit(
            "[bold]Leases[/]: short-lived AWS credentials, like Vault's AWS engine, without Vault"
        )
    )
    # The README's example as written: an AWS managed policy (the sandbox loads moto's copy
    # of them) in a role with a 1h default and an 8h max.
    arn = READ_ONLY

    say("\n[bold]1.[/] A role says what a credential may do and for how long.")
    ctx.keyturn(
        "role",
        "write",
        "dev",
        "--credential-type",
        "iam_user",
        "--policy-arn",
        arn,
        "--default-ttl",
        "1h",
        "--max-ttl",
        "8h",
        "--iam-tag",
        "team=demo",
        env=env,
    )

    say("\n[bold]2.[/] `keyturn creds dev` creates an IAM user and key under a lease.")
    issued = json.loads(ctx.keyturn("creds", "dev", "--format", "json", env=env).stdout)
    say(f"   lease   [cyan]{issued['lease_id']}[/] ({issued['lease_duration']}, renewable)")
    say(f"   user    {issued['principal']}")
    say(f"   key     {issued['access_key']}  secret {issued['secret_key'][:4]}…(hidden here)")

    say("\n[bold]3.[/] The credential works: STS GetCallerIdentity signed with it says")
    sts = ctx.aws.client("sts", key_id=issued["access_key"], secret=issued["secret_key"])
    say(f"   [green]{sts.get_caller_identity()['Arn']}[/]")

    say("\n[bold]4.[/] Renew: asking for 9h past an 8h max is clamped, with a warning.")
    ctx.keyturn("lease", "renew", issued["lease_id"], "--increment", "9h", env=env)

    say("\n[bold]5.[/] Revoke removes the key, the policies and then the user.")
    ctx.keyturn("lease", "revoke", issued["lease_id"], env=env)
    say(f"   keyturn users left in IAM: {_users(ctx) or 'none'}")

    say("\n[bold]6.[/] A crash: `creds` killed with SIGKILL right after CreateAccessKey.")
    crashed = ctx.keyturn(
        "creds", "dev", check=False, env={**env, "KEYTURN_TEST_CRASH_AFTER": "create_access_key"}
    )
    say(f"   exit status {crashed.returncode}; left behind in IAM: {_users(ctx)}")
    say("   The lease intent was written first, so keyturn knows about it:")
    ctx.keyturn("lease", "tidy", env=env)
    left = _users(ctx)
    say(f"   keyturn users left in IAM: [green]{left or 'none'}[/]")
    if left:
        raise RuntimeError(f"tidy left users behind: {left}")

    say("\n[bold]7.[/] A look-alike: `keyturn-deployer`, carrying tags copied from a lease user.")
    _look_alike(ctx, env)
    ctx.keyturn("lease", "tidy", env=env)
    if "keyturn-deployer" not in _users(ctx):
        raise RuntimeError("tidy removed a user keyturn never made")
    say("   Tags are a claim anyone with iam:TagUser can make: it is named, never touched.")


def _look_alike(ctx: Any, env: dict[str, str]) -> None:
    issued = json.loads(
        ctx.keyturn("creds", "dev", "--format", "json", env=env, show_output=False).stdout
    )
    iam = ctx.aws.client("iam")
    tags = iam.list_user_tags(UserName=issued["principal"])["Tags"]
    iam.create_user(UserName="keyturn-deployer", Tags=tags)
    iam.create_access_key(UserName="keyturn-deployer")
    ctx.keyturn("lease", "revoke", issued["lease_id"], env=env)
