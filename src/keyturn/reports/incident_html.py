"""An incident record as one self-contained HTML page, in the audit report's style.

The page is rendered from the record's JSON document only, so the two never disagree.
Every value goes through `html.escape`: CloudTrail's user agents and source addresses are
whatever the key's holder sent. No script; the Content-Security-Policy allows only the
page's own inline style, so the page fetches nothing when opened.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from html import escape
from typing import Any

from keyturn.reports.html_report import CSS

_CSP = (
    "default-src 'none'; style-src "
    f"'sha256-{b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'"
)
TOP_ROWS = 15


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def render(document: dict[str, Any]) -> str:
    key = document.get("key", {})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        f"<title>keyturn incident {_e(key.get('key_id'))}</title><style>{CSS}</style></head>",
        f"<body><h1>Exposed access key {_e(key.get('key_id'))}</h1>",
        f"<p class=meta>user <b>{_e(key.get('user'))}</b> · account "
        f"<b>{_e(key.get('account'))}</b> · status <b>{_e(document.get('state'))}</b> · "
        f"opened <b>{_e(document.get('opened_at'))}</b></p>",
        "<h2>What keyturn did</h2><div class=panel><table><thead><tr><th>step</th>"
        "<th>time (UTC)</th><th>detail</th></tr></thead><tbody>",
    ]
    for action in document.get("actions", []):
        parts.append(
            f"<tr><td>{_e(action.get('step'))}</td><td class=mono>{_e(action.get('at'))}</td>"
            f"<td>{_e(action.get('detail'))}</td></tr>"
        )
    parts.append("</tbody></table></div>")
    warnings = document.get("warnings") or []
    if warnings:
        parts.append("<h2>Warnings</h2><ul>")
        parts += [f"<li class=warn>{_e(w)}</li>" for w in warnings]
        parts.append("</ul>")
    parts.append(_activity(document.get("activity")))
    parts.append("</body></html>\n")
    return "".join(parts)


def _activity(activity: Any) -> str:
    if not isinstance(activity, dict):
        return "<h2>What the key did</h2><p class=meta>no CloudTrail source configured</p>"
    found = [
        "<h2>What the key did</h2>",
        f"<p class=meta>{_e(activity.get('total_events'))} CloudTrail event(s) from "
        f"{_e(activity.get('start'))} to {_e(activity.get('end'))}; complete: "
        f"<b>{_e(activity.get('complete'))}</b></p>",
    ]
    calls = activity.get("access_calls") or []
    if calls:
        found.append("<h3>Calls that create access</h3><div class=panel><table><tbody>")
        for call in calls[: TOP_ROWS * 4]:
            cells = (
                "".join(f"<td>{_e(v)}</td>" for v in call.values())
                if isinstance(call, dict)
                else f"<td>{_e(call)}</td>"
            )
            found.append(f"<tr>{cells}</tr>")
        found.append("</tbody></table></div>")
    for name in ("by_action", "by_source_ip", "by_region", "by_user_agent"):
        tally = activity.get(name)
        rows = _tally_rows(tally)
        if not rows:
            continue
        found.append(f"<h3>{_e(name.replace('_', ' '))}</h3><div class=panel><table><tbody>")
        found += [f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows[:TOP_ROWS]]
        found.append("</tbody></table></div>")
    return "".join(found)


def _tally_rows(tally: Any) -> list[tuple[Any, Any]]:
    """A tally's (value, count) rows, whatever its dict shape (a mapping or a list)."""
    if isinstance(tally, dict):
        counts = tally.get("counts", tally)
        if isinstance(counts, dict):
            return [(k, v) for k, v in counts.items() if not isinstance(v, dict | list)]
        if isinstance(counts, list):
            return [tuple(item)[:2] if isinstance(item, list | tuple) else (item, "")
                    for item in counts]  # fmt: skip
    return []
