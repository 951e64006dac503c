"""The real clock; the core never reads time itself, so tests pass a fixed one."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
