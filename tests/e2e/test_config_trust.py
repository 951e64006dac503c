"""A config file is a claim unless it is the user's own (issue 12 item 12): refused, in one
line and exit 2, when others may write it or someone else owns it, as ssh refuses its config;
security settings from a file nobody named are said on stderr. (The owner check is proven in
tests/unit/test_config.py: giving a file to another user needs root, and the interpreter a
non-root uid could run may not be readable to it.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.sandbox.aws import LocalAws
from tests.e2e.conftest import Run, assert_one_clean_error


@pytest.fixture
def account(aws: LocalAws) -> LocalAws:
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    aws.add_key("alice", age_days=3)
    return aws


def test_a_group_writable_keyturn_toml_is_refused(
    keyturn: Run, account: LocalAws, tmp_path: Path
) -> None:
    config = tmp_path / "keyturn.toml"
    config.write_text("[policy]\ngrace_days = 2\n")
    config.chmod(0o664)
    line = assert_one_clean_error(keyturn("audit"), 2)
    assert "keyturn.toml: refused: writable by its group (mode 0664)" in line


def test_a_world_writable_named_config_is_refused(
    keyturn: Run, account: LocalAws, tmp_path: Path
) -> None:
    config = tmp_path / "shared.toml"
    config.write_text("[policy]\ngrace_days = 2\n")
    config.chmod(0o666)
    line = assert_one_clean_error(keyturn("--config", str(config), "audit"), 2)
    assert f"{config}: refused: writable by its group and others" in line


def test_security_settings_from_the_working_directory_are_named(
    keyturn: Run, account: LocalAws, tmp_path: Path
) -> None:
    (tmp_path / "keyturn.toml").write_text(
        '[rotate]\nstore = "secretsmanager"\npath = "theirs/{user}"\n[policy]\ngrace_days = 2\n'
    )
    result = keyturn("audit", "--format", "json")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, result.stderr
    assert "sets security-relevant settings: rotate.path, rotate.store" in warning[0]
