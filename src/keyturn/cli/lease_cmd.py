"""`keyturn role ...`, `keyturn creds ROLE`, `keyturn lease ...`: leased AWS credentials.

Thin shell: parse flags, call LeaseService, render. `creds` prints a secret because that
is what the user asked for; nothing else here ever does (invariant 5).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import shlex
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keyturn.adapters.event_log import JsonLinesSink, NullSink
from keyturn.cli import exit_codes
from keyturn.cli.context import CliContext
from keyturn.domain.errors import BadInputError
from keyturn.domain.leases import LEASE_PREFIX, Lease, Role, format_duration, parse_duration
from keyturn.ports import EventSink
from keyturn.services.leases import IssuedCredential, LeaseService, RevokeOutcome, TidyReport
from keyturn.wiring import build_leases

if TYPE_CHECKING:
    from keyturn.adapters.broker_client import BrokerClient
    from keyturn.adapters.lease_cache import CachedCredential

role_app = typer.Typer(help="Define what `keyturn creds ROLE` issues.", no_args_is_help=True)
lease_app = typer.Typer(help="List, renew and revoke issued credentials.", no_args_is_help=True)


class CredsFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    ENV = "env"
    PROCESS = "process"  # the AWS SDKs' credential_process JSON; cached (lease_client.py)


class ListFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _service(ctx: typer.Context) -> LeaseService:
    cli: CliContext = ctx.obj
    return build_leases(cli.settings())


BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Lease through this keyturn broker (default: the broker.url setting); your own "
        "AWS credentials only prove who you are.",
    ),
]


def _broker(ctx: typer.Context, url: str | None) -> BrokerClient | None:
    """The broker client when `--broker` or `broker.url` names one, else None (local)."""
    cli: CliContext = ctx.obj
    settings = cli.settings().settings
    if not (url or settings.broker.url):
        return None
    from keyturn.wiring_broker import build_broker_client

    return build_broker_client(settings, url)


def issue_credential(
    ctx: typer.Context,
    role: str,
    ttl: timedelta | None,
    display_name: str | None,
    broker: str | None = None,
    *,
    wait: bool = True,
) -> IssuedCredential:
    """The one place `creds` (and the commands built on it) get a credential: from the
    broker when one is named, else from the local LeaseService with this process's rights.
    Through the broker the display name is the caller AWS proved, not a flag, and the
    broker waits for an iam_user key to work before it answers (its own `--no-wait` is not
    the caller's to choose)."""
    client = _broker(ctx, broker)
    if client is not None:
        if display_name:
            _warn("--display-name is not used through the broker: it names you as AWS proved")
        return client.issue(role, ttl)
    return _service(ctx).issue(role, ttl, display_name or _login(), wait=wait)


def _broker_url(ctx: typer.Context, url: str | None) -> str | None:
    cli: CliContext = ctx.obj
    return url or cli.settings().settings.broker.url


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _warn(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text.assemble(("warning: ", "bold yellow"), message)
    )


def _duration(value: str | None, flag: str) -> Any:
    return parse_duration(value, flag) if value else None


# -- roles ------------------------------------------------------------------------------


@role_app.command("write")
def role_write(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Role name; part of every lease id.")],
    credential_type: Annotated[
        str, typer.Option("--credential-type", help="iam_user, assumed_role or federation_token.")
    ],
    policy_arn: Annotated[
        list[str] | None, typer.Option("--policy-arn", help="Managed policy (repeatable).")
    ] = None,
    policy_document: Annotated[
        str | None,
        typer.Option("--policy-document", help="Inline policy JSON, or @file.json."),
    ] = None,
    iam_group: Annotated[
        list[str] | None, typer.Option("--iam-group", help="Group to add users to (repeatable).")
    ] = None,
    iam_tag: Annotated[
        list[str] | None, typer.Option("--iam-tag", help="KEY=VALUE tag on users (repeatable).")
    ] = None,
    permissions_boundary_arn: Annotated[
        str | None, typer.Option("--permissions-boundary-arn", help="Boundary for users.")
    ] = None,
    user_path: Annotated[str | None, typer.Option("--user-path", help="IAM path.")] = None,
    role_arn: Annotated[
        list[str] | None, typer.Option("--role-arn", help="Role to assume (assumed_role).")
    ] = None,
    default_ttl: Annotated[
        str | None, typer.Option("--default-ttl", help="e.g. 1h (default 768h; STS 1h).")
    ] = None,
    max_ttl: Annotated[str | None, typer.Option("--max-ttl", help="e.g. 768h.")] = None,
    username_template: Annotated[
        str | None,
        typer.Option(
            "--username-template",
            help="e.g. '{prefix}-{display_name:16}-{role:20}-{unix_time}-{random:8}'.",
        ),
    ] = None,
    allowed_principal: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-principal",
            help="ARN pattern that may lease it through the broker (repeatable; none: nobody).",
        ),
    ] = None,
    admin_principal: Annotated[
        list[str] | None,
        typer.Option(
            "--admin-principal",
            help="ARN pattern that may manage every lease of it through the broker.",
        ),
    ] = None,
) -> None:
    """Create or replace a role (validated in full before it is stored)."""
    role = Role.build(
        name,
        credential_type=credential_type,
        policy_arns=policy_arn or (),
        policy_document=_document(policy_document),
        iam_groups=iam_group or (),
        iam_tags=_tags(iam_tag or []),
        permissions_boundary_arn=permissions_boundary_arn,
        user_path=user_path,
        role_arns=role_arn or (),
        default_ttl=default_ttl,
        max_ttl=max_ttl,
        username_template=username_template,
        allowed_principals=allowed_principal or (),
        admin_principals=admin_principal or (),
    )
    _service(ctx).write_role(role)
    _out().print(f"role [bold]{name}[/] written ({role.credential_type.value})")


