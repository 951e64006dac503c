"""The HTML report in a real browser: headless Chromium runs its script and draws it.

`--dump-dom` prints the DOM after the page's script ran, so a broken script (a syntax error,
a CSP that blocks it) shows up as a missing `data-sorted` on the table. The screenshot is
kept under pytest's tmp dir for a person to look at.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyturn.domain.model import AccessKey, AuditedKey, KeyStatus, LastUse
from keyturn.domain.policy import PolicySettings, classify
from keyturn.reports.html_report import write_html
from keyturn.services.audit import AuditResult

pytestmark = pytest.mark.browser

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
POLICY = PolicySettings(notify_after_days=30, grace_days=7, delete_after_days=30)
HOSTILE = "<script>document.title='pwned'</script>"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def audited(index: int, age: int) -> AuditedKey:
    user = HOSTILE if index == 0 else f"svc-{index:02d}"
    key = AccessKey(
        account="123456789012",
        user=user,
        slot=1 + index % 2,
        status=KeyStatus.INACTIVE if index % 7 == 3 else KeyStatus.ACTIVE,
        created=NOW - timedelta(days=age, hours=2),
        last_used=LastUse(NOW - timedelta(days=index % 5), "sts", "us-east-1"),
        key_id=f"AKIA{index:016d}",
        contact=f"owner{index}@example.com",
    )
    return classify(key, NOW, POLICY)


AGES = [3, 9, 14, 21, 27, 29, 31, 33, 35, 38, 44, 52, 61, 75, 90, 130, 400, 12, 6, 1]
RESULT = AuditResult(
    generated_at=NOW,
    policy=POLICY,
    source="credential-report",
    keys=[audited(index, age) for index, age in enumerate(AGES)],
)


@pytest.fixture(scope="module")
def browser() -> str:
    binary = chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    return binary


def run(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def page(tmp_path: Path, result: AuditResult = RESULT) -> Path:
    path = tmp_path / "audit.html"
    with path.open("w", encoding="utf-8") as out:
        write_html(result, out)
    return path


def body_ages(dom: str) -> list[int]:
    tbody = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        int(age) for age in re.findall(r'<td class="num" data-sort="(\d+)">\d+</td>', tbody)[1::2]
    ]


def test_dom_after_script_has_every_row_and_the_chart(browser: str, tmp_path: Path) -> None:
    dom = run(browser, tmp_path, "--dump-dom", page(tmp_path).as_uri()).stdout
    tbody = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert tbody.count("<tr ") == len(AGES)
    assert '<svg id="age-chart"' in dom
    assert 'data-threshold="notify" data-days="30"' in dom
    assert 'data-threshold="deactivate" data-days="37"' in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "<title>pwned</title>" not in dom


def test_sorting_script_runs_in_the_browser(browser: str, tmp_path: Path) -> None:
    uri = page(tmp_path).as_uri()
    descending = run(browser, tmp_path, "--dump-dom", f"{uri}?sort=age_days&dir=desc").stdout
    assert 'data-sorted="age_days:desc"' in descending
    assert body_ages(descending) == sorted(AGES, reverse=True)
    ascending = run(browser, tmp_path, "--dump-dom", f"{uri}?sort=age_days").stdout
    assert body_ages(ascending) == sorted(AGES)
    by_user = run(browser, tmp_path, "--dump-dom", f"{uri}?sort=user").stdout
    users = re.findall(r'<td class="wrap">(svc-\d\d)</td>', by_user)
    assert users == sorted(users)
    assert len(users) == len(AGES) - 1


def with_script(path: Path, code: str, *, allowed: bool) -> None:
    """Appends a test-only script; `allowed` adds its hash to the page's CSP."""
    html = path.read_text(encoding="utf-8").replace("</body>", f"<script>{code}</script></body>")
    if allowed:
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        html = html.replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
    path.write_text(html, encoding="utf-8")


def test_header_clicks_toggle_the_order(browser: str, tmp_path: Path) -> None:
    """Clicks the real buttons from a test-only script appended to the page."""
    path = page(tmp_path)
    clicks = (
        "var b=document.querySelector('th[data-col=\"age_days\"] button'),"
        "t=document.getElementById('keys');b.click();var first=t.getAttribute('data-sorted');"
        "b.click();document.body.setAttribute('data-clicks',first+','+t.getAttribute('data-sorted'))"
    )
    with_script(path, clicks, allowed=True)
    dom = run(browser, tmp_path, "--dump-dom", path.as_uri()).stdout
    assert 'data-clicks="age_days:asc,age_days:desc"' in dom
    assert body_ages(dom) == sorted(AGES, reverse=True)
    assert 'aria-sort="descending"' in dom


def test_screenshot_is_drawn(browser: str, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    uri = page(tmp_path).as_uri()
    run(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", uri)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1280x1600 page compresses to a few KB; a drawn report is far larger.
    assert shot.stat().st_size > 40_000


def test_empty_report_renders_in_the_browser(browser: str, tmp_path: Path) -> None:
    empty = AuditResult(generated_at=NOW, policy=POLICY, source="iam-api", keys=[])
    dom = run(browser, tmp_path, "--dump-dom", page(tmp_path, empty).as_uri()).stdout
    assert 'id="no-keys"' in dom
    assert '<svg id="age-chart"' in dom


def test_the_filter_box_hides_rows_that_do_not_match(browser: str, tmp_path: Path) -> None:
    uri = page(tmp_path).as_uri()
    dom = run(browser, tmp_path, "--dump-dom", f"{uri}?q=svc-1").stdout
    # svc-10 .. svc-19 match; every other row is hidden.
    assert 'data-shown="10"' in dom
    assert f"10 of {len(AGES)} keys" in dom
    tbody = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert tbody.count("<tr ") == len(AGES)
    assert tbody.count(" hidden=") == len(AGES) - 10
    everything = run(browser, tmp_path, "--dump-dom", uri).stdout
    assert f'data-shown="{len(AGES)}"' in everything


def test_csp_stops_an_injected_script(browser: str, tmp_path: Path) -> None:
    """Were escaping ever to fail, a script the page did not ship would not run."""
    path = page(tmp_path)
    with_script(path, "document.body.setAttribute('data-injected','yes')", allowed=False)
    dom = run(browser, tmp_path, "--dump-dom", path.as_uri()).stdout
    assert 'data-injected="yes"' not in dom
    assert f'data-shown="{len(AGES)}"' in dom  # the page's own script still ran
