"""Renderers of an audit result: table, JSON, CSV and a self-contained HTML page.

All of them start from `records()`, so every format shows the same fields, and none of them
can show a secret: an `AuditedKey` never holds one.
"""