def _document(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"--policy-document: cannot read {path}: {exc}") from None


def _tags(items: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInputError(f"--iam-tag {item!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


@role_app.command("read")
def role_read(ctx: typer.Context, name: str) -> None:
    """Print one role as JSON."""
    typer.echo(json.dumps(_service(ctx).role(name).to_dict(), indent=2))


@role_app.command("list")
def role_list(ctx: typer.Context) -> None:
    """Every role: stored ones and those declared in keyturn.toml."""
    table = Table(title="roles")
    for column in ("name", "type", "default ttl", "max ttl", "from"):
        table.add_column(column)
    for role in _service(ctx).list_roles():
        table.add_row(
            role.name,
            role.credential_type.value,
            format_duration(role.effective_default_ttl),
            format_duration(role.effective_max_ttl),
            role.source,
        )
    _out().print(table)


@role_app.command("delete")
def role_delete(ctx: typer.Context, name: str) -> None:
    """Delete a stored role; its leases stay valid and revocable."""
    _service(ctx).delete_role(name)
    _out().print(f"role [bold]{name}[/] deleted")


# -- creds --------------------------------------------------------------------------------


def creds(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="The role to issue credentials for.")],
    ttl: Annotated[str | None, typer.Option("--ttl", help="Lease duration, e.g. 1h.")] = None,
    output_format: Annotated[
        CredsFormat,
        typer.Option(
            "--format",
            "-f",
            help="table, json, env (eval-able) or process (AWS credential_process JSON, "
            "cached until shortly before expiry).",
        ),
    ] = CredsFormat.TABLE,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Who asks (default: your login).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="process: always issue a new lease.")
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="iam_user: hand the key out before it is proven to work."),
    ] = False,
    broker: BrokerOption = None,
) -> None:
    """Issue credentials under a new lease and print them (secret included: you asked)."""
    wanted = _duration(ttl, "--ttl")
    if output_format is CredsFormat.PROCESS:
        _print_process(ctx, role, wanted, display_name, broker, no_cache=no_cache, wait=not no_wait)
        return
    issued = issue_credential(ctx, role, wanted, display_name, broker, wait=not no_wait)
    for warning in issued.warnings:
        _warn(warning)
    _print_creds(issued, output_format)


