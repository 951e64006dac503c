"""`keyturn --help` is drawn without typer (cli/top_help.py) and must be typer's, exactly.

Both are run as processes, so each gets its own console from the environment: plain (a
pipe) and coloured (FORCE_COLOR), at a narrow, the default and a wide terminal. A
difference means cli/command_table.py no longer matches app.py's callback (an option added
or reworded), or a new typer draws help differently: either way, update top_help.py.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys

import pytest

TYPER_HELP = (
    "from keyturn.cli.app import app\n"
    "try:\n"
    "    app(args=['--help'], prog_name='keyturn', standalone_mode=False)\n"
    "except SystemExit:\n"
    "    pass\n"
)
LIGHT_HELP = "import sys\nfrom keyturn.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def drawn(code: str, *args: str, width: int, colour: bool) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TERMINAL_WIDTH"}
    }
    env["COLUMNS"] = str(width)
    if colour:
        env["FORCE_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
@pytest.mark.parametrize("width", [50, 80, 140])
def test_the_light_help_is_typers_byte_for_byte(width: int, colour: bool) -> None:
    expected = drawn(TYPER_HELP, width=width, colour=colour)
    shown = drawn(LIGHT_HELP, "--help", width=width, colour=colour)
    assert expected.returncode == 0, expected.stderr
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    difference = "\n".join(
        difflib.unified_diff(
            expected.stdout.splitlines(), shown.stdout.splitlines(), "typer", "top_help", n=1
        )
    )
    assert shown.stdout == expected.stdout, difference


def test_no_arguments_shows_the_same_help_and_exits_2() -> None:
    bare = drawn(LIGHT_HELP, width=80, colour=False)
    asked = drawn(LIGHT_HELP, "--help", width=80, colour=False)
    assert (bare.returncode, asked.returncode) == (2, 0)
    assert bare.stdout == asked.stdout
    assert "Usage: keyturn [OPTIONS] COMMAND [ARGS]..." in bare.stdout


def test_anything_beside_help_still_goes_through_typer() -> None:
    shown = drawn(LIGHT_HELP, "--debug", "--help", width=80, colour=False)
    assert shown.returncode == 0
    assert "--endpoint-url" in shown.stdout
