"""`keyturn --help` is drawn without typer (cli/top_help.py) and must be typer's, exactly.

Both are run as processes, so each gets its own console from the environment: plain (a
pipe: drawn without rich) and coloured (FORCE_COLOR: drawn by rich), at a narrow, the
default and a wide terminal; and the plain drawing in-process at every width from
MIN_PLAIN_WIDTH to 220. A difference means cli/command_table.py no longer matches app.py's
callback (an option added or reworded), or a new typer or rich draws help differently:
either way, update top_help.py.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import subprocess
import sys

import pytest
from typer import rich_utils

from keyturn.cli.top_help import MIN_PLAIN_WIDTH, RICH_SWITCHES, plain_help

TYPER_HELP = (
    "from keyturn.cli.app import app\n"
    "try:\n"
    "    app(args=['--help'], prog_name='keyturn', standalone_mode=False)\n"
    "except SystemExit:\n"
    "    pass\n"
)
LIGHT_HELP = "import sys\nfrom keyturn.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def drawn(code: str, *args: str, width: int, colour: bool) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in RICH_SWITCHES}
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
@pytest.mark.parametrize("width", [45, 50, 80, 140])
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


def typers_plain_help(width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    from keyturn.cli.app import app

    monkeypatch.setattr(rich_utils, "MAX_WIDTH", width)
    for name in RICH_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    written = io.StringIO()
    with contextlib.redirect_stdout(written), contextlib.suppress(SystemExit):
        app(args=["--help"], prog_name="keyturn", standalone_mode=False)
    return written.getvalue()


def test_the_plain_drawing_is_typers_at_every_width_it_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn_here = 0
    for width in range(MIN_PLAIN_WIDTH, 221):
        mine = plain_help(width)
        if mine is None:
            continue  # rich draws it
        drawn_here += 1
        assert mine == typers_plain_help(width, monkeypatch), f"width {width}"
    # It is the path actually taken: every usual width is drawn here, not by rich.
    assert drawn_here >= 150
    assert all(plain_help(width) is not None for width in (60, 80, 100, 120, 132, 200))


def test_narrower_than_it_takes_is_left_to_rich() -> None:
    assert plain_help(MIN_PLAIN_WIDTH - 1) is None
