"""Entry point: one line and an exit code for every failure, never a traceback."""

from __future__ import annotations

import sys

from keyturn.cli import exit_codes
from keyturn.domain.errors import KeyturnError

# Not `typing.TYPE_CHECKING`: importing typing costs the cached credential_process path
# several milliseconds (issue 14); mypy treats any constant of this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from rich.console import Console


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (the contract is in cli/exit_codes.py).

    click runs outside standalone mode, so its usage errors reach us and become the same
    one `error:` line as keyturn's own (typer would draw a multi-line box). typer vendors
    its own click, so its exceptions are recognised by shape (`format_message`,
    `exit_code`), not by class.
    """
    args = sys.argv[1:] if argv is None else argv
    if args in ([], ["--help"]):  # the top-level help, drawn without typer (cli/top_help.py)
        from keyturn.cli.top_help import print_top_help

        print_top_help()
        return exit_codes.BAD_INPUT if not args else exit_codes.OK
    if "creds" in args:
        from keyturn.cli.fast import cached_process

        answered = cached_process(args)
        if answered is not None:
            return answered
    from rich.console import Console
    from rich.text import Text

    from keyturn.cli.app import app
    from keyturn.cli.progress import waiting_shown

    debug = "--debug" in args
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with waiting_shown():
            result = app(args=args, prog_name="keyturn", standalone_mode=False)
    except SystemExit as exc:
        return _status(exc.code)
    except KeyturnError as exc:
        if debug:
            err.print_exception()
        # One line, always: scripts grep it and humans read the first line only.
        _error(err, str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return exit_codes.INTERRUPTED
    except Exception as exc:  # the last line of defence against tracebacks
        usage = _usage_error(exc)
        if usage is not None:
            return _usage(err, exc, *usage)
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
    status = _status(result)
    if status == exit_codes.INTERRUPTED:  # typer turns Ctrl-C into Exit(130), silently
        err.print("interrupted")
    return status


def _error(err: Console, message: str) -> None:
    from rich.text import Text

    err.print(Text.assemble(("error: ", "bold red"), " ".join(message.split())))


def _usage_error(exc: Exception) -> tuple[str, int] | None:
    """(message, exit code) of a click error, or None for anything else."""
    if type(exc).__name__ == "Abort":  # click's Abort: EOF on a prompt, or Ctrl-C
        return "aborted", exit_codes.INTERRUPTED
    format_message = getattr(exc, "format_message", None)
    code = getattr(exc, "exit_code", None)
    if not callable(format_message) or not isinstance(code, int):
        return None
    return str(format_message()), code


def _usage(err: Console, exc: Exception, message: str, code: int) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":  # `keyturn lease`: help, as asked
        sys.stdout.write(message.rstrip("\n") + "\n")
        return exit_codes.BAD_INPUT
    context = getattr(exc, "ctx", None)
    where = getattr(context, "command_path", "keyturn") if context is not None else "keyturn"
    if code == exit_codes.BAD_INPUT:
        message = f"{message.rstrip('.')} (see `{where} --help`)"
    _error(err, message)
    return exit_codes.BAD_INPUT if code == exit_codes.BAD_INPUT else code


def _status(code: object) -> int:
    if code is None:
        return exit_codes.OK
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return exit_codes.FAILED


def run() -> None:
    sys.exit(main())
