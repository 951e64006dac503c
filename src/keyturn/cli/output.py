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


def check_writable(output: Path | None) -> None:
    """Fail on a bad --output before any work is done."""
    if output is None:
        return
    directory = output.parent if str(output.parent) else Path(".")
    if not directory.is_dir():
        raise BadInputError(f"--output: directory {directory} does not exist")
    if output.is_dir():
        raise BadInputError(f"--output: {output} is a directory")


def emit(render: Callable[[TextIO], None], output: Path | None) -> None:
    """Render fully in memory first, so a failure never leaves half a report behind."""
    buffer = io.StringIO()
    render(buffer)
    text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    check_writable(output)
    directory = output.parent if str(output.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        # mkstemp makes 0600; a report holds no secret, so give it the usual umask mode.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BadInputError(f"--output: cannot write {output}: {exc.strerror}") from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
