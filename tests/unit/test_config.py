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
