"""The e-mails enforcement sends: one per contact per run, text and HTML, from templates.

The defaults ship in the package (`keyturn/templates/enforce/*.j2`, read with
importlib.resources, so they work from a wheel or a Lambda zip). A user overrides any of
`subject.txt.j2`, `notice.txt.j2`, `notice.html.j2` by putting a file of that name in
`enforce.templates_dir`. Templates run in Jinja's sandbox with undefined names as errors,
and each is rendered once against a sample when the settings are loaded, so a broken
template is a config error before the first key is touched, not a failure halfway through.
The HTML part is autoescaped: user names cannot inject markup. No tag text reaches a mail:
the context holds validated key ids, the IAM user name, dates and keyturn's own words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from keyturn.domain.enforcement import ACCESS_KEY_ID, EMAIL, Action, KeyRecord, Notice, Step
from keyturn.domain.errors import ConfigError

NAMES = ("subject.txt.j2", "notice.txt.j2", "notice.html.j2")


@dataclass(frozen=True, slots=True)
class Mail:
    """One e-mail to one address, listing every key of theirs that needs action."""

    to: str
    subject: str
    text: str
    html: str
    steps: tuple[Step, ...]


def summary_of(step: Step) -> str:
    """What the notice says will happen (or happened) to the key."""
    if step.notice is Notice.WARNING or step.notice is Notice.REMINDER:
        return f"rotate it before {step.deadline}: it will be deactivated on {step.deadline}"
    if step.notice is Notice.DEACTIVATED:
        later = f"; it will be deleted on {step.deadline}" if step.deadline else ""
        return f"deactivated (it no longer works){later}"
    if step.notice is Notice.DELETED:
        return "deleted (it no longer exists)"
    return step.action.value


class Templates:
    def __init__(self, templates: dict[str, Template], source: str) -> None:
        self._templates = templates
        self.source = source

    @classmethod
    def load(cls, directory: str | Path | None = None) -> Templates:
        """The package's templates, each replaced by the file of that name in `directory`."""
        env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        html_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        shipped = resources.files("keyturn.templates").joinpath("enforce")
        chosen = Path(directory) if directory else None
        if chosen is not None and not chosen.is_dir():
            raise ConfigError(f"enforce.templates_dir: {chosen} is not a directory")
        templates: dict[str, Template] = {}
        for name in NAMES:
            override = chosen / name if chosen is not None else None
            if override is not None and override.is_file():
                where = str(override)
                try:
                    text = override.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise ConfigError(f"{where}: cannot read: {exc}") from None
            else:
                where = f"keyturn's default {name}"
                text = shipped.joinpath(name).read_text(encoding="utf-8")
            try:
                templates[name] = (html_env if name.endswith(".html.j2") else env).from_string(text)
            except TemplateError as exc:
                raise ConfigError(f"{where}: not a valid template: {exc}") from None
        loaded = cls(templates, str(chosen) if chosen else "defaults")
        loaded._check()
        return loaded

    def _check(self) -> None:
        """Render every template once against a sample, so errors surface before acting."""
        sample = Step(
            user="alice",
            key_id="AKIAEXAMPLEEXAMPLE00",
            action=Action.NOTIFY,
            reason="31 days old (limit 30)",
            record=KeyRecord(),
            age_days=31,
            notice=Notice.WARNING,
            deadline=date(2026, 1, 8),
            recipients=("alice@example.com",),
        )
        for name in NAMES:
            try:
                self._render(name, self._context("alice@example.com", [sample], "", date.today()))
            except TemplateError as exc:
                raise ConfigError(f"template {name} ({self.source}): {exc}") from None

    def compose(self, to: str, steps: Sequence[Step], sender: str, today: date) -> Mail:
        """The mail to `to`. Refuses (ValueError) anything the planner should have dropped:
        a mail carries validated key ids and one plain address, never a tag's free text."""
        if not EMAIL.match(to) or not all(ACCESS_KEY_ID.match(step.key_id) for step in steps):
            raise ValueError("refusing to mail: an address or key id was not validated")
        context = self._context(to, steps, sender, today)
        subject = " ".join(self._render("subject.txt.j2", context).split())
        return Mail(
            to=to,
            subject=subject,
            text=self._render("notice.txt.j2", context),
            html=self._render("notice.html.j2", context),
            steps=tuple(steps),
        )

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return self._templates[name].render(**context)

    @staticmethod
    def _context(to: str, steps: Sequence[Step], sender: str, today: date) -> dict[str, Any]:
        items = [
            {
                "user": step.user,
                "key_id": step.key_id,
                "age_days": step.age_days,
                "notice": step.notice.value if step.notice else step.action.value,
                "deadline": step.deadline.isoformat() if step.deadline else None,
                "reason": step.reason,
                "summary": summary_of(step),
            }
            for step in steps
        ]
        deadlines = [
            step.deadline
            for step in steps
            if step.deadline and step.notice in (Notice.WARNING, Notice.REMINDER)
        ]
        return {
            "recipient": to,
            "sender": sender,
            "today": today.isoformat(),
            "items": items,
            "earliest_deadline": min(deadlines).isoformat() if deadlines else None,
        }
