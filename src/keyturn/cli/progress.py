"""No silent wait: a "waiting for iam:GetCredentialReport (12 s)" line on a terminal.

Every AWS and Vault call is recorded in `wiring.INFLIGHT` while it runs. While a command
runs, a small thread looks at the oldest call; once one has waited longer than `after`
seconds it shows a rich status line on stderr, and removes it when nothing waits. On a
non-terminal (CI, a pipe, a Lambda) nothing is shown: errors are the only stderr output.
A command's own live display (rotate's progress bar) takes precedence.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.errors import LiveError

SHOW_AFTER_SECONDS = 2.0
POLL_SECONDS = 0.25


class WaitingLine:
    """Decides, each tick, what the status line says (or that there is none).

    Kept apart from the thread and the terminal so the rule can be tested on its own.
    """

    def __init__(self, after: float = SHOW_AFTER_SECONDS) -> None:
        self.after = after

    def text(self, oldest: tuple[str, float] | None) -> str | None:
        if oldest is None:
            return None
        name, waited = oldest
        if waited < self.after:
            return None
        return f"waiting for {name} ({waited:.0f} s, Ctrl-C to stop)"


_ERR: list[Console] = []


def err_console() -> Console:
    """The CLI's one stderr console, shared so live displays know about each other."""
    if not _ERR:
        _ERR.append(Console(stderr=True, highlight=False))
    return _ERR[0]


@contextmanager
def waiting_shown(console: Console | None = None, *, force: bool = False) -> Iterator[None]:
    """Show the waiting line while the block runs, on a terminal only."""
    if not (force or sys.stderr.isatty()):
        yield
        return
    from keyturn.wiring import INFLIGHT

    console = console or err_console()
    line = WaitingLine()
    stop = threading.Event()

    def watch() -> None:
        status: Any = None
        try:
            while not stop.wait(POLL_SECONDS):
                text = line.text(INFLIGHT.oldest())
                busy = status is None and bool(console._live_stack)
                if text is None or busy:
                    if status is not None:
                        status.stop()
                        status = None
                    continue
                if status is None:
                    status = console.status(text)
                    try:
                        status.start()
                    except LiveError:  # another live display owns the terminal
                        status = None
                else:
                    status.update(text)
        finally:
            if status is not None:
                status.stop()

    thread = threading.Thread(target=watch, name="keyturn-waiting", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1)
