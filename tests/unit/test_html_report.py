"""The HTML report, read back with the stdlib parser as a browser would see its structure."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from keyturn.domain.model import AccessKey, AuditedKey, Finding, KeyStatus, LastUse
from keyturn.domain.policy import PolicySettings, classify
from keyturn.reports.html_report import write_html
from keyturn.reports.records import COLUMNS
from keyturn.services.audit import AuditResult

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
POLICY = PolicySettings(
    notify_after_days=30,
    grace_days=7,
    delete_after_days=30,
    unused_after_days=20,
    exempt_tags={"KeyturnExempt": "true"},
)
HOSTILE = "<script>alert(1)</script>"


def key(
    user: str,
    age: int,
    *,
    used: int | None = 1,
    status: KeyStatus = KeyStatus.ACTIVE,
    slot: int = 1,
    tags: dict[str, str] | None = None,
    contact: str | None = None,
) -> AuditedKey:
    access_key = AccessKey(
        account="123456789012",
        user=user,
        slot=slot,
        status=status,
        created=NOW - timedelta(days=age, hours=1),
        last_used=None if used is None else LastUse(NOW - timedelta(days=used), "s3", "eu-west-1"),
        key_id=f"AKIA{user.upper()[:8]:X<16}" if user.isalpha() else None,
        contact=contact,
        user_tags=tags or {},
    )
    return classify(access_key, NOW, POLICY)


def sample() -> AuditResult:
    keys = [
        key("alice", 5),
        key("alice", 12, slot=2, status=KeyStatus.INACTIVE, used=None),
        key("bob", 32),
        key("carol", 40),
        key("dave", 80, status=KeyStatus.INACTIVE),
        key("erin", 200, tags={"KeyturnExempt": "true"}),
        key("frank", 25, used=None),
        key(HOSTILE, 3, contact='"><img src=x onerror=alert(1)>', tags={"x": HOSTILE}),
    ]
    return AuditResult(
        generated_at=NOW,
        policy=POLICY,
        source="credential-report",
        keys=keys,
        warnings=[f"{HOSTILE}: access_key_2 is no longer in IAM"],
    )


class Page(HTMLParser):
    """Collects the elements the tests look at; the parser never runs the page's script."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self.rows: list[dict[str, str | None]] = []
        self.cells: list[list[str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes, tuple(self.stack)))
        if tag == "tr" and "tbody" in self.stack:
            self.rows.append(attributes)
            self.cells.append([])
        if tag == "td" and "tbody" in self.stack:
            self.cells[-1].append("")
        if tag not in ("meta", "br", "wbr", "img", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), tuple(self.stack)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.cells and "td" in self.stack and "tbody" in self.stack:
            self.cells[-1][-1] += data

    def find(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs, _ in self.elements
            if name == tag and all(attrs.get(k.replace("_", "-")) == v for k, v in wanted.items())
        ]


def render(result: AuditResult) -> tuple[str, Page]:
    out = io.StringIO()
    write_html(result, out)
    page = Page()
    page.feed(out.getvalue())
    page.close()
    return out.getvalue(), page


def test_the_sample_covers_every_finding() -> None:
    assert set(sample().counts()) == set(Finding)


def test_one_row_per_key_with_every_column() -> None:
    result = sample()
    _, page = render(result)
    assert len(page.rows) == len(result.keys)
    assert all(len(cells) == len(COLUMNS) for cells in page.cells)
    headers = [attrs["data-col"] for attrs in page.find("th")]
    assert headers == list(COLUMNS)
    found = sorted(str(row["data-finding"]) for row in page.rows)
    assert found == sorted(item.finding.value for item in result.keys)
    assert all(row["class"] == f"f-{row['data-finding']}" for row in page.rows)


def test_rows_start_with_the_most_urgent_finding() -> None:
    _, page = render(sample())
    assert page.rows[0]["data-finding"] == "delete"
    assert page.rows[-1]["data-finding"] in ("ok", "exempt")


