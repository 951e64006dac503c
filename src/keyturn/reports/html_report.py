"""HTML: one self-contained page to mail, attach to a ticket or open offline.

Everything is inline (CSS, JS, an SVG chart) and a Content-Security-Policy forbids any
fetch, so the page works air-gapped and cannot leak who opened it. User names and tags come
from AWS and are untrusted: every value goes through `html.escape`, and the script reads
only the DOM, never data spliced into code.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from bisect import bisect_right
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
# Past the even bars: edges a reader can name (1, 2, 3, 4, 6, 9 months, then 1-10 years).
TAIL = (30, 60, 90, 120, 180, 270, 365, 540, 730, 1095, 1460, 1825, 2555, 3650)
OLDEST = 5
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
svg .break{stroke:#8c959f;stroke-dasharray:2 3}svg text.tail{font-style:italic}
#oldest{margin:0;padding:10px 16px 10px 40px}#oldest li{margin:2px 0}
#oldest code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#59636e}
.filter{display:flex;gap:10px;align-items:center;margin:0 0 10px}
.filter input{font:inherit;padding:5px 8px;border:1px solid #d1d9e0;border-radius:6px;
min-width:22em}.filter output{color:#59636e;font-size:13px}tr[hidden]{display:none}
"""
CSS += "".join(
    f"#summary .f-{f}{{border-top-color:{c}}}.f-{f} .pill,.legend .f-{f}{{background:{c}}}"
    f"tr.f-{f} td:first-child{{box-shadow:inset 3px 0 {c}}}rect.f-{f}{{fill:{c}}}"
    f".pill.f-{f}{{background:{c}}}svg text.t-{f}{{fill:{c}}}"
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
sort(i,q.get('dir')==='desc'?-1:1);});
var box=document.getElementById('filter'),shown=document.getElementById('shown');
function filter(){var words=box.value.toLowerCase().split(/\\s+/).filter(Boolean),n=0;
Array.prototype.forEach.call(body.rows,function(r){var text=r.textContent.toLowerCase();
var hit=words.every(function(w){return text.indexOf(w)>=0;});r.hidden=!hit;if(hit)n++;});
shown.textContent=n+' of '+body.rows.length+' keys';t.setAttribute('data-shown',n);}
box.addEventListener('input',filter);if(q.get('q'))box.value=q.get('q');filter();})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


# Nothing may load, and only this page's own style and script may run: each is allowed by
# its hash, so an injected `<script>` or `style=` (were escaping ever to fail) stays inert.
CSP = f"default-src 'none'; style-src {_sha256(CSS)}; script-src {_sha256(JS)}"


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
    if result.waiting:
        out.write('<h2>Rotations waiting for consumers</h2>\n<ul id="waiting">\n')
        for user, line in result.waiting.items():
            out.write(f"<li><b>{_e(user)}</b>: {_e(line)}</li>\n")
        out.write("</ul>\n")
    out.write(_oldest(result.keys))
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


def _edges(ages: Sequence[int], policy_span: int, step: int) -> tuple[list[int], int]:
    """Bucket edges: even bars of `step` days up to the span, then ever wider ones (the
    `TAIL` edges: months, then years) until the oldest key, so that a 1,100-day key sits
    in a 1,095-1,460 d bar instead of one `≥74` bar shared with everything past the span.

    Returns the edges and how many of the bars are the even ones.
    """
    regular = ceil(policy_span / step)
    edges = [index * step for index in range(regular + 1)]
    oldest = max(ages, default=0)
    tail = iter(TAIL)
    while oldest >= edges[-1]:
        nxt = next((edge for edge in tail if edge > edges[-1]), None)
        edges.append(nxt if nxt is not None else edges[-1] + 1825)
    return edges, regular


