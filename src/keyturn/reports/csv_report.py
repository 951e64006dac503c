"""CSV: a header and exactly one row per key, for spreadsheets and `grep`."""

from __future__ import annotations

import csv
from typing import TextIO

from keyturn.reports.records import COLUMNS, records
from keyturn.services.audit import AuditResult


def write_csv(result: AuditResult, out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in records(result.keys):
        writer.writerow({name: "" if value is None else value for name, value in row.items()})