def summary_of(page: Page) -> dict[str, int]:
    """Each summary card's finding and its count, in page order."""
    cards: dict[str, int] = {}
    finding = None
    for tag, attrs, stack in page.elements:
        if tag == "div" and "dl" in stack:
            finding = attrs.get("data-finding")
        if tag == "dd" and finding is not None:
            cards[finding] = int(str(attrs["data-count"]))
    return cards


def test_summary_counts_every_finding_and_the_total() -> None:
    _, page = render(sample())
    assert summary_of(page) == {
        "keys": 8, "ok": 3, "exempt": 1, "notify": 1, "unused": 1, "deactivate": 1, "delete": 1
    }  # fmt: skip
    assert list(summary_of(page)) == ["keys", *(f.value for f in Finding)]


def test_header_shows_time_source_and_policy() -> None:
    html, _ = render(sample())
    assert "2024-06-01T12:00:00+00:00" in html
    assert "credential-report" in html
    for text in ("notify at <b>30d", "deactivate at <b>37d", "delete inactive at <b>67d"):
        assert text in html
    assert "unused after <b>20d" in html
    assert "KeyturnExempt=true" in html


def test_chart_marks_both_thresholds_with_their_days() -> None:
    _, page = render(sample())
    assert len(page.find("svg", id="age-chart")) == 1
    assert page.find("g", data_threshold="notify", data_days="30")
    assert page.find("g", data_threshold="deactivate", data_days="37")
    assert page.find("g", data_threshold="delete", data_days="67")
    assert "notify 30d" in page.text
    assert "deactivate 37d" in page.text


def test_chart_bars_account_for_every_key() -> None:
    result = sample()
    _, page = render(result)
    bars = page.find("rect")
    assert sum(int(str(bar["data-count"])) for bar in bars) == len(result.keys)
    # erin's 200-day key lies past the even bars: it gets a wider bar of its own, after a break.
    assert page.find("text", **{"class": "tail"})
    assert page.find("line", **{"class": "break"})


def test_chart_without_old_keys_has_only_even_bars() -> None:
    result = sample()
    result.keys = [item for item in result.keys if item.age_days < 100]
    _, page = render(result)
    assert not page.find("text", **{"class": "tail"})
    svg = page.find("svg", id="age-chart")[0]
    assert svg["data-bars"] == svg["data-regular"]


def ages_result(*ages: int) -> AuditResult:
    keys = [key(f"user{age}", age) for age in ages]
    return AuditResult(generated_at=NOW, policy=POLICY, source="credential-report", keys=keys)


def bar_of(page: Page, age: int) -> tuple[int, int]:
    spans = {(int(str(r["data-from"])), int(str(r["data-to"]))) for r in page.find("rect")}
    found = [(low, high) for low, high in spans if low <= age < high]
    assert len(found) == 1, (age, spans)
    return found[0]


def test_the_oldest_keys_are_not_hidden_in_one_overflow_bar() -> None:
    """Issue 13: every key from 74 to 1,100 days old sat in one `≥74` bar."""
    _, page = render(ages_result(10, 74, 200, 400, 1100))
    bars = {age: bar_of(page, age) for age in (74, 200, 400, 1100)}
    assert len(set(bars.values())) == 4  # each old key in its own bar
    low, high = bars[1100]
    assert high - low <= 400  # 1,095-1,460 d: a year, not "everything past 74"
    labels = [text for text in page.text if text.endswith("+")]
    assert labels[-1] == f"{low}+"


def test_a_very_old_key_does_not_squash_the_chart() -> None:
    result = AuditResult(
        generated_at=NOW,
        policy=POLICY,
        source="credential-report",
        keys=[key("old", 5000), key("new", 1)],
    )
    _, page = render(result)
    svg = page.find("svg", id="age-chart")[0]
    assert int(str(svg["data-regular"])) <= 40
    assert int(str(svg["data-bars"])) - int(str(svg["data-regular"])) <= 15
    assert sum(int(str(bar["data-count"])) for bar in page.find("rect")) == 2
    assert bar_of(page, 5000) == (3650, 5475)


