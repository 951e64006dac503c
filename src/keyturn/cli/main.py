"""Entry point: one line and an exit code for every failure, never a traceback."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

from keyturn.cli import exit_codes
from keyturn.cli.app import app
from keyturn.domain.errors import KeyturnError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status.

    click runs in standalone mode: it prints usage errors itself and exits 2 (typer vendors
    its own click, so its exception classes are not ours to catch). keyturn's own errors
    and anything unexpected are turned into one line here.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app(args=args, prog_name="keyturn", standalone_mode=True)
    except SystemExit as exc:
        return _status(exc.code)
    except KeyturnError as exc:
        if debug:
            err.print_exception()
        # One line, always: scripts grep it and humans read the first line only.
        err.print(Text.assemble(("error: ", "bold red"), " ".join(str(exc).split())))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return exit_codes.INTERRUPTED
    except Exception as exc:  # the last line of defence against tracebacks
        if debug:
            err.print_exception()
        err.print(
            Text.assemble(
                ("internal error: ", "bold red"),
                f"{type(exc).__name__}: {exc} ",
                "(run with --debug for the traceback, and please report it)",
            )
        )
        return exit_codes.FAILED
    return exit_codes.OK


def _status(code: object) -> int:
    if code is None:
        return exit_codes.OK
    if isinstance(code, int):
        return code
    return exit_codes.FAILED


def run() -> None:
    sys.exit(main())
