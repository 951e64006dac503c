"""The terminal table: the findings that need action first, coloured by urgency.

Two rules for every table keyturn prints. Identifiers (account ids, user names, key ids,
addresses, ARNs) are never cut: a narrow terminal folds them onto a second line, and piped
output is as wide as its content, so a script or a log never sees `policy.notify_after_da…`.
And every value is a `Text`, never a markup string: user names, tags and reasons come from
IAM, where anyone with `iam:TagUser` can write `[red]x[/red]` or `[link=...]`, and rich
would otherwise render them as markup.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from keyturn.domain.model import AuditedKey, Finding
from keyturn.services.audit import AuditResult

STYLES = {
    Finding.OK: "green",
    Finding.EXEMPT: "cyan",
    Finding.NOTIFY: "yellow",
    Finding.UNUSED: "magenta",
    Finding.DEACTIVATE: "bold red",
    Finding.DELETE: "bold red",
}
URGENCY = {finding: rank for rank, finding in enumerate(Finding)}
# Piped without COLUMNS: wide enough that no table wraps or cuts; rich pads nothing, so each
# line is only as long as its content.
PIPED_WIDTH = 4096


def table_console(file: TextIO | None = None, *, terminal: bool | None = None) -> Console:
    """A console for tables: the terminal's own width on a terminal; piped, `COLUMNS` if set,
    else wide enough for every row on one line (rich's default would be 80 columns).

    `terminal` says whether the real stdout is one, for output rendered into a buffer first.
    """
    if terminal is None:
        terminal = sys.stdout.isatty()
    width = None if terminal or os.environ.get("COLUMNS") else PIPED_WIDTH
    return Console(
        file=file, force_terminal=True if terminal else None, width=width, highlight=False
    )


def plain(value: object) -> Text:
    """A cell shown exactly as written: no markup, no emoji codes, no highlighting."""
    return Text("" if value is None else str(value))


def _sort_key(item: AuditedKey) -> tuple[int, int, str]:
    return (-URGENCY[item.finding], -item.age_days, item.key.user)


def write_table(result: AuditResult, console: Console) -> None:
    """The table, with the "why" column only where it fits on one line per key."""
    table = _build(result, console, why=True)
    # Measured as if the console had no edge: the width every cell needs on one line.
    natural = Measurement.get(console, console.options.update_width(PIPED_WIDTH), table)
    shown_why = natural.maximum <= console.width
    if not shown_why:
        table = _build(result, console, why=False)
    console.print(table)
    if not shown_why and result.keys:
        hint = "(the why column is left out to fit: widen the terminal, or use --format json)"
        console.print(Text(hint, style="dim"), soft_wrap=True)
    counts = result.counts()
    parts = [
        Text(f"{counts[finding]} {finding.value}", style=STYLES[finding])
        for finding in reversed(Finding)
        if counts[finding]
    ]
    noun = "key" if len(result.keys) == 1 else "keys"
    line = Text(f"{len(result.keys)} {noun}: ").append(Text(", ").join(parts))
    policy = result.policy
    line.append(
        f"   policy: notify at {policy.notify_after_days}d, "
        f"deactivate at {policy.deactivate_after_days}d",
        style="dim",
    )
    console.print(line)
    for user, waiting in result.waiting.items():
        console.print(Text(f"rotation of {user}: {waiting}", style="cyan"), soft_wrap=True)
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))


def _build(result: AuditResult, console: Console, *, why: bool) -> Table:
    show_ids = any(item.key.key_id for item in result.keys)
    show_contacts = any(item.key.contact for item in result.keys)
    accounts = {item.key.account for item in result.keys}
    # Under 120 columns: shorten the status and drop the last use's service.
    wide = console.width >= 120
    table = Table(
        title=plain(f"Access keys ({len(result.keys)}) from the {result.source}"),
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    if len(accounts) > 1:
        table.add_column("account", no_wrap=True, min_width=12)
    table.add_column("user", overflow="fold", min_width=8)
    table.add_column("#", justify="right", no_wrap=True)
    if show_ids:
        table.add_column("key id", overflow="fold", min_width=10)
    table.add_column("status" if wide else "on", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True, min_width=5)
    table.add_column("last used", no_wrap=True)
    if show_contacts:
        table.add_column("contact", overflow="fold", min_width=8)
    table.add_column("finding", no_wrap=True)
    if why:
        table.add_column("why", no_wrap=True)
    for item in sorted(result.keys, key=_sort_key):
        key = item.key
        used = key.last_used
        last = "never" if used is None else used.date.date().isoformat()
        if used is not None and used.service and wide:
            last += f" {used.service}"
        status = key.status.value if wide else ("yes" if key.active else "no")
        cells: list[Text] = []
        if len(accounts) > 1:
            cells.append(plain(key.account))
        cells += [plain(key.user), plain(key.slot)]
        if show_ids:
            cells.append(plain(key.key_id or "?"))
        cells += [
            Text(status, style="" if key.active else "dim"),
            plain(f"{item.age_days}d"),
            plain(last),
        ]
        if show_contacts:
            cells.append(plain(key.contact) if key.contact else Text("none", style="dim"))
        cells.append(Text(item.finding.value, style=STYLES[item.finding]))
        if why:
            cells.append(plain(item.decision.reason))
        table.add_row(*cells)
    return table