def _print_process(
    ctx: typer.Context,
    role: str,
    ttl: Any,
    display_name: str | None,
    broker: str | None,
    *,
    no_cache: bool,
    wait: bool,
) -> None:
    """One JSON document on stdout, written whole once everything succeeded."""
    credential = obtain_cached(
        ctx, role, ttl, display_name, broker, use_cache=not no_cache, wait=wait
    )
    sys.stdout.write(credential.process_json() + "\n")
    sys.stdout.flush()


def obtain_cached(
    ctx: typer.Context,
    role: str,
    ttl: timedelta | None,
    display_name: str | None,
    broker: str | None,
    *,
    use_cache: bool,
    wait: bool,
) -> CachedCredential:
    """A credential for `--format process` and `exec`: the cached one while it is fresh,
    else a new lease (cached). The cache is keyed by where the credential came from: a
    broker's lease is never served for the local store's, nor the other way round."""
    from keyturn.adapters.lease_cache import broker_source
    from keyturn.cli import lease_client

    loaded = ctx.obj.settings()
    cache = lease_client.open_cache(loaded) if use_cache else None
    url = _broker_url(ctx, broker)
    if url:
        key = lease_client.cache_key(role, broker_source(url), ttl, None)
    else:
        who = display_name or _login()
        key = lease_client.cache_key(role, lease_client.settings_source(loaded), ttl, who)
    return lease_client.obtain(
        cache, key, lambda: issue_credential(ctx, role, ttl, display_name, broker, wait=wait)
    )


def revoke_one(ctx: typer.Context, lease_id: str, broker: str | None = None) -> RevokeOutcome:
    """Revoke through the broker when one is named, else with this process's rights."""
    return (_broker(ctx, broker) or _service(ctx)).revoke(lease_id)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "keyturn"


def _print_creds(issued: IssuedCredential, chosen: CredsFormat) -> None:
    lease = issued.lease
    fields: dict[str, Any] = {
        "lease_id": lease.lease_id,
        "lease_duration": format_duration(lease.expires - lease.issued),
        "lease_expires": lease.expires.isoformat(),
        "renewable": lease.renewable,
        "access_key": issued.access_key_id,
        "secret_key": issued.secret_access_key,
        "session_token": issued.session_token,
        "principal": lease.principal,
    }
    if chosen is CredsFormat.JSON:
        typer.echo(json.dumps(fields, indent=2))
    elif chosen is CredsFormat.ENV:
        lines = [
            f"export AWS_ACCESS_KEY_ID={shlex.quote(issued.access_key_id)}",
            f"export AWS_SECRET_ACCESS_KEY={shlex.quote(issued.secret_access_key)}",
        ]
        if issued.session_token:
            lines.append(f"export AWS_SESSION_TOKEN={shlex.quote(issued.session_token)}")
        else:
            lines.append("unset AWS_SESSION_TOKEN")
        lines.append(f"# lease {lease.lease_id} expires {lease.expires.isoformat()}")
        typer.echo("\n".join(lines))
    else:
        table = Table(show_header=True)
        table.add_column("Key")
        table.add_column("Value", overflow="fold")
        for key, value in fields.items():
            if value is not None:
                table.add_row(key, str(value).lower() if isinstance(value, bool) else str(value))
        _out().print(table)


# -- leases ---------------------------------------------------------------------------------

# Every `--format json` answer of a `lease` command is one object carrying this, so scripts
# can tell what they parse and notice a change. v1: list -> "leases" (each lease's record
# plus "status"), renew -> "lease" and "warning", revoke / revoke-prefix -> "outcomes" and
# "ok", tidy -> the report's lists and "ok".
LEASE_SCHEMA = "keyturn.lease/v1"

FormatOption = Annotated[ListFormat, typer.Option("--format", "-f", help="table or json.")]


def _json(command: str, **fields: Any) -> None:
    typer.echo(json.dumps({"schema": LEASE_SCHEMA, "command": command, **fields}, indent=2))


