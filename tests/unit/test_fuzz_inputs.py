"""Untrusted input never escapes as an unexpected exception (invariant 7).

Whatever the bytes of a config file, an environment, or a credential report, keyturn either
accepts them or raises its own error with one line of text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyturn.adapters.credential_report import parse_report
from keyturn.config import ENV_ALIASES, load_settings
from keyturn.domain.errors import ConfigError, ReportError
from tests.unit.test_credential_report import HEADER, REPORT


def outcome(action: Callable[[], object]) -> str:
    """'accepted', or the text of keyturn's own error; anything else fails the test."""
    try:
        action()
    except (ConfigError, ReportError) as exc:
        return str(exc)
    return "accepted"


SECTION_KEYS = {
    "aws": ["profile", "region", "role_arn", "endpoint_url", "max_attempts", "workers"],
    "policy": ["notify_after_days", "grace_days", "exempt_tags", "exempt_groups", "nope"],
    "notify": ["source_email", "fallback_contact"],
    "vault": ["addr", "token"],
    "bogus": ["x"],
}
toml_values = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
    st.sampled_from(["true", "false", "[]", '["a", 1]', "{}", '{a = "b"}', "1.5", "nan"]),
)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines = []
    for section in draw(st.lists(st.sampled_from(list(SECTION_KEYS)), max_size=3, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(SECTION_KEYS[section]), max_size=4, unique=True)):
            lines.append(f"{key} = {draw(toml_values)}")
    return "\n".join(lines) + "\n"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.one_of(toml_documents(), st.text(max_size=200)))
def test_any_config_file_is_accepted_or_rejected_clearly(tmp_path: Path, document: str) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    assert outcome(lambda: load_settings(path, environ={})).strip()


@settings(max_examples=200)
@given(
    environ=st.dictionaries(
        st.sampled_from(
            [
                *ENV_ALIASES,
                "KEYTURN_POLICY_GRACE_DAYS",
                "KEYTURN_POLICY_EXEMPT_TAGS",
                "KEYTURN_POLICY_EXEMPT_GROUPS",
                "KEYTURN_AWS_WORKERS",
                "KEYTURN_POLICY_X",
            ]
        ),
        st.text(max_size=30).filter(lambda s: "\x00" not in s),
        max_size=4,
    )
)
def test_any_environment_is_accepted_or_rejected_clearly(environ: dict[str, str]) -> None:
    assert outcome(lambda: load_settings(environ=environ)).strip()


report_cells = st.one_of(
    st.sampled_from(["N/A", "no_information", "not_supported", "true", "false", "", "TRUE"]),
    st.sampled_from(["2026-01-01T00:00:00+00:00", "2026-13-01T00:00:00+00:00", "2026-01-01"]),
    st.text(max_size=12),
)


@settings(max_examples=300)
@given(
    rows=st.lists(st.lists(report_cells, min_size=0, max_size=24), max_size=5),
    header=st.sampled_from([HEADER, "user,arn", HEADER + ",extra", ""]),
)
def test_any_report_is_parsed_or_rejected_clearly(rows: list[list[str]], header: str) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
    content = (header + "\n" + buffer.getvalue()).encode("utf-8", errors="surrogatepass")
    assert outcome(lambda: list(parse_report(content))).strip()


@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_rejected_clearly(data: bytes) -> None:
    assert outcome(lambda: list(parse_report(data))).strip()


@given(flip=st.integers(min_value=0, max_value=len(REPORT) - 1), byte=st.integers(0, 255))
def test_one_corrupted_byte_in_a_real_report(flip: int, byte: int) -> None:
    corrupted = REPORT[:flip] + bytes([byte]) + REPORT[flip + 1 :]
    assert outcome(lambda: list(parse_report(corrupted))).strip()
