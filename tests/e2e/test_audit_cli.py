"""`keyturn audit` end to end against moto's server, as a user types it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.vault import free_port
from tests.e2e.conftest import Run, assert_one_clean_error


@pytest.fixture
def account(aws: LocalAws) -> LocalAws:
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    aws.add_key("alice", age_days=45)
    aws.add_key("alice", age_days=2, last_used_days_ago=1)
    aws.create_user("bob")
    aws.add_key("bob", age_days=31)
    aws.create_user("carol", tags={"keyturn:exempt": "true"})
    aws.add_key("carol", age_days=90)
    aws.create_user("dave")
    return aws


def test_json_lists_every_key_with_findings(keyturn: Run, account: LocalAws) -> None:
    result = keyturn("audit", "--format", "json", "--key-ids", "--contacts")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    keys = document["keys"]
    assert len(keys) == 4
    assert len({k["key_id"] for k in keys}) == 4
    findings = {(k["user"], k["slot"]): k["finding"] for k in keys}
    assert findings == {
        ("alice", 1): "deactivate",
        ("alice", 2): "ok",
        ("bob", 1): "notify",
        ("carol", 1): "deactivate",
    }
    assert document["summary"]["keys"] == 4
    assert document["policy"]["notify_after_days"] == 30
    assert {k["contact"] for k in keys if k["user"] == "alice"} == {"alice@example.com"}


def test_exemption_from_environment(keyturn: Run, account: LocalAws) -> None:
    result = keyturn(
        "audit", "--format", "json", env={"KEYTURN_POLICY_EXEMPT_TAGS": "keyturn:exempt=true"}
    )
    carol = [k for k in json.loads(result.stdout)["keys"] if k["user"] == "carol"]
    assert [k["finding"] for k in carol] == ["exempt"]


def test_csv_has_one_row_per_key(keyturn: Run, account: LocalAws, tmp_path: Path) -> None:
    target = tmp_path / "keys.csv"
    result = keyturn("audit", "--format", "csv", "--output", str(target))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 4
    assert {row["finding"] for row in rows} == {"deactivate", "ok", "notify"}


def test_table_is_readable_text(keyturn: Run, account: LocalAws) -> None:
    result = keyturn("audit", "--format", "table", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "alice" in result.stdout
    assert "deactivate" in result.stdout
    assert "4 keys" in result.stdout


def test_policy_flags_override(keyturn: Run, account: LocalAws) -> None:
    result = keyturn("audit", "--format", "json", "--notify-after", "100", "--grace", "1")
    assert {k["finding"] for k in json.loads(result.stdout)["keys"]} == {"ok"}


def test_check_exits_3_when_out_of_policy(keyturn: Run, account: LocalAws) -> None:
    result = keyturn("audit", "--check", "--format", "json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["summary"]["deactivate"] == 2


def test_check_exits_3_with_a_streamed_csv_file(
    keyturn: Run, account: LocalAws, tmp_path: Path
) -> None:
    target = tmp_path / "keys.csv"
    result = keyturn("audit", "--check", "--format", "csv", "--output", str(target))
    assert result.returncode == 3, result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 4
    assert sorted(row["finding"] for row in rows) == ["deactivate", "deactivate", "notify", "ok"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_check_exits_0_when_all_in_policy(keyturn: Run, aws: LocalAws) -> None:
    aws.create_user("fresh")
    aws.add_key("fresh", age_days=3)
    assert keyturn("audit", "--check", "--format", "json").returncode == 0


def test_named_user_is_read_directly(keyturn: Run, account: LocalAws) -> None:
    result = keyturn("audit", "--user", "bob", "--format", "json")
    keys = json.loads(result.stdout)["keys"]
    assert [(k["user"], k["finding"]) for k in keys] == [("bob", "notify")]
    assert keys[0]["key_id"].startswith("AKIA")


def test_unknown_user(keyturn: Run, account: LocalAws) -> None:
    line = assert_one_clean_error(keyturn("audit", "--user", "zed", "--format", "json"), 4)
    assert "no such IAM user: zed" in line


def test_malformed_config_names_file_key_and_type(
    keyturn: Run, account: LocalAws, tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[policy]\nnotify_after_days = 'thirty'\n")
    line = assert_one_clean_error(keyturn("--config", str(config), "audit"), 2)
    assert str(config) in line
    assert "policy.notify_after_days" in line
    assert "expected an integer" in line


def test_unknown_config_key(keyturn: Run, account: LocalAws, tmp_path: Path) -> None:
    (tmp_path / "keyturn.toml").write_text("[policy]\nnotify_days = 3\n")
    line = assert_one_clean_error(keyturn("audit"), 2)
    assert "unknown key policy.notify_days" in line


def test_bad_flag_value(keyturn: Run, account: LocalAws) -> None:
    result = keyturn("audit", "--grace", "-5")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_no_credentials(keyturn: Run, account: LocalAws) -> None:
    result = keyturn("audit", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    line = assert_one_clean_error(result, 4)
    assert "no AWS credentials" in line


def test_unreachable_endpoint(keyturn: Run) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = keyturn(
        "audit",
        env={
            "AWS_ENDPOINT_URL": closed,
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE000000000",
            "AWS_SECRET_ACCESS_KEY": "x",
            "KEYTURN_AWS_MAX_ATTEMPTS": "2",
        },
    )
    line = assert_one_clean_error(result, 4)
    assert "cannot reach" in line
    assert closed in line


def test_access_denied(keyturn: Run, account: LocalAws) -> None:
    account.create_user("auditor")
    key = account.add_key("auditor")
    account.set_authentication(True)
    try:
        result = keyturn(
            "audit",
            env={"AWS_ACCESS_KEY_ID": key.key_id, "AWS_SECRET_ACCESS_KEY": key.secret},
        )
    finally:
        account.set_authentication(False)
    line = assert_one_clean_error(result, 4)
    assert "AWS refused iam:GenerateCredentialReport" in line
    assert key.secret not in result.stderr


def test_unwritable_output(keyturn: Run, account: LocalAws, tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "r.json"
    line = assert_one_clean_error(keyturn("audit", "--format", "json", "-o", str(target)), 2)
    assert "does not exist" in line


def test_config_show_masks_secrets(keyturn: Run, tmp_path: Path) -> None:
    result = keyturn("config", "show", "--json", env={"VAULT_TOKEN": "s.topsecret-token"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["vault.token"] == "***"
    assert "topsecret" not in result.stdout
    assert shown["policy.notify_after_days"] == 30


def test_version_and_help(keyturn: Run) -> None:
    assert keyturn("--version").stdout.startswith("keyturn ")
    assert "audit" in keyturn("--help").stdout


def test_unknown_profile(keyturn: Run, account: LocalAws) -> None:
    line = assert_one_clean_error(keyturn("--profile", "nope", "audit"), 2)
    assert "AWS profile 'nope'" in line


def test_profile_from_aws_config(keyturn: Run, account: LocalAws, tmp_path: Path) -> None:
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile auditor]\naws_access_key_id = AKIAPROFILE000000000\n"
        "aws_secret_access_key = from-profile\nregion = eu-west-1\n"
    )
    result = keyturn(
        "--profile",
        "auditor",
        "audit",
        "--format",
        "json",
        env={"AWS_CONFIG_FILE": str(config), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["keys"]) == 4


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "--bogus"],
        ["audit", "--format", "xml"],
        ["audit", "--notify-after", "abc"],
        ["nosuch"],
        [],
    ],
)
def test_usage_errors_exit_2_without_traceback(keyturn: Run, args: list[str]) -> None:
    result = keyturn(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


def test_flag_errors_name_the_flag_typed(keyturn: Run, account: LocalAws) -> None:
    line = assert_one_clean_error(keyturn("audit", "--notify-after", "0"), 2)
    assert "flag --notify-after:" in line


def test_bad_output_fails_before_any_aws_call(keyturn: Run, tmp_path: Path) -> None:
    # no server is reachable here: the output check must come first
    line = assert_one_clean_error(
        keyturn(
            "audit",
            "-o",
            str(tmp_path / "nowhere" / "r.json"),
            env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        ),
        2,
    )
    assert "does not exist" in line


def test_config_show_names_what_boto3_reads(keyturn: Run) -> None:
    result = keyturn("config", "show", "--json", env={"AWS_REGION": "eu-central-1"})
    assert json.loads(result.stdout)["aws.region"] == "eu-central-1"