def _lease_json(lease: Lease, now: datetime) -> dict[str, Any]:
    return {**lease.to_dict(), "status": lease.status(now)}


def _outcome_json(outcome: RevokeOutcome) -> dict[str, Any]:
    return {
        "lease_id": outcome.lease_id,
        "result": outcome.result.value,
        "ok": outcome.ok,
        "detail": outcome.detail,
    }


@lease_app.command("list")
def lease_list(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Option("--prefix", help="e.g. aws/creds/dev")] = LEASE_PREFIX,
    output_format: FormatOption = ListFormat.TABLE,
    show_all: Annotated[bool, typer.Option("--all", help="Include revoked leases.")] = False,
    broker: BrokerOption = None,
) -> None:
    """Leases under a prefix (whole path segments; live ones unless --all). A lease past
    its expiry shows EXPIRED until `lease tidy` revokes it."""
    now = datetime.now(UTC)
    leases = [
        lease
        for lease in (_broker(ctx, broker) or _service(ctx)).list_leases(prefix)
        if show_all or lease.state.value != "REVOKED"
    ]
    if output_format is ListFormat.JSON:
        _json("list", prefix=prefix, leases=[_lease_json(lease, now) for lease in leases])
        return
    table = Table(title=f"leases under {prefix}")
    for column in ("lease id", "state", "principal", "expires", "renewable", "note"):
        table.add_column(column, overflow="fold")
    for lease in leases:
        status = lease.status(now)
        note = lease.last_error or ("pending `keyturn lease tidy`" if status == "EXPIRED" else "")
        table.add_row(
            lease.lease_id,
            Text(status, "red") if status == "EXPIRED" else status,
            lease.principal,
            _when(lease.expires),
            "yes" if lease.renewable and status != "EXPIRED" else "no",
            note,
        )
    _out().print(table)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


@lease_app.command("renew")
def lease_renew(
    ctx: typer.Context,
    lease_id: str,
    increment: Annotated[
        str | None,
        typer.Option(
            "--increment",
            help="New TTL from now (default: the role's default TTL); capped at the max "
            "TTL, never earlier than the current expiry.",
        ),
    ] = None,
    output_format: FormatOption = ListFormat.TABLE,
    broker: BrokerOption = None,
) -> None:
    """Extend an iam_user lease, up to its max TTL (an expiry never moves earlier)."""
    engine = _broker(ctx, broker) or _service(ctx)
    lease, warning = engine.renew(lease_id, _duration(increment, "--increment"))
    if output_format is ListFormat.JSON:
        _json("renew", lease=_lease_json(lease, datetime.now(UTC)), warning=warning)
        return
    if warning:
        _warn(warning)
    _out().print(f"{lease.lease_id} now expires {_when(lease.expires)}")


@lease_app.command("revoke")
def lease_revoke(
    ctx: typer.Context,
    lease_id: str,
    output_format: FormatOption = ListFormat.TABLE,
    broker: BrokerOption = None,
) -> int:
    """Revoke one lease: remove its IAM user and everything attached to it. Exits 0 only
    when the lease is revoked."""
    _forget_cached([lease_id])
    outcome = (_broker(ctx, broker) or _service(ctx)).revoke(lease_id)
    _print_outcomes("revoke", [outcome], output_format)
    return exit_codes.OK if outcome.ok else exit_codes.FAILED


@lease_app.command("revoke-prefix")
def lease_revoke_prefix(
    ctx: typer.Context, prefix: str, output_format: FormatOption = ListFormat.TABLE
) -> int:
    """Revoke every lease under a prefix, e.g. aws/creds/dev (all of role dev, by whole
    path segments: never dev-admin's or developers')."""
    service = _service(ctx)
    outcomes = service.revoke_prefix(prefix)
    _forget_cached(outcome.lease_id for outcome in outcomes)
    _print_outcomes("revoke-prefix", outcomes, output_format)
    return exit_codes.OK if all(outcome.ok for outcome in outcomes) else exit_codes.FAILED


