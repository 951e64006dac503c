"""HTML: one self-contained page to mail, attach to a ticket or open offline.

Everything is inline (CSS, JS, an SVG chart) and a Content-Security-Policy forbids any
fetch, so the page works air-gapped and cannot leak who opened it. User names and tags come
from AWS and are untrusted: every value goes through `html.escape`, and the script reads
only the DOM, never data spliced into code.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from math import ceil
from typing import Any, TextIO

from keyturn.domain.model import AuditedKey, Finding
from keyturn.domain.policy import PolicySettings
from keyturn.reports.records import COLUMNS, iso, policy_record, record, summary
from keyturn.services.audit import AuditResult

# Same hues as the terminal table (table.py): green, cyan, amber, magenta, red.
COLORS = {
    Finding.OK: "#2da44e",
    Finding.EXEMPT: "#0891b2",
    Finding.NOTIFY: "#d97706",
    Finding.UNUSED: "#c026d3",
    Finding.DEACTIVATE: "#dc2626",
    Finding.DELETE: "#991b1b",
}
LABELS = {"slot": "#", "key_id": "key id", "age_days": "age (d)", "last_used_date": "last used",
          "last_used_service": "service", "last_used_region": "region"}  # fmt: skip
NUMERIC = frozenset({"slot", "age_days"})
DATES = frozenset({"created", "last_used_date"})
POLICY_LABELS = {"notify_after_days": "notify at", "deactivate_after_days": "deactivate at",
                 "delete_inactive_after_days": "delete inactive at",
                 "unused_after_days": "unused after"}  # fmt: skip
CELL_CLASS = {"key_id": "mono", "user": "wrap", "contact": "wrap", "reason": "reason"}
# Bucket widths a reader can count in: days, weeks, months.
STEPS = (1, 2, 3, 5, 7, 10, 14, 30, 60, 90, 180, 365)
MAX_BARS = 40
W, H, LEFT, RIGHT, TOP, BOTTOM = 900, 240, 44, 16, 34, 40

CSS = """
*{box-sizing:border-box}body{margin:0;padding:24px 28px;font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#f6f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:15px;margin:28px 0 10px;color:#424a53}
.meta{color:#59636e;margin:0}.meta b{color:#1f2328;font-weight:600}
.panel{background:#fff;border:1px solid #d1d9e0;border-radius:8px;padding:16px}
#summary{display:flex;flex-wrap:wrap;gap:10px;margin:20px 0 0;padding:0}
#summary div{background:#fff;border:1px solid #d1d9e0;border-top:4px solid #8c959f;
border-radius:8px;padding:8px 16px;min-width:104px}
#summary dt{color:#59636e;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
#summary dd{margin:0;font-size:26px;font-weight:650;font-variant-numeric:tabular-nums}
.policy{margin:10px 0 0;color:#59636e;font-size:13px}.warn{color:#9a6700}
svg{width:100%;height:auto;display:block}svg text{font:11px system-ui,sans-serif;fill:#59636e}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}
svg .threshold{stroke-width:2;stroke-dasharray:5 4}svg text.tlabel{font-weight:600}
.legend{display:flex;gap:14px;font-size:12px;color:#59636e;margin-top:6px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.scroll{overflow-x:auto;padding:0}table{border-collapse:collapse;width:100%;font-size:12.5px}
th{position:sticky;top:0;background:#f6f8fa;text-align:left;border-bottom:1px solid #d1d9e0}
th button{all:unset;cursor:pointer;display:block;padding:8px;font-weight:600;
white-space:nowrap}th button:focus-visible{outline:2px solid #0969da}
th[aria-sort=ascending] button::after{content:" ▲"}
th[aria-sort=descending] button::after{content:" ▼"}
td{padding:6px 8px;border-bottom:1px solid #eaeef2;vertical-align:top;white-space:nowrap}
tbody tr:hover{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td.none,td.Inactive{color:#8c959f}td.reason{white-space:normal;min-width:9em}
td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:8em}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;color:#fff;font-size:12px;
font-weight:600}.empty{color:#59636e;font-style:italic;margin:0}
"""
CSS += "".join(
    f"#summary .f-{f}{{border-top-color:{c}}}.f-{f} .pill,.legend .f-{f}{{background:{c}}}"
    f"tr.f-{f} td:first-child{{box-shadow:inset 3px 0 {c}}}rect.f-{f}{{fill:{c}}}"
    for f, c in COLORS.items()
)
# Reads only the DOM. `?sort=COLUMN&dir=desc` sorts on load, so a link (or a test) can
# open the page pre-sorted; `data-sorted` on the table records the current order.
JS = """
(function(){var t=document.getElementById('keys');if(!t)return;
var body=t.tBodies[0],heads=t.tHead.rows[0].cells;
function val(row,i,num){var c=row.cells[i],v=c.getAttribute('data-sort');
if(v===null)v=c.textContent;return num?(v===''?-Infinity:parseFloat(v)):v.toLowerCase();}
function sort(i,dir){var num=heads[i].getAttribute('data-type')==='num';
var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=val(a,i,num),y=val(b,i,num);
return dir*(num?(x<y?-1:x>y?1:0):x.localeCompare(y,undefined,{numeric:true}));});
rows.forEach(function(r){body.appendChild(r);});
for(var j=0;j<heads.length;j++)heads[j].removeAttribute('aria-sort');
heads[i].setAttribute('aria-sort',dir>0?'ascending':'descending');
t.setAttribute('data-sorted',heads[i].getAttribute('data-col')+':'+(dir>0?'asc':'desc'));}
Array.prototype.forEach.call(heads,function(h,i){h.querySelector('button').addEventListener(
'click',function(){sort(i,h.getAttribute('aria-sort')==='ascending'?-1:1);});});
var q=new URLSearchParams(location.search),col=q.get('sort');
Array.prototype.forEach.call(heads,function(h,i){if(h.getAttribute('data-col')===col)
sort(i,q.get('dir')==='desc'?-1:1);});})();
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def write_html(result: AuditResult, out: TextIO) -> None:
    """Sections in the order a reader acts: totals, ages, then keys, most urgent first."""
    title = f"keyturn access key audit, {iso(result.generated_at)}"
    counts = summary(result.keys)
    out.write(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">\n'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>Access key audit</h1>\n"
        f'<p class="meta">Generated <b id="generated">{_e(iso(result.generated_at))}</b>'
        f' from the <b id="source">{_e(result.source)}</b>: {counts["keys"]} keys,'
        f" {result.out_of_policy} out of policy.</p>\n"
        f"{_summary(counts)}{_policy(result.policy)}"
    )
    for warning in result.warnings:
        out.write(f'<p class="warn">warning: {_e(warning)}</p>\n')
    out.write(f'<h2>Key ages</h2>\n<div class="panel">{_chart(result.keys, result.policy)}')
    legend = "".join(f'<span><i class="f-{f}"></i>{f}</span>' for f in Finding)
    out.write(f'<div class="legend">{legend}</div></div>\n<h2>Keys</h2>\n')
    out.write(_table(result.keys))
    out.write(f"\n<script>{JS}</script>\n</body></html>\n")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _summary(counts: dict[str, int]) -> str:
    """One card per finding, in `summary()`'s order; `keys` (the total) comes first."""
    cells = "".join(
        f'<div class="f-{name}" data-finding="{name}"><dt>{name}</dt>'
        f'<dd data-count="{count}">{count}</dd></div>'
        for name, count in counts.items()
    )
    return f'<dl id="summary">{cells}</dl>\n'


def _policy(policy: PolicySettings) -> str:
    rules = policy_record(policy)
    parts = [
        f"{label} <b>{rules[name]}d</b>"
        for name, label in POLICY_LABELS.items()
        if rules[name] is not None
    ]
    exempt = [f"{k}={v}" for k, v in rules["exempt_tags"].items()] + rules["exempt_groups"]
    if exempt:
        parts.append("exempt: " + ", ".join(_e(item) for item in exempt))
    return f'<p class="policy" id="policy">Policy: {" · ".join(parts)}</p>\n'


def _chart(keys: Sequence[AuditedKey], policy: PolicySettings) -> str:
    """Stacked histogram of key ages; keys older than the span share one last `≥` bar.

    The span reaches past every threshold (with room for its label) so their lines always
    fall on regular bars, and stops at twice the furthest one so that a single ancient key
    cannot squash the rest.
    """
    marks = [("notify", policy.notify_after_days), ("deactivate", policy.deactivate_after_days)]
    if policy.delete_inactive_after_days is not None:
        marks.append(("delete", policy.delete_inactive_after_days))
    furthest = max(days for _, days in marks)
    ages = [max(0, item.age_days) for item in keys]
    span = min(max([*ages, furthest + max(7, furthest // 4)]) + 1, max(2 * furthest, 60))
    step = next((s for s in STEPS if span / s <= MAX_BARS), ceil(span / MAX_BARS))
    regular = ceil(span / step)
    overflow = any(age >= regular * step for age in ages)
    bars = regular + overflow
    buckets = [dict.fromkeys(Finding, 0) for _ in range(bars)]
    for item, age in zip(keys, ages, strict=True):
        buckets[min(age // step, regular)][item.finding] += 1
    tallest = max((sum(b.values()) for b in buckets), default=0) or 1
    tick = max(1, ceil(tallest / 4))
    top = tick * ceil(tallest / tick)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    bar_w = plot_w / bars

    def x(days: float) -> float:
        return LEFT + days / step * bar_w

    def y(count: float) -> float:
        return TOP + plot_h - count / top * plot_h

    parts = [
        f'<svg id="age-chart" viewBox="0 0 {W} {H}" role="img" data-step="{step}" '
        f'data-bars="{bars}" aria-label="Histogram of access key ages in days">'
    ]
    for value in range(0, top + 1, tick):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}"/><text x="{LEFT - 6}" y="{y(value) + 4:.1f}" '
            f'text-anchor="end">{value}</text>'
        )
    for index, bucket in enumerate(buckets):
        start = index * step
        span_text = f"≥{start} d" if index == regular else f"{start}–{start + step - 1} d"
        base = 0
        for finding, count in bucket.items():
            if not count:
                continue
            parts.append(
                f'<rect class="bar f-{finding}" data-finding="{finding}" data-count="{count}" '
                f'x="{x(start) + 1:.1f}" y="{y(base + count):.1f}" width="{bar_w - 2:.1f}" '
                f'height="{y(base) - y(base + count):.1f}"><title>{span_text}: {count} '
                f"{finding}</title></rect>"
            )
            base += count
    label_every = ceil(bars / 12)
    for index in range(0, regular + (not overflow), label_every):
        parts.append(
            f'<text x="{x(index * step):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
            f"{index * step}</text>"
        )
    if overflow:
        parts.append(
            f'<text class="overflow" x="{x(regular * step + step / 2):.1f}" '
            f'y="{H - BOTTOM + 16}" text-anchor="middle">≥{regular * step}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(0)}" y2="{y(0)}"/>'
        f'<text x="{LEFT + plot_w / 2}" y="{H - 6}" text-anchor="middle">age in days'
        f" (bars of {step} d)</text>"
    )
    for position, (name, days) in enumerate(marks):
        color = COLORS[Finding(name)]
        anchor, dx = ("end", -4) if position % 2 == 0 else ("start", 4)
        parts.append(
            f'<g data-threshold="{name}" data-days="{days}"><line class="threshold" '
            f'x1="{x(days):.1f}" x2="{x(days):.1f}" y1="{TOP - 6}" y2="{y(0)}" stroke="{color}"/>'
            f'<text class="tlabel" x="{x(days) + dx:.1f}" y="{TOP - 10 - 10 * (position // 2)}" '
            f'text-anchor="{anchor}" style="fill:{color}">{name} {days}d</text></g>'
        )
    return "".join(parts) + "</svg>"


def _table(keys: Sequence[AuditedKey]) -> str:
    if not keys:
        return '<div class="panel"><p class="empty" id="no-keys">No access keys found.</p></div>'
    heads = "".join(
        f'<th data-col="{name}" data-type="{"num" if name in NUMERIC else "text"}">'
        f'<button type="button">{LABELS.get(name, name)}</button></th>'
        for name in COLUMNS
    )
    rank = {finding: index for index, finding in enumerate(Finding)}
    ordered = sorted(keys, key=lambda k: (-rank[k.finding], -k.age_days, k.key.user))
    rows = "\n".join(_row(record(item)) for item in ordered)
    return (
        f'<div class="panel scroll"><table id="keys"><thead><tr>{heads}</tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


def _row(row: dict[str, Any]) -> str:
    cells = []
    for name in COLUMNS:
        value = row[name]
        if value is None:
            cells.append('<td class="none" data-sort="">—</td>')
        elif name in DATES:
            cells.append(f'<td data-sort="{_e(value)}" title="{_e(value)}">{_e(value[:10])}</td>')
        elif name in NUMERIC:
            cells.append(f'<td class="num" data-sort="{_e(value)}">{_e(value)}</td>')
        elif name == "finding":
            cells.append(f'<td><span class="pill">{_e(value)}</span></td>')
        else:
            css = value if name == "status" else CELL_CLASS.get(name)
            attr = f' class="{_e(css)}"' if css else ""
            # An address may break after its `@` rather than overflow the table.
            cells.append(f"<td{attr}>{_e(value).replace('@', '@<wbr>')}</td>")
    finding = _e(row["finding"])
    return f'<tr class="f-{finding}" data-finding="{finding}">{"".join(cells)}</tr>'
