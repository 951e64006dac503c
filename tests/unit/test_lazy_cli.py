"""The command tree loads lazily (issue 14's start-up target); not timed, only structural."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from keyturn.cli.app import COMMANDS, load_command
from keyturn.cli.top_help import RICH_SWITCHES

HEAVY = ("boto3", "botocore", "pydantic", "hvac", "keyturn.wiring", "keyturn.config")
# What `keyturn --help` must not load when its output is plain: typer's help renderer pulls
# in markdown_it, pygments and rich.traceback, and rich itself is half of the rest
# (cli/top_help.py draws it without them; a terminal gets rich, still without typer).
HELP_HEAVY = ("typer", "click", "markdown_it", "pygments", "rich", "typing", "re")
# What the cached credential_process path must not load (run at every SDK start): each is
# milliseconds, and none is needed to read a cache entry (cli/fast.py, lease_cache.py).
FAST_PATH_HEAVY = ("typer", "rich", "typing", "dataclasses", "inspect", "tomllib", "secrets")


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    # Without the switches that make rich colour or size the help (CI sets GITHUB_ACTIONS):
    # the plain help is the path under guard.
    env = {name: value for name, value in os.environ.items() if name not in RICH_SWITCHES}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    return set(done.stdout.split())


def heavy(loaded: set[str], names: tuple[str, ...]) -> set[str]:
    return {name for name in loaded if name.split(".")[0] in names or name in names}


def test_top_level_help_imports_neither_typer_nor_markdown() -> None:
    loaded = modules_after(
        "import contextlib, io\n"
        "from keyturn.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    assert "keyturn.cli.top_help" in loaded
    assert not heavy(loaded, HEAVY + HELP_HEAVY)


def test_the_command_trees_help_imports_no_aws_sdk_and_no_settings_model() -> None:
    loaded = modules_after(
        "import contextlib, io\n"
        "from keyturn.cli.app import app\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        app(args=['--help'], prog_name='keyturn', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass"
    )
    assert "keyturn.cli.app" in loaded
    assert not heavy(loaded, HEAVY)


def test_the_cached_process_path_imports_no_aws_sdk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    loaded = modules_after(
        "import os\n"
        f"os.environ['XDG_CACHE_HOME'] = {str(tmp_path)!r}\n"
        "from keyturn.cli.fast import cached_process\n"
        "cached_process(['creds', 'dev', '--format', 'process'])"
    )
    assert "keyturn.cli.fast" in loaded
    assert not heavy(loaded, HEAVY + FAST_PATH_HEAVY)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_summary_is_the_commands_own(name: str) -> None:
    target, kind, summary, extra = COMMANDS[name]
    command = load_command(name, target, kind, extra, "markdown")
    assert (command.help or "").split("\n\n")[0].replace("\n", " ") == summary
