"""Piped tables: whole identifiers, one line per row, markup shown as written."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import run_cli


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYTURN_", "COLUMNS"))}
    env["HOME"] = str(tmp_path)
    return env


def test_config_show_piped_keeps_every_key_whole(tmp_path: Path) -> None:
    """Piped, rich wrapped at 80 columns and printed `policy.notify_after_da…`."""
    config = tmp_path / "keyturn.toml"
    config.write_text('[policy]\nexempt_tags = { "[red]x[/red]" = "true" }\n', encoding="utf-8")
    run = run_cli(_env(tmp_path), "-c", str(config), "config", "show")
    assert run.returncode == 0, run.stderr
    assert "…" not in run.stdout
    for dotted in ("policy.notify_after_days", "enforce.deactivate_without_notice"):
        assert len([line for line in run.stdout.splitlines() if dotted in line]) == 1
    assert '{"[red]x[/red]": "true"}' in run.stdout
