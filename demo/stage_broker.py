"""Demo stage: the lease broker. It alone holds IAM rights; a developer with none leases
through it, proving who she is with a signed sts:GetCallerIdentity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.panel import Panel

if TYPE_CHECKING:
    from demo.__main__ import DemoContext  # type: ignore[import-not-found]

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


def _config(account: str) -> str:
    alice = f"arn:aws:iam::{account}:user/alice"
    return f"""
[leases.roles.dev]
credential_type = "iam_user"
policy_arns = ["{READ_ONLY}"]
default_ttl = "1h"
allowed_principals = ["{alice}"]

[leases.roles.prod-admin]
credential_type = "iam_user"
policy_arns = ["{READ_ONLY}"]
allowed_principals = ["arn:aws:iam::{account}:user/oncall-*"]
"""


def _key(ctx: Any, user: str, policy: str | None) -> dict[str, str]:
    iam = ctx.aws.client("iam")
    iam.create_user(UserName=user)
    if policy:
        iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=policy)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def run(ctx: DemoContext) -> None:
    say = ctx.console.print
    ctx.aws.reset()
    say(
        Panel.fit(
            "[bold]Broker[/]: leases for people who hold no IAM rights, as Vault does, on AWS's "
            "own identity"
        )
    )
    account = ctx.aws.client("sts").get_caller_identity()["Account"]
    issuer = _key(ctx, "keyturn-broker", ALLOW_ALL)
    alice = _key(ctx, "alice", None)  # no policy at all
    config = ctx.workdir / "broker.toml"
    config.write_text(_config(account))
    ctx.aws.set_authentication(True)  # from here moto checks every signature and policy
    server = _serve(ctx, issuer, config)
    try:
        url = server[1]
        alice_env = {**alice, "XDG_STATE_HOME": str(ctx.workdir / "alice-state")}

        say("\n[bold]1.[/] alice has no IAM permission: leasing on her own is refused by IAM.")
        ctx.keyturn("creds", "dev", env={**alice_env, "KEYTURN_CONFIG": str(config)}, ok_codes=(4,))

        say(
            f"\n[bold]2.[/] Through the broker at {url}: she signs a GetCallerIdentity (never "
            "sends her secret); the broker asks STS who signed it, checks role dev allows "
            "her, and issues."
        )
        made = ctx.keyturn(
            "creds", "dev", "--broker", url, "-f", "json", env=alice_env, show_output=False
        )
        issued = json.loads(made.stdout)
        say(f"   lease   [cyan]{issued['lease_id']}[/] owned by alice")
        say(f"   user    {issued['principal']}")
        sts = ctx.aws.client("sts", key_id=issued["access_key"], secret=issued["secret_key"])
        say(f"   works:  [green]{sts.get_caller_identity()['Arn']}[/]")

        say("\n[bold]3.[/] A role she is not allowed on: one line, nothing created.")
        ctx.keyturn("creds", "prod-admin", "--broker", url, env=alice_env, ok_codes=(4,))

        say("\n[bold]4.[/] Her leases, and revoking her own.")
        ctx.keyturn("lease", "list", "--broker", url, env=alice_env)
        ctx.keyturn("lease", "revoke", issued["lease_id"], "--broker", url, env=alice_env)
        say("   Every request left one JSON audit line (broker-events.jsonl), e.g.:")
        say(f"   [dim]{escape(_last_event(ctx.workdir / 'broker-events.jsonl'))}[/]")
    finally:
        server[0].terminate()
        server[0].wait(timeout=30)
        ctx.aws.set_authentication(False)


def _serve(ctx: Any, issuer: dict[str, str], config: Path) -> tuple[subprocess.Popen[str], str]:
    ctx.say("[dim]$ keyturn broker serve --port 0   (with the issuer's keys)[/]")
    env = ctx.env(
        {
            **issuer,
            "KEYTURN_CONFIG": str(config),
            "XDG_STATE_HOME": str(ctx.workdir / "broker-state"),
        }
    )
    binary = Path(sys.executable).parent / "keyturn"
    process = subprocess.Popen(
        [
            str(binary),
            "broker",
            "serve",
            "--port",
            "0",
            "--events",
            str(ctx.workdir / "broker-events.jsonl"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ctx.workdir,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if "listening on" not in first:
        process.kill()
        problem = first or (process.stderr.read() if process.stderr else "")
        raise RuntimeError(f"broker serve did not start: {problem}")
    ctx.say(f"   {first.strip()}")
    return process, first.split("listening on ")[1].split()[0]


def _last_event(path: Path) -> str:
    lines = path.read_text().splitlines() if path.exists() else []
    return lines[-1] if lines else "(no events written)"