def _forget_cached(lease_ids: Iterable[str]) -> None:
    """A lease being revoked is never served from this user's credential cache again
    (whether or not the revoke succeeds)."""
    from keyturn.adapters.lease_cache import CacheRefusedError, CredentialCache, cache_dir

    try:
        CredentialCache(cache_dir(), warn=_warn).forget(lease_ids)
    except CacheRefusedError as exc:
        _warn(str(exc))


def _print_outcomes(command: str, outcomes: list[RevokeOutcome], chosen: ListFormat) -> None:
    if chosen is ListFormat.JSON:
        _json(
            command,
            outcomes=[_outcome_json(o) for o in outcomes],
            ok=all(o.ok for o in outcomes),
        )
        return
    out = _out()
    _outcome_lines(out, outcomes)
    if not outcomes:
        out.print("no leases to revoke")
    elif len(outcomes) > 1:
        good = sum(outcome.ok for outcome in outcomes)
        out.print(f"{good} of {len(outcomes)} leases revoked or already gone")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        print(f"error: {len(failed)} lease(s) not revoked (see above)", file=sys.stderr)


def _outcome_lines(out: Console, outcomes: list[RevokeOutcome]) -> None:
    for outcome in outcomes:
        style = "green" if outcome.ok else "red"
        detail = f" ({outcome.detail})" if outcome.detail else ""
        out.print(Text.assemble(outcome.lease_id, ": ", (outcome.result.value, style), detail))


@lease_app.command("tidy")
def lease_tidy(
    ctx: typer.Context,
    output_format: FormatOption = ListFormat.TABLE,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Write each finding as a JSON line to this file."),
    ] = None,
) -> int:
    """Revoke expired and abandoned leases; remove users keyturn provably created (its lease
    store names them) that no live lease owns. Look-alike users are named, never touched."""
    with contextlib.ExitStack() as stack:
        sink: EventSink = NullSink()
        if events is not None:
            sink = stack.enter_context(JsonLinesSink(events))
        report = _service(ctx).tidy()
        for line in report.not_ours:
            sink.emit({"event": "lease.tidy.not_ours", "detail": line})
        for line in report.held_back:
            sink.emit({"event": "lease.tidy.held_back", "detail": line})
        for outcome in report.revoked:
            sink.emit({"event": "lease.tidy.revoke", **_outcome_json(outcome)})
        for name in report.orphans_removed:
            sink.emit({"event": "lease.tidy.orphan_removed", "user": name})
    if output_format is ListFormat.JSON:
        _json(
            "tidy",
            revoked=[_outcome_json(o) for o in report.revoked],
            held_back=report.held_back,
            orphans_removed=report.orphans_removed,
            orphans_waiting=report.orphans_waiting,
            orphans_failed=report.orphans_failed,
            irrevocable=report.irrevocable,
            not_ours=report.not_ours,
            ok=report.ok,
        )
    else:
        _print_tidy(report)
    if not report.ok:
        print("error: tidy left work undone (see above)", file=sys.stderr)
        return exit_codes.FAILED
    return exit_codes.OK


def _print_tidy(report: TidyReport) -> None:
    out = _out()
    _outcome_lines(out, report.revoked)
    for line in report.held_back:
        out.print(Text.assemble(("held back ", "yellow"), line))
    if not report.revoked and not report.held_back:
        out.print("no expired or abandoned leases")
    for name in report.orphans_removed:
        out.print(Text.assemble("orphan user ", name, ": ", ("removed", "green")))
    for name in report.orphans_waiting:
        out.print(f"orphan user {name}: younger than the tidy margin, left for now")
    for line in report.orphans_failed:
        out.print(Text.assemble(("orphan user ", "red"), line))
    for line in report.not_ours:
        out.print(Text.assemble(("not keyturn's: ", "bold yellow"), line))
    for lease_id in report.irrevocable:
        out.print(Text.assemble(lease_id, ": ", ("IRREVOCABLE, needs a human", "bold red")))
