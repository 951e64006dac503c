"""JSON: one object with the policy, one entry per key, then the summary and warnings.

Written as the keys stream in, so 100,000 users never sit in memory at once: that is why
`summary` and `warnings` come after `keys` (both are known only once every key has been
seen). Each key is written on a line of its own with the C encoder: `indent=` would switch
json to its pure-Python encoder, a quarter of the whole run's time at 5,000 users, and one
key per line stays readable and friendly to grep.
"""

from __future__ import annotations

import json
from typing import TextIO

from keyturn.reports.records import AuditReport, Tally, iso, policy_record, records


def write_json(report: AuditReport, out: TextIO) -> Tally:
    """Write the document; return the tally of findings (for --check)."""
    head = {
        "generated_at": iso(report.generated_at),
        "source": report.source,
        "policy": policy_record(report.policy),
    }
    out.write("{\n")
    for name, value in head.items():
        out.write(f"  {json.dumps(name)}: {json.dumps(value)},\n")
    out.write('  "keys": [')
    tally = Tally()
    separator = "\n    "
    dumps = json.dumps
    for row in records(tally.count(report.keys)):
        out.write(separator)
        out.write(dumps(row))
        separator = ",\n    "
    out.write("\n  ],\n" if tally.total else "],\n")
    out.write(f'  "summary": {json.dumps(tally.summary())},\n')
    waiting = dict(getattr(report, "waiting", {}))
    if waiting:  # retire = "when-quiet" only: user -> the rotation's waiting line
        out.write(f'  "rotation_waiting": {json.dumps(waiting)},\n')
    out.write(f'  "warnings": {json.dumps(list(report.warnings))}\n}}\n')
    return tally
