"""The top-level command table, importable without typer, click or rich.

`keyturn --help` is drawn from these (cli/top_help.py) without building the typer app, and
cli/app.py builds the lazy command tree from the same table (issue 14's start-up target).
tests/unit/test_top_help.py checks that the light help is exactly typer's, so an option
added to app.py's callback without a line in GLOBAL_OPTIONS fails there.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: `keyturn --help` does not import typing
if TYPE_CHECKING:
    from typing import Any

APP_HELP = "Own the whole life of AWS access keys: audit, enforce, rotate, lease."

# The command tree, loaded lazily: name -> (module:attribute, kind, one-line help,
# extra command settings). A command's module (and boto3, pydantic, ... behind it) is
# imported only when that command runs or shows its own help, so `keyturn --help` and
# the cached `creds --format process` start in a fraction of the time (issue 14). The
# one-line help is the first paragraph of the command's docstring (tests/unit/
# test_lazy_cli.py checks they agree). To add a command, add a line here.
COMMANDS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "audit": (
        "keyturn.cli.audit_cmd:audit",
        "command",
        "Inventory every access key: age, last use, owner and policy finding.",
        {},
    ),
    "enforce": (
        "keyturn.cli.enforce_cmd:enforce",
        "command",
        "Apply the key-age policy: notify, then deactivate, optionally delete.",
        {},
    ),
    "rotate": (
        "keyturn.cli.rotate_cmd:rotate",
        "command",
        "Rotate access keys: create, store as pending, verify, promote, retire the old key.",
        {},
    ),
    "enroll": (
        "keyturn.cli.enroll_cmd:enroll",
        "command",
        "Enroll users for scheduled rotation: their consumers read the store from now on.",
        {},
    ),
    "unenroll": (
        "keyturn.cli.enroll_cmd:unenroll",
        "command",
        "Stop scheduled rotation of users; their keys and store entries stay as they are.",
        {},
    ),
    "creds": (
        "keyturn.cli.lease_cmd:creds",
        "command",
        "Issue credentials under a new lease and print them (secret included: you asked).",
        {},
    ),
    "exec": (
        "keyturn.cli.exec_cmd:exec_command",
        "command",
        "Run COMMAND with leased credentials in its environment; exit with its status.",
        {},
    ),
    "quarantine": (
        "keyturn.cli.quarantine_cmd:quarantine",
        "command",
        "Contain an exposed access key: deactivate it, move its consumers, say what it did.",
        {},
    ),
    "policy": (
        "keyturn.cli.policy_cmd:policy",
        "command",
        "Print a function's IAM policy document as JSON.",
        {},
    ),
    "config": (
        "keyturn.cli.config_cmd:config_app",
        "group",
        "Inspect keyturn's configuration.",
        {},
    ),
    "role": (
        "keyturn.cli.lease_cmd:role_app",
        "group",
        "Define what `keyturn creds ROLE` issues.",
        {},
    ),
    "lease": (
        "keyturn.cli.lease_cmd:lease_app",
        "group",
        "List, renew and revoke issued credentials.",
        {},
    ),
    "broker": (
        "keyturn.cli.broker_cmd:broker_app",
        "group",
        "The lease broker: lease credentials for callers without IAM rights.",
        {},
    ),
}

# The root callback's options as typer labels them (cli/app.py main_options): long name,
# short name, value label, help. `--help` is click's own.
GLOBAL_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--config", "-c", "<path>", "keyturn.toml to read (env KEYTURN_CONFIG)."),
    ("--profile", "", "<str>", "AWS profile (env AWS_PROFILE)."),
    ("--region", "", "<str>", "AWS region."),
    ("--role-arn", "", "<str>", "Assume this IAM role first."),
    ("--endpoint-url", "", "<str>", "AWS endpoint (env AWS_ENDPOINT_URL)."),
    ("--debug", "", "", "Show tracebacks."),
    ("--version", "", "", "Print the version."),
    ("--help", "", "", "Show this message and exit."),
)
