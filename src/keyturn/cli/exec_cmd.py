"""`keyturn exec ROLE -- COMMAND [ARGS]`: run a command with a lease in its environment
(aws-vault's convention).

The child gets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (when the
credential has one) and AWS_CREDENTIAL_EXPIRATION; variables that would make its SDK pick
other credentials (AWS_PROFILE, a stale session token, web identity, container
credentials) are removed. keyturn's exit status is the child's; a child killed by a signal
makes keyturn die of the same signal. SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 sent to keyturn
are passed on; Ctrl-C reaches the child from the terminal (it shares the process group),
so keyturn itself ignores SIGINT while the child runs and then, with `--revoke-on-exit`,
still revokes the lease. A lease revoked on exit is never cached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from types import FrameType
from typing import Annotated, Any

import typer

from keyturn.adapters.lease_cache import CachedCredential
from keyturn.cli import lease_client
from keyturn.cli.lease_cmd import BrokerOption

# Variables that make an SDK choose credentials other than the ones exec hands over.
CONFLICTING = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
NOT_FOUND = 127  # the shell's status for a command that cannot be found
CANNOT_RUN = 126


def child_env(base: dict[str, str], credential: CachedCredential) -> dict[str, str]:
    env = {name: value for name, value in base.items() if name not in CONFLICTING}
    env["AWS_ACCESS_KEY_ID"] = credential.access_key_id
    env["AWS_SECRET_ACCESS_KEY"] = credential.secret_access_key
    if credential.session_token:
        env["AWS_SESSION_TOKEN"] = credential.session_token
    env["AWS_CREDENTIAL_EXPIRATION"] = credential.expiration.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    env["KEYTURN_LEASE_ID"] = credential.lease_id
    return env


def exec_command(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="The role to lease credentials for.")],
    command: Annotated[
        list[str], typer.Argument(help="The command and its arguments, after `--`.")
    ],
    ttl: Annotated[str | None, typer.Option("--ttl", help="Lease duration, e.g. 1h.")] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Who asks (default: your login).")
    ] = None,
    revoke_on_exit: Annotated[
        bool,
        typer.Option(
            "--revoke-on-exit", help="Revoke the lease when the command exits (never cached)."
        ),
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always issue a new lease.")] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="iam_user: hand the key out before it is proven to work."),
    ] = False,
    broker: BrokerOption = None,
) -> int:
    """Run COMMAND with leased credentials in its environment; exit with its status."""
    from keyturn.cli.lease_cmd import obtain_cached, revoke_one
    from keyturn.domain.errors import BadInputError
    from keyturn.domain.leases import parse_duration

    if not command:
        raise BadInputError("exec: no command given (keyturn exec ROLE -- COMMAND [ARGS])")
    wanted = parse_duration(ttl, "--ttl") if ttl else None
    use_cache = not (no_cache or revoke_on_exit)
    credential = obtain_cached(
        ctx, role, wanted, display_name, broker, use_cache=use_cache, wait=not no_wait
    )
    status = _run(command, child_env(dict(os.environ), credential))
    if revoke_on_exit:
        with _ignoring(signal.SIGINT):
            outcome = revoke_one(ctx, credential.lease_id, broker)
        if not outcome.ok:
            lease_client.warn(
                f"{credential.lease_id} not revoked on exit: {outcome.result.value} "
                f"{outcome.detail}".strip()
            )
            if status == 0:
                status = 1
    if status < 0:  # killed by a signal: die of the same one, as the shell expects
        signal.signal(-status, signal.SIG_DFL)
        sys.stdout.flush()
        os.kill(os.getpid(), -status)
        return 128 - status
    return status


def _run(command: list[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        sys.stderr.write(f"error: exec: command not found: {command[0]}\n")
        return NOT_FOUND
    except PermissionError:
        sys.stderr.write(f"error: exec: permission denied: {command[0]}\n")
        return CANNOT_RUN

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous: dict[int, Any] = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        with _ignoring(signal.SIGINT):
            return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _ignoring(sig: int) -> Iterator[None]:
    previous = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(sig, previous)
