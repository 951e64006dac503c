"""Audit events as JSON lines: one object per line, flushed as each is written.

Written as the run goes (not at the end), so a run that dies halfway still leaves the trail
of what it did up to then. Events carry key ids, never secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from keyturn.domain.errors import BadInputError


class JsonLinesSink:
    def __init__(self, path: Path) -> None:
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise BadInputError(f"--events: directory {directory} does not exist")
        try:
            self._file: TextIO = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"--events: cannot write {path}: {exc.strerror}") from None

    def emit(self, event: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(event, sort_keys=True, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NullSink:
    """Events nobody asked for."""

    def emit(self, event: Mapping[str, Any]) -> None:
        del event


class JsonStreamSink:
    """Events as JSON lines on a stream (the broker's stderr; stdout on Lambda, where
    CloudWatch Logs keeps each line). A lock keeps lines whole across server threads."""

    def __init__(self, stream: TextIO) -> None:
        import threading

        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
