"""JSON: one object with the policy, a summary and one entry per key."""

from __future__ import annotations

import json
from typing import TextIO

from keyturn.reports.records import iso, policy_record, records, summary
from keyturn.services.audit import AuditResult


def write_json(result: AuditResult, out: TextIO) -> None:
    document = {
        "generated_at": iso(result.generated_at),
        "source": result.source,
        "policy": policy_record(result.policy),
        "summary": summary(result.keys),
        "warnings": result.warnings,
        "keys": list(records(result.keys)),
    }
    json.dump(document, out, indent=2)
    out.write("\n")
