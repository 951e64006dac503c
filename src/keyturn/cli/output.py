"""Writing a rendered report to stdout or, atomically, to `--output PATH`."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from keyturn.domain.errors import BadInputError


def emit(render: Callable[[TextIO], None], output: Path | None) -> None:
    """Render fully in memory first, so a failure never leaves half a report behind."""
    buffer = io.StringIO()
    render(buffer)
    text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    directory = output.parent if str(output.parent) else Path(".")
    if not directory.is_dir():
        raise BadInputError(f"--output: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BadInputError(f"--output: cannot write {output}: {exc.strerror}") from None