def test_the_oldest_active_keys_are_named_first() -> None:
    _, page = render(ages_result(10, 74, 1100, 400))
    ages = [int(str(item["data-age"])) for item in page.find("li")]
    assert ages == [1100, 400, 74, 10]
    html, _ = render(ages_result(10, 74, 1100, 400))
    assert html.index('id="oldest"') < html.index('id="age-chart"')


def test_never_used_keys_say_never() -> None:
    _, page = render(sample())
    column = COLUMNS.index("last_used_date")
    users = COLUMNS.index("user")
    frank = next(cells for cells in page.cells if cells[users] == "frank")
    assert frank[column] == "never"
    assert frank[COLUMNS.index("last_used_service")] == "—"


def test_the_table_has_a_filter_box() -> None:
    _, page = render(sample())
    assert page.find("input", id="filter", type="search")
    assert page.find("label", for_="filter") or page.find("label", **{"for": "filter"})
    assert page.find("output", id="shown")


def csp_of(html: str) -> dict[str, list[str]]:
    page = Page()
    page.feed(html)
    content = str(page.find("meta", http_equiv="Content-Security-Policy")[0]["content"])
    return {part.split()[0]: part.split()[1:] for part in content.split(";") if part.strip()}


def test_csp_allows_only_the_pages_own_script_and_style() -> None:
    """`default-src 'none'`, and inline code only by hash: no 'unsafe-inline'."""
    html, page = render(sample())
    csp = csp_of(html)
    assert csp["default-src"] == ["'none'"]
    assert "'unsafe-inline'" not in html
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert csp["script-src"] == [digest(script)]
    assert csp["style-src"] == [digest(style)]
    # Hashes do not cover attributes: the page must not need any.
    for _, attrs, _ in page.elements:
        assert "style" not in attrs
        assert not any(name.startswith("on") for name in attrs)


def test_nothing_is_loaded_from_anywhere() -> None:
    html, page = render(sample())
    assert "http://" not in html
    assert "https://" not in html
    assert "url(" not in html
    assert "@import" not in html
    for tag, attrs, _ in page.elements:
        if tag in ("script", "link", "img", "iframe", "object", "embed", "image", "use"):
            assert not {"src", "href", "xlink:href", "data"} & set(attrs), tag
    assert not any(tag in ("link", "img", "iframe") for tag, _, _ in page.elements)
    assert page.find("meta", http_equiv="Content-Security-Policy")


def test_hostile_values_are_escaped() -> None:
    html, page = render(sample())
    assert HOSTILE not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert sum(1 for tag, _, _ in page.elements if tag == "script") == 1
    assert any(HOSTILE in cells for cells in page.cells)
    assert any('"><img src=x onerror=alert(1)>' in cells for cells in page.cells)


def test_no_secret_field_is_rendered() -> None:
    html, _ = render(sample())
    assert "secret" not in html.lower()


def test_empty_result_renders_a_message_and_a_valid_chart() -> None:
    result = AuditResult(generated_at=NOW, policy=PolicySettings(), source="iam-api", keys=[])
    html, page = render(result)
    assert page.rows == []
    assert page.find("p", id="no-keys")
    assert page.find("svg", id="age-chart")
    assert not page.find("rect")
    assert page.find("g", data_threshold="notify", data_days="30")
    assert page.find("g", data_threshold="deactivate", data_days="37")
    assert not page.find("g", data_threshold="delete")
    assert set(summary_of(page).values()) == {0}
    assert html.rstrip().endswith("</html>")
    assert page.stack == []


def test_document_is_balanced() -> None:
    _, page = render(sample())
    assert page.stack == []
