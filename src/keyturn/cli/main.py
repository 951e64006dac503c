"""Entry point: one line and an exit code for every failure, never a traceback."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.text import Text

from keyturn.cli import exit_codes
from keyturn.cli.app import app
from keyturn.domain.errors import KeyturnError


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        result = app(args=argv, prog_name="keyturn", standalone_mode=False)
    except KeyturnError as exc:
        if debug:
            err.print_exception()
        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exit_codes.BAD_INPUT
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("interrupted")
        return exit_codes.INTERRUPTED
    except Exception as exc:
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
    return int(result) if isinstance(result, int) else exit_codes.OK


def run() -> None:
    sys.exit(main())
