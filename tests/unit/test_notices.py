"""The notice templates: defaults from the package, overrides, escaping, early errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from keyturn.domain.enforcement import Action, KeyRecord, Notice, Step
from keyturn.domain.errors import ConfigError
from keyturn.notices import Templates


def step(user: str = "alice", notice: Notice = Notice.WARNING) -> Step:
    return Step(
        user=user,
        key_id="AKIAAAAAAAAAAAAAAAAA",
        action=Action.NOTIFY,
        reason="31 days old (limit 30)",
        record=KeyRecord(),
        age_days=31,
        notice=notice,
        deadline=date(2026, 3, 17),
        recipients=("alice@example.com",),
    )


def test_default_mail_names_key_age_deadline_and_how_to_rotate() -> None:
    mail = Templates.load().compose("alice@example.com", [step()], "keys@example.com", date.today())
    for part in (mail.text, mail.html):
        assert "AKIAAAAAAAAAAAAAAAAA" in part
        assert "2026-03-17" in part
        assert "keyturn rotate" in part
    assert mail.subject == "[keyturn] 1 AWS access key to rotate by 2026-03-17"
    deactivated = Templates.load().compose(
        "a@example.com", [step(notice=Notice.DEACTIVATED)], "k@example.com", date.today()
    )
    assert "deactivated" in deactivated.subject


def test_html_part_escapes_names() -> None:
    mail = Templates.load().compose(
        "a@example.com", [step("<b>x</b>")], "k@example.com", date.today()
    )
    assert "<b>x</b>" not in mail.html
    assert "&lt;b&gt;x&lt;/b&gt;" in mail.html
    assert "<b>x</b>" in mail.text


def test_a_user_template_overrides_only_its_own_part(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text("Keys: {{ items | length }}", encoding="utf-8")
    mail = Templates.load(tmp_path).compose(
        "a@example.com", [step()], "k@example.com", date.today()
    )
    assert mail.subject == "Keys: 1"
    assert "keyturn rotate" in mail.text


@pytest.mark.parametrize("body", ["{% for x in %}", "{{ no_such_name }}"])
def test_a_broken_template_is_a_config_error_at_load(tmp_path: Path, body: str) -> None:
    (tmp_path / "notice.txt.j2").write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notice\.txt\.j2"):
        Templates.load(tmp_path)


def test_a_missing_templates_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        Templates.load(tmp_path / "nope")
