"""Settings: precedence, provenance in every error, unknown keys refused, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.config import load_settings
from keyturn.domain.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keyturn.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_source() -> None:
    loaded = load_settings(environ={})
    assert loaded.settings.policy.notify_after_days == 30
    assert loaded.settings.policy.grace_days == 7
    assert loaded.file is None
    assert loaded.origin("policy.notify_after_days") == "default"


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "[policy]\nnotify_after_days = 45\ngrace_days = 10\n")
    loaded = load_settings(path, environ={"NOTIFYKEYAGE": "60"}, flags={"policy.grace_days": 3})
    policy = loaded.settings.policy
    assert (policy.notify_after_days, policy.grace_days) == (60, 3)
    assert loaded.origin("policy.notify_after_days") == "environment NOTIFYKEYAGE"
    assert loaded.origin("policy.grace_days") == "flag --grace-days"


def test_generic_environment_names(tmp_path: Path) -> None:
    loaded = load_settings(
        environ={
            "KEYTURN_POLICY_EXEMPT_GROUPS": "breakglass, admins",
            "KEYTURN_POLICY_EXEMPT_TAGS": "keyturn:exempt=true,owner=sec",
            "KEYTURN_AWS_WORKERS": "4",
            "SOURCEMAIL": "sec@example.com",
        }
    )
    settings = loaded.settings
    assert settings.policy.exempt_groups == ["breakglass", "admins"]
    assert settings.policy.exempt_tags == {"keyturn:exempt": "true", "owner": "sec"}
    assert settings.aws.workers == 4
    assert settings.notify.source_email == "sec@example.com"


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[aws]\nregion = 'eu-west-1'\n")
    loaded = load_settings(environ={"KEYTURN_CONFIG": str(path)})
    assert loaded.settings.aws.region == "eu-west-1"


def test_keyturn_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, "[policy]\ngrace_days = 2\n")  # the autouse fixture chdir'd here
    assert load_settings(environ={}).settings.policy.grace_days == 2


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "[policy]\nnotify_after_days = 'soon'\n",
            ["keyturn.toml", "policy.notify_after_days", "expected an integer", "'soon'"],
        ),
        (
            "[policy]\nnotify_afer_days = 3\n",
            ["keyturn.toml", "unknown key", "policy.notify_afer_days", "notify_after_days"],
        ),
        ("[polcy]\nx = 1\n", ["unknown section [polcy]", "policy"]),
        ("[policy]\ngrace_days = -1\n", ["policy.grace_days", "greater than or equal to 0"]),
        ("[notify]\nsource_email = 'not-an-address'\n", ["notify.source_email"]),
        ("[policy\n", ["not valid TOML"]),
        ("policy = 3\n", ["should be a [policy] table"]),
    ],
)
def test_file_errors_name_file_key_and_type(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


def test_env_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"environment NOTIFYKEYAGE: policy\.notify_after_days"):
        load_settings(environ={"NOTIFYKEYAGE": "thirty"})
    with pytest.raises(ConfigError, match="unknown environment variable KEYTURN_POLICY_GRACE"):
        load_settings(environ={"KEYTURN_POLICY_GRACE": "3"})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_settings(environ={"KEYTURN_POLICY_EXEMPT_TAGS": "novalue"})


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("nowhere.toml", environ={})


def test_a_secret_is_never_echoed_in_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[vault]\ntoken = 12345678\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "12345678" not in str(caught.value)
    assert "vault.token" in str(caught.value)


def test_vault_token_is_a_secret_value() -> None:
    loaded = load_settings(environ={"VAULT_TOKEN": "s.supersecret"})
    token = loaded.settings.vault.token
    assert token is not None
    assert token.get_secret_value() == "s.supersecret"
    assert "supersecret" not in repr(loaded.settings)
    assert "supersecret" not in str(loaded.settings)


def test_rotation_workers_default_to_what_keeps_the_iam_rate_busy() -> None:
    """A worker holds a user ~30 s (propagation, verification, retirement served last) per
    3 IAM calls that start the next: 4 fixed workers starved the limiter. The default grows
    with the rate; an explicit value wins; bounds hold."""
    rotate = load_settings().settings.rotate
    assert rotate.workers is None
    assert rotate.worker_count() == 100  # rate 10/s * 30 s / 3 calls
    assert load_settings(flags={"rotate.rate": 20}).settings.rotate.worker_count() == 200
    assert load_settings(flags={"rotate.rate": 0.1}).settings.rotate.worker_count() == 4
    assert load_settings(flags={"rotate.rate": 1000}).settings.rotate.worker_count() == 512
    chosen = load_settings(flags={"rotate.rate": 20, "rotate.workers": 7}).settings.rotate
    assert chosen.worker_count() == 7
    with pytest.raises(ConfigError, match=r"rotate\.workers"):
        load_settings(flags={"rotate.workers": 513})


# -- a config file is trusted only if it is this user's and only theirs (issue 12 item 12) --


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_file_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, "[policy]\ngrace_days = 2\n")
    path.chmod(mode)
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    message = str(refused.value)
    assert str(path) in message
    assert "refused: writable by" in message
    assert f"chmod go-w {path}" in message
    assert "\n" not in message


def test_a_file_someone_else_owns_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    path = write(tmp_path, "[policy]\ngrace_days = 2\n")
    path.chmod(0o644)
    owner = path.stat().st_uid
    if owner == 0:  # root owns it: as ssh, root's files are trusted; make the file another's
        os.chown(path, 4242, -1)
        owner = 4242
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    with pytest.raises(ConfigError, match=rf"refused: owned by uid {owner}, not by you"):
        load_settings(environ={})  # the working directory's file, picked up implicitly


def test_an_own_file_not_writable_by_others_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "[policy]\ngrace_days = 2\n")
    path.chmod(0o600)
    assert load_settings(path, environ={}).settings.policy.grace_days == 2


SECURITY_TOML = """\
[vault]
addr = "https://vault.attacker.example"
skip_verify = true
[rotate]
path = "stolen/{user}"
kms_key_id = "alias/theirs"
[aws]
endpoint_url = "http://127.0.0.1:9"
region = "eu-west-1"
[policy]
grace_days = 2
"""


def test_an_implicit_file_with_security_settings_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, SECURITY_TOML)
    load_settings(environ={})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("warning: keyturn.toml (read from the current directory")
    for name in (
        "aws.endpoint_url",
        "rotate.kms_key_id",
        "rotate.path",
        "vault.addr",
        "vault.skip_verify",
    ):
        assert name in lines[0]
    assert "policy.grace_days" not in lines[0]
    assert "aws.region" not in lines[0]


def test_a_file_named_explicitly_or_without_security_settings_is_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named = tmp_path / "chosen.toml"
    named.write_text(SECURITY_TOML)
    load_settings(named, environ={})
    load_settings(environ={"KEYTURN_CONFIG": str(named)})
    write(tmp_path, "[policy]\ngrace_days = 2\n")
    load_settings(environ={})
    assert capsys.readouterr().err == ""
