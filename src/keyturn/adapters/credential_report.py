"""The IAM credential report: fetch it in a handful of calls, parse it as a stream.

One GenerateCredentialReport / GetCredentialReport pair covers every user of the account,
which is why a plain audit costs the same few IAM calls for 10 or 100,000 users. The
report names keys by slot (`access_key_1`, `access_key_2`), not by id.
"""

from __future__ import annotations

import binascii
import codecs
import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import ReportError
from keyturn.domain.model import ROOT_USER, AccessKey, KeyStatus, LastUse

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

# Values AWS writes where a field has no data. Any of them means "unknown / none".
MISSING = frozenset({"N/A", "no_information", "not_supported", ""})
REQUIRED_COLUMNS = (
    "user",
    "arn",
    *(f"access_key_{slot}_{part}" for slot in (1, 2) for part in ("active", "last_rotated")),
)
SLOTS = (1, 2)
_CONTENT_OPEN = b"<Content>"
_CONTENT_CLOSE = b"</Content>"
_HOOK_ID = "keyturn-credential-report-content"


def fetch_report(
    iam: IAMClient,
    *,
    max_wait_seconds: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> bytes:
    """Generate (or reuse, AWS keeps one for 4 h) the report and return its CSV bytes.

    IAM: GenerateCredentialReport until COMPLETE (bounded, backing off), then
    GetCredentialReport.
    """
    deadline = monotonic() + max_wait_seconds
    delay = 0.2
    while True:
        with translate("iam:GenerateCredentialReport"):
            state = iam.generate_credential_report().get("State")
        if state == "COMPLETE":
            break
        if monotonic() + delay > deadline:
            raise ReportError(
                f"the IAM credential report was not ready after {max_wait_seconds:.0f}s "
                f"(state {state}); try again, or raise report_wait_seconds"
            )
        sleep(delay)
        delay = min(delay * 2, 5.0)
    events = getattr(getattr(iam, "meta", None), "events", None)  # absent on test doubles
    if events is not None:
        events.register(
            "before-parse.iam.GetCredentialReport", decode_content_early, unique_id=_HOOK_ID
        )
    with translate("iam:GetCredentialReport"):
        response = iam.get_credential_report()
    if response.get("ReportFormat", "text/csv") != "text/csv":
        raise ReportError(f"unexpected credential report format {response.get('ReportFormat')}")
    return response["Content"]


def decode_content_early(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore `before-parse` hook: decode `<Content>` straight from the response bytes.

    Left to botocore, a 100,000-user report (24 MB of CSV, 32 MB of base64) is held as the
    response bytes, then as a 32 MB XML text node, then decoded: ~115 MB at the peak. Here
    the base64 is decoded from a view of the bytes (no copy) and cut out of the body, so
    the XML parser only sees the small envelope; botocore merges `customized_response_dict`
    into its result. Anything unexpected (an error, no `<Content>`) is left to botocore.
    """
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes):
        return
    start = body.find(_CONTENT_OPEN)
    end = body.find(_CONTENT_CLOSE, start)
    if start < 0 or end < 0:
        return
    start += len(_CONTENT_OPEN)
    try:
        content = binascii.a2b_base64(memoryview(body)[start:end])
    except binascii.Error:
        return  # botocore's own parser will raise its usual error
    customized_response_dict["Content"] = content
    response_dict["body"] = body[:start] + body[end:]


def parse_report(content: bytes | Iterable[bytes]) -> Iterator[AccessKey]:
    """Yield one `AccessKey` per key slot in use, reading the CSV row by row.

    Extra columns are ignored (AWS adds some over time); a missing required column or an
    unreadable value raises `ReportError` naming the line and column.
    """
    reader = csv.DictReader(_text_lines(content))
    try:
        header = reader.fieldnames
        if not header:
            raise ReportError("the credential report is empty (no header line)")
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise ReportError(f"the credential report lacks column(s): {', '.join(missing)}")
        for row in reader:
            yield from _keys_of_row(row, reader.line_num)
    except UnicodeDecodeError as exc:
        raise ReportError(f"the credential report is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise ReportError(
            f"credential report line {reader.line_num}: unreadable CSV ({exc})"
        ) from None


def _text_lines(content: bytes | Iterable[bytes]) -> Iterator[str]:
    if isinstance(content, bytes):
        yield from io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")
        return
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    for chunk in content:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _keys_of_row(row: dict[str, str | None], line: int) -> Iterator[AccessKey]:
    user = _text(row, "user", line)
    arn = _text(row, "arn", line)
    account = _account_of(arn, line)
    for slot in SLOTS:
        created = _date(row, f"access_key_{slot}_last_rotated", line)
        if created is None:
            continue
        active = _bool(row, f"access_key_{slot}_active", line)
        used_on = _date(row, f"access_key_{slot}_last_used_date", line)
        last_used = None
        if used_on is not None:
            last_used = LastUse(
                date=used_on,
                service=_optional(row, f"access_key_{slot}_last_used_service"),
                region=_optional(row, f"access_key_{slot}_last_used_region"),
            )
        yield AccessKey(
            account=account,
            user=user,
            slot=slot,
            status=KeyStatus.ACTIVE if active else KeyStatus.INACTIVE,
            created=created,
            last_used=last_used,
        )


def _text(row: dict[str, str | None], column: str, line: int) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise ReportError(f"credential report line {line}: column {column} is empty")
    return value


def _optional(row: dict[str, str | None], column: str) -> str | None:
    value = (row.get(column) or "").strip()
    return None if value in MISSING else value


def _bool(row: dict[str, str | None], column: str, line: int) -> bool:
    value = (row.get(column) or "").strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise ReportError(
        f"credential report line {line}: column {column} should be true or false, got {value!r}"
    )


def _date(row: dict[str, str | None], column: str, line: int) -> datetime | None:
    value = _optional(row, column)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(
            f"credential report line {line}: column {column} is not a date: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise ReportError(f"credential report line {line}: column {column} has no time zone")
    return parsed


def _account_of(arn: str, line: int) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[4].isdigit():
        raise ReportError(f"credential report line {line}: column arn is not an ARN: {arn!r}")
    return parts[4]


def is_root(key: AccessKey) -> bool:
    return key.user == ROOT_USER
