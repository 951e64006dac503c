"""[enforce] settings: file, environment, validation before anything runs; CLI exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.cli import enforce_cmd, exit_codes
from keyturn.cli.main import main
from keyturn.config import load_settings
from keyturn.domain.errors import ConfigError
from keyturn.services.enforce import EnforceService, ListSink, MailOptions, resolve_config
from tests.enforce_seals import MemoryKey
from tests.unit.test_enforce_service import FakeIam, FakeSes, FixedClock


def test_enforce_section_from_file_and_environment(tmp_path: Path) -> None:
    file = tmp_path / "keyturn.toml"
    file.write_text(
        "[policy]\ngrace_days = 10\n[notify]\nsource_email = 'keys@example.com'\n"
        "[enforce]\nremind_every_days = 3\nrecipient_verification = 'always'\n",
        encoding="utf-8",
    )
    loaded = load_settings(file, environ={"KEYTURN_ENFORCE_DRY_RUN": "false"})
    config = resolve_config(loaded.settings)
    assert config.rules.policy.grace_days == 10
    assert config.rules.remind_every_days == 3
    assert config.mail.recipient_verification == "always"
    assert config.dry_run is False
    assert loaded.origin("enforce.dry_run") == "environment KEYTURN_ENFORCE_DRY_RUN"


def test_dry_run_is_the_default() -> None:
    loaded = load_settings(environ={"SOURCEMAIL": "keys@example.com"})
    assert resolve_config(loaded.settings).dry_run is True


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"SOURCEMAIL": "k@example.com", "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "x"}, "auto"),
        ({"KEYTURN_ENFORCE_MAX_RECIPIENTS": "0"}, "max_recipients"),
        ({"KEYTURN_ENFORCE_DRY_RUN": "false"}, "SOURCEMAIL"),
        ({"SOURCEMAIL": "k@example.com", "KEYTURN_ENFORCE_NOPE": "1"}, "KEYTURN_ENFORCE_NOPE"),
        ({"SOURCEMAIL": "k@example.com", "KEYTURN_ENFORCE_TEMPLATES_DIR": "/nope"}, "templates"),
    ],
)
def test_bad_enforce_settings_are_config_errors(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        resolve_config(load_settings(environ=environ).settings)


def test_a_dry_run_needs_no_sender() -> None:
    config = resolve_config(load_settings(environ={}).settings)
    assert config.dry_run is True
    assert config.mail.source_email is None
    assert config.rules.max_recipients == 2
    assert config.mail.max_verifications == 30


def test_notices_off_needs_no_sender() -> None:
    loaded = load_settings(environ={"KEYTURN_ENFORCE_NOTIFY": "false"})
    assert resolve_config(loaded.settings).templates is None


def test_a_partial_failure_exits_1_with_a_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    iam = FakeIam()
    iam.add("alice", "AKIA0000000000000001", 31, "alice@example.com")
    iam.add("bob", "AKIA0000000000000002", 31, "bob@example.com")
    ses = FakeSes({"keys@example.com": "Success"})
    ses.reject.add("bob@example.com")

    def fake_build(settings, config, events, **_: object) -> EnforceService:  # type: ignore[no-untyped-def]
        return EnforceService(
            iam,
            iam,
            ses,
            FixedClock(),
            config.rules,
            config.templates,
            MailOptions("keys@example.com", recipient_verification="never"),
            events or ListSink(),
            authenticator=MemoryKey(),
        )

    monkeypatch.setattr(enforce_cmd, "build_enforce", fake_build)
    monkeypatch.setenv("SOURCEMAIL", "keys@example.com")
    assert main(["enforce", "--apply"]) == exit_codes.FAILED
    err = capsys.readouterr().err
    assert "1 step(s) failed" in err
    assert "bob@example.com" in err
    assert ses.sent == ["alice@example.com"]
