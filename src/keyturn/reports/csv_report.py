"""CSV: a header and exactly one row per key, for spreadsheets and `grep`.

Written as the keys stream in; the tally it returns lets `--check` decide without a list.

Cells are neutralised against CSV injection (OWASP "CSV Injection"): a user name, a
`Contact` tag or a last-used service is text that other principals write, and a
spreadsheet evaluates a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage
return as a formula (`=HYPERLINK(...)`, DDE). Such a text cell gets a leading `'`, which
spreadsheets read as "this is text" and hide. Numbers (ages) are written as numbers.

A carriage return inside a cell becomes a line feed: Python's csv module quotes a cell only
for the characters of its line terminator (`\n` here), so a bare CR would be written
unquoted and split the key's row in two for every reader that takes CR as a line end.
"""

from __future__ import annotations

import csv
from typing import Any, TextIO

from keyturn.reports.records import COLUMNS, AuditReport, Tally, records

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A value as a spreadsheet may safely read it: None is empty, formulas become text."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


def write_csv(report: AuditReport, out: TextIO) -> Tally:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    tally = Tally()
    for row in records(tally.count(report.keys)):
        writer.writerow([cell(value) for value in row.values()])
    return tally
