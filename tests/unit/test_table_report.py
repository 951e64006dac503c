"""The terminal table: identifiers whole at any width, one line per key, markup shown as text."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from keyturn.reports.table import table_console, write_table
from keyturn.services.audit import AuditResult
from tests.unit.test_html_report import NOW, POLICY, key, sample

# IAM allows 64 characters: letters, digits and +=,.@_-
LONG_USER = "svc-payments-settlement-reconciliation-batch-worker-eu-west-1@ab"
LONG_CONTACT = "payments-settlement-oncall-rotation@platform-engineering.example.com"


def long_names() -> AuditResult:
    keys = [
        key(LONG_USER, 45, contact=LONG_CONTACT),
        key("carol", 40, contact="carol@example.com"),
        key("bob", 3),
    ]
    return AuditResult(
        generated_at=NOW, policy=POLICY, source="credential-report", keys=keys, warnings=[]
    )


def render(result: AuditResult, console: Console) -> str:
    write_table(result, console)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_piped_output_keeps_every_identifier_whole_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Piped, rich would wrap at 80 columns and cut names with `…` (issue 13, item 11)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    result = long_names()
    text = render(result, table_console(io.StringIO(), terminal=False))
    assert "…" not in text
    for item in result.keys:
        lines = [line for line in text.splitlines() if item.key.user in line]
        assert len(lines) == 1, text  # whole, and the row is one line
        assert item.decision.reason in lines[0]  # the why column is there too
    assert LONG_CONTACT in text


@pytest.mark.parametrize("width", [80, 100, 120])
def test_a_narrow_terminal_folds_identifiers_but_never_cuts_them(width: int) -> None:
    text = render(long_names(), Console(file=io.StringIO(), width=width))
    assert "…" not in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("user"))
    end = lines[header].index("#") - 1  # the user column is first: read it top to bottom
    column = "".join(line[:end].strip() for line in lines[header + 2 :])
    assert LONG_USER in column


def test_at_120_columns_each_key_is_one_line() -> None:
    """The why column used to wrap every row to three lines at 120 columns."""
    result = sample()
    text = render(result, Console(file=io.StringIO(), width=120))
    ages = [line for line in text.splitlines() if re.search(r"\s\d+d\s", line)]
    assert len(ages) == len(result.keys)
    plain_rows = [line for line in ages if "script" not in line]
    assert all(len(line.rstrip()) <= 120 for line in plain_rows)
    # Every plain row is followed directly by the next row, never by a continuation line.
    lines = text.splitlines()
    for line in plain_rows:
        following = lines[lines.index(line) + 1]
        assert re.search(r"\s\d+d\s", following) or not following.strip(), following


def test_the_why_column_is_shown_when_it_fits() -> None:
    result = sample()
    text = render(result, Console(file=io.StringIO(), width=200))
    assert "why" in text
    assert "32d old (notify at 30d)" in text
    assert "left out" not in text


@pytest.mark.parametrize(
    "hostile",
    ["[red]x[/red]", "[link=https://evil.example]click[/link]", "[bold]boss[/]", ":smile:"],
)
def test_markup_in_names_and_tags_is_shown_literally(hostile: str) -> None:
    """A user name or Contact tag is anyone-with-iam:TagUser's text, never rich markup."""
    keys = [key("carol", 40, contact=hostile), key("bob", 45, contact="a@example.com")]
    result = AuditResult(
        generated_at=NOW, policy=POLICY, source="credential-report", keys=keys, warnings=[]
    )
    console = Console(file=io.StringIO(), width=300, force_terminal=True, color_system=None)
    text = render(result, console)
    assert hostile in text
    assert "\x1b]8;" not in text  # no OSC 8 hyperlink


def test_markup_in_a_user_name_is_shown_literally() -> None:
    # IAM names cannot hold brackets; a forged credential report or --user argument can.
    hostile = "[link=https://evil.example]alice[/link]"
    result = AuditResult(
        generated_at=NOW,
        policy=POLICY,
        source="credential-report",
        keys=[key(hostile, 40)],
        warnings=[],
    )
    console = Console(file=io.StringIO(), width=300, force_terminal=True, color_system=None)
    assert hostile in render(result, console)
