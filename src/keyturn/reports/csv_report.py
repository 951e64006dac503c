"""CSV: a header and exactly one row per key, for spreadsheets and `grep`.

Written as the keys stream in; the tally it returns lets `--check` decide without a list.
"""

from __future__ import annotations

import csv
from typing import TextIO

from keyturn.reports.records import COLUMNS, AuditReport, Tally, records


def write_csv(report: AuditReport, out: TextIO) -> Tally:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    tally = Tally()
    for row in records(tally.count(report.keys)):
        writer.writerow(["" if value is None else value for value in row.values()])
    return tally
