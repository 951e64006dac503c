"""`make demo`: keyturn end to end against local servers, one stage per capability.

    python -m demo                  # every stage present, in order
    python -m demo audit leases     # only these

Starts moto (AWS) and OpenBao (Vault's API) on 127.0.0.1, runs each `demo/stage_<name>.py`
that exists (`def run(ctx: DemoContext) -> None`), and always stops both servers, after an
error or Ctrl-C too. Exit status: 0 when every stage that ran passed, 1 otherwise, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from demo.context import (
    SCRUBBED_NAMES,
    SCRUBBED_PREFIXES,
    DemoContext,
    DemoError,
    StageSkipped,
)

__all__ = ["STAGES", "DemoContext", "DemoError", "StageSkipped", "main"]

# In story order; a stage whose module is absent is skipped without a word.
STAGES = [
    "stage_audit",
    "stage_enforce",
    "stage_rotate",
    "stage_quarantine",
    "stage_leases",
    "stage_broker",
    "stage_deploy",
]
MARKER = ".keyturn-demo"  # only a directory holding this is ever emptied


@dataclass
class Outcome:
    stage: str
    status: str  # passed, skipped, failed
    seconds: float
    note: str = ""


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    console = Console(highlight=False)
    try:
        stages = _select(args.stages)
    except ValueError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 2
    started = time.monotonic()
    _set_real_aws_aside()
    workdir = _prepare(Path(args.workdir))
    console.print(
        Panel(
            "keyturn, end to end. Everything runs on this machine: moto stands in for AWS "
            "and OpenBao (Vault's API) for Vault, both on 127.0.0.1. Your own AWS "
            "credentials and config are set aside: nothing here can reach a real account.\n"
            f"Reports are written to [bold]{escape(_shown(workdir))}/[/].",
            title="[bold]keyturn demo[/]",
            border_style="cyan",
            expand=False,
        )
    )
    outcomes: list[Outcome] = []
    interrupted = False
    ctx: DemoContext | None = None
    try:
        ctx = _start_servers(console, workdir)
        for name in stages:
            outcome = _run_stage(ctx, name)
            if outcome is not None:
                outcomes.append(outcome)
    except KeyboardInterrupt:
        interrupted = True
        console.print("\n[yellow]interrupted[/]")
    except DemoError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        outcomes.append(Outcome("servers", "failed", 0.0, str(exc)))
    finally:
        _stop_servers(console, ctx)
    _summary(console, outcomes, time.monotonic() - started)
    if interrupted:
        return 130
    return 1 if not outcomes or any(o.status == "failed" for o in outcomes) else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("stages", nargs="*", help="stages to run, e.g. audit (default: all)")
    parser.add_argument("--workdir", default="demo-output", help="where reports go")
    return parser.parse_args(argv)


def _select(wanted: list[str]) -> list[str]:
    if not wanted:
        return STAGES
    chosen = []
    for name in wanted:
        module = name if name.startswith("stage_") else f"stage_{name}"
        if importlib.util.find_spec(f"demo.{module}") is None:
            present = [s.removeprefix("stage_") for s in STAGES if _exists(s)]
            raise ValueError(f"no demo stage {name!r} (present: {', '.join(present)})")
        chosen.append(module)
    return chosen


def _exists(stage: str) -> bool:
    return importlib.util.find_spec(f"demo.{stage}") is not None


def _set_real_aws_aside() -> None:
    """No inherited credential, profile, endpoint or config file reaches boto3, in this
    process (the seeding) or in the keyturn subprocesses (which copy this environment)."""
    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES) or name in SCRUBBED_NAMES:
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def _prepare(workdir: Path) -> Path:
    """A fresh output directory; an old one is emptied only if the demo made it."""
    if (workdir / MARKER).is_file():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by `make demo`; emptied on the next run\n")
    return workdir.resolve()


def _start_servers(console: Console, workdir: Path) -> DemoContext:
    try:
        from keyturn.sandbox.aws import LocalAws
        from keyturn.sandbox.vault import LocalVault, VaultUnavailableError
    except ImportError as exc:
        raise DemoError(f"{exc}: the demo needs keyturn's `servers` extra (`make demo`)") from exc

    aws = LocalAws(aws_managed_policies=True)  # the README's examples name AWS's policies
    with console.status("starting moto, the AWS emulator"):
        try:
            aws.start()
        except BaseException:
            with contextlib.suppress(Exception):
                aws.stop()
            raise
    ctx = DemoContext(aws=aws, console=console, workdir=workdir)
    console.print(f"[green]✓[/] moto (AWS emulator) on {aws.url}")
    vault = LocalVault()
    with console.status("starting OpenBao, Vault's API in dev mode"):
        try:
            vault.start()
        except VaultUnavailableError as exc:
            vault.stop()
            ctx.vault_problem = str(exc)
        except BaseException:  # Ctrl-C while it boots: never leave the process behind
            vault.stop()
            raise
        else:
            ctx.local_vault = vault
    if ctx.local_vault is not None:
        console.print(
            f"[green]✓[/] OpenBao (Vault API) dev server on {vault.addr}, in memory, "
            "with a root token made for this run"
        )
    else:
        console.print(
            f"[yellow]![/] OpenBao could not start ({escape(ctx.vault_problem or '')}); "
            "stages that need Vault will be skipped"
        )
    return ctx


def _stop_servers(console: Console, ctx: DemoContext | None) -> None:
    if ctx is None:
        return
    for name, server in (("OpenBao", ctx.local_vault), ("moto", ctx.aws)):
        if server is None:
            continue
        try:
            server.stop()
        except Exception as exc:  # stop the other one regardless
            console.print(f"[yellow]![/] could not stop {name}: {escape(str(exc))}")
    console.print()
    console.print("[green]✓[/] local servers stopped")


def _run_stage(ctx: DemoContext, name: str) -> Outcome | None:
    if not _exists(name):
        return None
    console = ctx.console
    started = time.monotonic()
    try:
        module = importlib.import_module(f"demo.{name}")
    except Exception as exc:  # one broken stage must not hide the others
        console.print(f"[bold red]✗ {name} does not import:[/] {escape(repr(exc))}")
        return Outcome(name, "failed", 0.0, f"import: {exc}")
    console.print()
    console.rule(Text(_title(module, name), style="bold cyan"), style="cyan")
    try:
        module.run(ctx)
    except StageSkipped as exc:
        console.print(f"[yellow]skipped:[/] {escape(str(exc))}")
        return Outcome(name, "skipped", time.monotonic() - started, str(exc))
    except DemoError as exc:
        console.print(Panel(escape(str(exc)), title="stage failed", border_style="red"))
        return Outcome(name, "failed", time.monotonic() - started, str(exc))
    except Exception as exc:  # show the bug, then carry on with the next stage
        console.print_exception(max_frames=8)
        return Outcome(name, "failed", time.monotonic() - started, repr(exc))
    return Outcome(name, "passed", time.monotonic() - started)


def _title(module: ModuleType, name: str) -> str:
    title = getattr(module, "TITLE", None)
    if isinstance(title, str) and title:
        return title
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else name.removeprefix("stage_")


def _summary(console: Console, outcomes: list[Outcome], seconds: float) -> None:
    if not outcomes:
        return
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    styles = {"passed": "green", "skipped": "yellow", "failed": "bold red"}
    for outcome in outcomes:
        table.add_row(
            outcome.stage.removeprefix("stage_"),
            Text(outcome.status, style=styles[outcome.status]),
            f"{outcome.seconds:.1f}s",
            Text(outcome.note[:100], style="dim"),
        )
    console.print(table)
    console.print(f"demo finished in {seconds:.1f}s")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