def _chart(keys: Sequence[AuditedKey], policy: PolicySettings) -> str:
    """Stacked histogram of key ages, oldest included.

    The even bars reach past every threshold (with room for its label) so their lines
    always fall on regular bars, and stop at twice the furthest one so that a single
    ancient key cannot squash the rest; older keys fall into wider bars after a break
    (`_edges`), each labelled with the day it starts at.
    """
    marks = [("notify", policy.notify_after_days), ("deactivate", policy.deactivate_after_days)]
    if policy.delete_inactive_after_days is not None:
        marks.append(("delete", policy.delete_inactive_after_days))
    furthest = max(days for _, days in marks)
    ages = [max(0, item.age_days) for item in keys]
    span = min(max([*ages, furthest + max(7, furthest // 4)]) + 1, max(2 * furthest, 60))
    step = next((s for s in STEPS if span / s <= MAX_BARS), ceil(span / MAX_BARS))
    edges, regular = _edges(ages, span, step)
    bars = len(edges) - 1
    buckets = [dict.fromkeys(Finding, 0) for _ in range(bars)]
    for item, age in zip(keys, ages, strict=True):
        buckets[bisect_right(edges, age) - 1][item.finding] += 1
    tallest = max((sum(b.values()) for b in buckets), default=0) or 1
    tick = max(1, ceil(tallest / 4))
    top = tick * ceil(tallest / tick)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    bar_w = plot_w / bars

    def x(days: float) -> float:
        """Where a day falls on the even bars (thresholds always do)."""
        return LEFT + days / step * bar_w

    def y(count: float) -> float:
        return TOP + plot_h - count / top * plot_h

    parts = [
        f'<svg id="age-chart" viewBox="0 0 {W} {H}" role="img" data-step="{step}" '
        f'data-bars="{bars}" data-regular="{regular}" '
        f'aria-label="Histogram of access key ages in days">'
    ]
    for value in range(0, top + 1, tick):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}"/><text x="{LEFT - 6}" y="{y(value) + 4:.1f}" '
            f'text-anchor="end">{value}</text>'
        )
    for index, bucket in enumerate(buckets):
        start, stop = edges[index], edges[index + 1]
        span_text = f"{start}–{stop - 1} d"
        left = LEFT + index * bar_w
        base = 0
        for finding, count in bucket.items():
            if not count:
                continue
            parts.append(
                f'<rect class="bar f-{finding}" data-finding="{finding}" data-count="{count}" '
                f'data-from="{start}" data-to="{stop}" '
                f'x="{left + 1:.1f}" y="{y(base + count):.1f}" width="{bar_w - 2:.1f}" '
                f'height="{y(base) - y(base + count):.1f}"><title>{span_text}: {count} '
                f"{finding}</title></rect>"
            )
            base += count
    label_every = ceil(regular / 12)
    for index in range(0, regular + 1, label_every):
        if index == regular and bars > regular:
            break
        parts.append(
            f'<text x="{x(index * step):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
            f"{index * step}</text>"
        )
    if bars > regular:
        brk = LEFT + regular * bar_w
        parts.append(
            f'<line class="break" x1="{brk:.1f}" x2="{brk:.1f}" y1="{TOP}" y2="{y(0) + 4}"/>'
        )
        for index in range(regular, bars):
            parts.append(
                f'<text class="tail" x="{LEFT + (index + 0.5) * bar_w:.1f}" '
                f'y="{H - BOTTOM + 16}" text-anchor="middle">{edges[index]}+</text>'
            )
    caption = f"age in days (bars of {step} d"
    caption += f"; from {edges[regular]} d on, wider bars)" if bars > regular else ")"
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(0)}" y2="{y(0)}"/>'
        f'<text x="{LEFT + plot_w / 2}" y="{H - 6}" text-anchor="middle">{caption}</text>'
    )
    for position, (name, days) in enumerate(marks):
        color = COLORS[Finding(name)]
        anchor, dx = ("end", -4) if position % 2 == 0 else ("start", 4)
        parts.append(
            f'<g data-threshold="{name}" data-days="{days}"><line class="threshold" '
            f'x1="{x(days):.1f}" x2="{x(days):.1f}" y1="{TOP - 6}" y2="{y(0)}" stroke="{color}"/>'
            f'<text class="tlabel t-{name}" x="{x(days) + dx:.1f}" '
            f'y="{TOP - 10 - 10 * (position // 2)}" text-anchor="{anchor}">{name} {days}d</text>'
            "</g>"
        )
    return "".join(parts) + "</svg>"


def _oldest(keys: Sequence[AuditedKey]) -> str:
    """The worst keys by name, before any chart or table: active ones, oldest first."""
    active = sorted((k for k in keys if k.key.active), key=lambda k: (-k.age_days, k.key.user))
    if not active:
        return ""
    items = "".join(
        f'<li data-age="{item.age_days}"><b>{item.age_days} d</b> {_e(item.key.user)}'
        f"{f' <code>{_e(item.key.key_id)}</code>' if item.key.key_id else ''}"
        f' <span class="pill f-{item.finding}">{item.finding}</span></li>'
        for item in active[:OLDEST]
    )
    return f'<h2>Oldest active keys</h2>\n<ol id="oldest" class="panel">{items}</ol>\n'


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
    search = (
        '<div class="filter"><label for="filter">Filter</label><input id="filter" '
        'type="search" placeholder="user, key id, finding, contact…" autocomplete="off">'
        f'<output id="shown" for="filter">{len(keys)} of {len(keys)} keys</output></div>'
    )
    return (
        f'{search}<div class="panel scroll"><table id="keys"><thead><tr>{heads}</tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody></table></div>"
    )


def _row(row: dict[str, Any]) -> str:
    cells = []
    for name in COLUMNS:
        value = row[name]
        if value is None and name == "last_used_date":
            cells.append('<td class="none" data-sort="">never</td>')
        elif value is None:
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
