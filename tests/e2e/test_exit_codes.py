"""One exit-code contract across commands (cli/exit_codes.py; issue 13 item 7).

Per command, as a user meets them: an unknown user, access denied, an unreachable endpoint
and a bad flag; Ctrl-C is covered in test_no_silent_hang.py and test_rotate_cli.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keyturn.cli import exit_codes
from tests.conftest import run_cli
from tests.e2e.conftest import assert_one_clean_error
from tests.rotate_fixtures import AuthedAws, secretsmanager_cli_env

COMMANDS = {
    "audit": ("audit", "--format", "json"),
    "enforce": ("enforce", "--json"),
    "rotate": ("rotate", "alice"),
}


@pytest.fixture
def env(authed: AuthedAws) -> dict[str, str]:
    merged = secretsmanager_cli_env(authed, SOURCEMAIL="keys@example.com")
    return merged


@pytest.mark.parametrize("args", [("audit", "--user", "nobody"), ("rotate", "nobody")])
def test_an_unknown_user_is_4_and_one_line(
    authed: AuthedAws, env: dict[str, str], args: tuple[str, ...]
) -> None:
    line = assert_one_clean_error(run_cli(env, *args), exit_codes.ACCESS)
    assert line == "error: no such IAM user: nobody"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_access_denied_is_4_and_one_line(
    authed: AuthedAws, env: dict[str, str], command: str
) -> None:
    authed.seed_user("alice")
    (weak,) = authed.seed_user("weak")  # a key with no policy at all
    denied = {**env, "AWS_ACCESS_KEY_ID": weak.key_id, "AWS_SECRET_ACCESS_KEY": weak.secret}
    result = run_cli(denied, *COMMANDS[command])
    assert result.returncode == exit_codes.ACCESS, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "AccessDenied" in result.stderr or "refused" in result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unreachable_endpoint_is_4_and_one_line(env: dict[str, str], command: str) -> None:
    # Nothing listens on port 1. Two attempts, not the default eight: the retry is still
    # made, without 5-15 s of back-off before the same error.
    with_port_1 = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "KEYTURN_AWS_MAX_ATTEMPTS": "2"}
    line = assert_one_clean_error(run_cli(with_port_1, *COMMANDS[command]), exit_codes.ACCESS)
    assert "127.0.0.1:1" in line


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "--bogus"),
        ("enforce", "--bogus"),
        ("rotate", "alice", "--bogus"),
        ("policy", "rotate", "--bogus"),
        ("lease", "list", "--bogus"),
        ("creds", "--bogus"),
        ("config", "show", "--bogus"),
        ("audit", "--format", "xml"),
        ("--bogus", "audit"),
    ],
)
def test_a_bad_flag_is_one_error_line_not_a_box(args: tuple[str, ...]) -> None:
    line = assert_one_clean_error(run_cli(dict(os.environ), *args), exit_codes.BAD_INPUT)
    assert line.startswith("error: ")
    assert "--help" in line


def test_config_that_is_a_directory_says_so(tmp_path: Path) -> None:
    result = run_cli(dict(os.environ), "-c", str(tmp_path), "audit")
    line = assert_one_clean_error(result, exit_codes.BAD_INPUT)
    assert "is a directory" in line


def test_policy_refuses_a_short_account_id() -> None:
    line = assert_one_clean_error(
        run_cli(dict(os.environ), "policy", "rotate", "--account", "12345"), exit_codes.BAD_INPUT
    )
    assert "12-digit" in line


def test_an_output_extension_that_names_no_format_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    line = assert_one_clean_error(
        run_cli(dict(os.environ), "audit", "-o", str(target)), exit_codes.BAD_INPUT
    )
    assert "--format" in line
    assert not target.exists()


def test_policy_rotate_covers_the_default_path() -> None:
    """`rotate` writes under aws/{account}/{user} by default: the policy must allow it."""
    import json

    result = run_cli(dict(os.environ), "policy", "rotate", "--format", "json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["schema"] == "keyturn.policy/v1"
    secrets = next(s for s in shown["policy"]["Statement"] if s["Sid"] == "Secrets")
    assert secrets["Resource"].endswith(":secret:aws/*")
    custom = run_cli({**os.environ, "KEYTURN_ROTATE_PATH": "team/{user}"}, "policy", "rotate")
    assert ":secret:team/*" in custom.stdout


def test_rotate_without_vault_says_what_is_missing(env: dict[str, str]) -> None:
    no_store = {k: v for k, v in env.items() if not k.startswith(("KEYTURN_ROTATE", "VAULT_"))}
    line = assert_one_clean_error(
        run_cli(no_store, "rotate", "alice", "--dry-run"), exit_codes.BAD_INPUT
    )
    assert "VAULT_ADDR" in line
    assert "--store secretsmanager" in line


@pytest.mark.parametrize("command", [["audit"], ["enforce"], ["rotate"], ["lease", "list"]])
def test_help_labels_no_flag_as_bool_and_no_option_as_a_python_list(command: list[str]) -> None:
    """Issue 13: a flag takes no value and a repeatable option one value each time."""
    import subprocess
    import sys
    from pathlib import Path

    keyturn = str(Path(sys.executable).with_name("keyturn"))
    shown = subprocess.run(
        [keyturn, *command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert "<bool>" not in shown.stdout
    assert "<list[" not in shown.stdout
    assert "--help" in shown.stdout
