"""The command tree loads lazily (issue 14's start-up target); not timed, only structural."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keyturn.cli.app import COMMANDS, load_command

HEAVY = ("boto3", "botocore", "pydantic", "hvac", "keyturn.wiring", "keyturn.config")


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    return set(done.stdout.split())


def test_help_imports_no_aws_sdk_and_no_settings_model() -> None:
    loaded = modules_after(
        "import contextlib, io\n"
        "from keyturn.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    assert "keyturn.cli.app" in loaded
    assert not {name for name in loaded if name.split(".")[0] in HEAVY or name in HEAVY}


def test_the_cached_process_path_imports_no_aws_sdk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    loaded = modules_after(
        "import os\n"
        f"os.environ['XDG_CACHE_HOME'] = {str(tmp_path)!r}\n"
        "from keyturn.cli.fast import cached_process\n"
        "cached_process(['creds', 'dev', '--format', 'process'])"
    )
    assert "keyturn.cli.fast" in loaded
    assert not {name for name in loaded if name.split(".")[0] in HEAVY or name in HEAVY}
    assert "typer" not in loaded


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_summary_is_the_commands_own(name: str) -> None:
    target, kind, summary, extra = COMMANDS[name]
    command = load_command(name, target, kind, extra, "markdown")
    assert (command.help or "").split("\n\n")[0].replace("\n", " ") == summary
