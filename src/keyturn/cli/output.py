"""Writing a rendered report to stdout or, atomically, to `--output PATH`.

Either way a failure half-way never leaves half a report behind: a file is written beside
its target and renamed into place at the end; stdout gets the report only once it is whole.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, TypeVar

from rich.console import Console

from keyturn.domain.errors import BadInputError

T = TypeVar("T")


# Piped tables are as wide as their content: a script or a log must get every identifier
# whole, never folded at 80 columns or cut with an ellipsis.
PIPED_WIDTH = 10_000


def stdout_console() -> Console:
    """A console for a table on stdout: the terminal's width, or unbounded when piped
    (COLUMNS, if set, still wins: rich reads it)."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console(highlight=False)
    return Console(highlight=False, width=PIPED_WIDTH)


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
    """Render fully in memory first (table, HTML: they sort), then write it out."""
    buffer = io.StringIO()
    render(buffer)
    text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with _atomic_file(output) as handle:
        handle.write(text)


def emit_stream(render: Callable[[TextIO], T], output: Path | None) -> T:
    """Render straight to disk as the data streams in; return what `render` returns.

    To `--output`: into a temporary file beside it, renamed over it at the end. To stdout:
    into an anonymous temporary file, copied to stdout once complete. Memory stays flat,
    and an error mid-way (the audit can fail on its first key or its last) leaves nothing.
    """
    if output is not None:
        with _atomic_file(output) as handle:
            return render(handle)
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
        result = render(spool)
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout, 1 << 20)
    sys.stdout.flush()
    return result


@contextmanager
def _atomic_file(output: Path) -> Iterator[TextIO]:
    """A text handle on a temporary file beside `output`, renamed over it if all went well."""
    check_writable(output)
    directory = output.parent if str(output.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        # mkstemp makes 0600; a report holds no secret, so give it the usual umask mode.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BadInputError(f"--output: cannot write {output}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
