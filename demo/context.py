"""What every demo stage receives: the local servers, a console, and a way to run keyturn.

Stages run the real `keyturn` command as a subprocess, exactly as a user would, so the demo
shows (and exercises) the CLI itself rather than the library behind it. When the demo's own
output is a terminal, the command runs on a pseudo-terminal, so its tables and colours look
exactly as they would in the user's shell.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import selectors
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.vault import LocalVault

# Inherited variables that could point the demo at a real account or change keyturn's
# configuration behind the reader's back; the subprocess never sees them.
SCRUBBED_PREFIXES = ("AWS_", "KEYTURN_", "VAULT_", "BAO_")
SCRUBBED_NAMES = frozenset({"NOTIFYKEYAGE", "SOURCEMAIL"})
# Values never echoed, even though the sandbox's are throwaway ones.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class DemoError(Exception):
    """A demo step did not do what the demo expected; the message says what and why."""


class StageSkipped(Exception):
    """A stage cannot run on this machine (for example, OpenBao could not start)."""


@dataclass
class DemoContext:
    """Handed to every `demo/stage_*.py` `run(ctx)`."""

    aws: LocalAws
    console: Console
    workdir: Path
    local_vault: LocalVault | None = None
    vault_problem: str | None = None

    @property
    def vault(self) -> LocalVault:
        """The OpenBao dev server; a stage that touches it is skipped when it is not running."""
        if self.local_vault is None:
            raise StageSkipped(f"OpenBao is not running: {self.vault_problem or 'not started'}")
        return self.local_vault

    # -- narrative helpers (optional; plain console.print works too) ------------------

    def step(self, title: str) -> None:
        """A sub-heading inside a stage."""
        self.console.print()
        self.console.print(Rule(Text(title, style="bold"), style="dim", align="left"))

    def say(self, text: str) -> None:
        """A line of narrative, in rich markup."""
        self.console.print(text, highlight=False)

    # -- running the CLI ----------------------------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The subprocess environment: ours, scrubbed, pointed at the local servers only."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(SCRUBBED_PREFIXES) and name not in SCRUBBED_NAMES
        }
        env.update(self.aws.env())
        # No shared config or credentials file: a default profile can never leak a real
        # account, region or endpoint into the demo.
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        if self.local_vault is not None:
            env.update(self.local_vault.env())
        env.update(extra or {})
        return env

    def keyturn(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        env: Mapping[str, str] | None = None,
        ok_codes: Sequence[int] = (0,),
        cwd: Path | None = None,
        show_output: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `keyturn ARGS...` against the local servers, echoing the command first.

        `cwd` defaults to the workdir. `check` raises DemoError when the exit status is not
        in `ok_codes`. With `show_output=False` the output is only captured (pipes, exact
        text): use that for output a stage parses. The returned stdout/stderr are plain
        text (no colour codes, `\\n` line ends) either way.
        """
        binary = Path(sys.executable).parent / "keyturn"
        if not binary.exists():
            raise DemoError(f"{binary} is missing: run `make demo`, which installs keyturn")
        where = (cwd or self.workdir).resolve()
        argv = [os.fspath(arg) for arg in args]
        self._echo(argv, env or {}, where)
        self.console.file.flush()
        tty = show_output and self.console.is_terminal and os.name == "posix"
        runner = _run_on_pty if tty else _run_piped
        sink = self.console.file if show_output else None
        code, out, err = runner(
            [str(binary), *argv], self._sized_env(env), where, sink, self.console.size
        )
        if code != 0:
            self.console.print(Text(f"exit status {code}", style="dim"))
        if check and code not in ok_codes:
            expected = " or ".join(str(c) for c in ok_codes)
            tail = err.strip().splitlines()[-3:] if err.strip() else []
            detail = f": {' / '.join(tail)}" if tail else ""
            raise DemoError(
                f"`keyturn {shlex.join(argv)}` exited with {code}, expected {expected}{detail}"
            )
        return subprocess.CompletedProcess([str(binary), *argv], code, out, err)

    def shown_path(self, path: Path) -> str:
        """A path as the reader would type it: relative to where they ran the demo."""
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def _sized_env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = self.env(extra)
        # rich (inside keyturn) sizes its tables from COLUMNS when it draws to a buffer.
        env.setdefault("COLUMNS", str(self.console.width))
        env.setdefault("LINES", str(self.console.height))
        return env

    def _echo(self, argv: list[str], extra: Mapping[str, str], where: Path) -> None:
        shown = []
        for arg in argv:
            path = Path(arg)
            if path.is_absolute():
                with contextlib.suppress(ValueError):
                    arg = str(path.relative_to(where))
            shown.append(arg)
        line = Text()
        line.append(f"{self.shown_path(where)} ", style="dim")
        line.append("$ ", style="bold green")
        for name, value in extra.items():
            line.append(f"{name}={'***' if _SECRET_NAME.search(name) else shlex.quote(value)} ")
        line.append("keyturn", style="bold")
        line.append(" " + shlex.join(shown), style="bold")
        self.console.print()
        self.console.print(line, soft_wrap=True)


def _run_piped(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    sink: IO[str] | None,
    size: tuple[int, int],
) -> tuple[int, str, str]:
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        return _pump(proc, proc.stdout.fileno(), proc.stderr.fileno(), sink)


def _run_on_pty(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    sink: IO[str] | None,
    size: tuple[int, int],
) -> tuple[int, str, str]:
    """stdout and stderr each on their own pseudo-terminal, so keyturn sees a terminal."""
    import fcntl
    import pty
    import struct
    import termios

    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    width, height = size
    for fd in (out_slave, err_slave):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        # Keep "\n" as written; our own terminal adds the "\r" once, when we pass it on.
        attrs = termios.tcgetattr(fd)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave
        )
    finally:
        os.close(out_slave)
        os.close(err_slave)
    with proc:
        return _pump(proc, out_master, err_master, sink, owned=True)


def _pump(
    proc: subprocess.Popen[bytes],
    out_fd: int,
    err_fd: int,
    sink: IO[str] | None,
    *,
    owned: bool = False,
) -> tuple[int, str, str]:
    """Copy both streams to `sink` as they arrive and keep them; stop the child on Ctrl-C."""
    chunks: dict[int, list[str]] = {out_fd: [], err_fd: []}
    decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in chunks}
    selector = selectors.DefaultSelector()
    for fd in chunks:
        selector.register(fd, selectors.EVENT_READ)
    try:
        while selector.get_map():
            for key, _ in selector.select():
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: a pty's other end closed (Linux)
                    data = b""
                if not data:
                    selector.unregister(fd)
                    continue
                text = decoders[fd].decode(data)
                chunks[fd].append(text)
                if sink is not None:
                    sink.write(text)
                    sink.flush()
        code = proc.wait()
    finally:
        selector.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if owned:
            os.close(out_fd)
            os.close(err_fd)
    return code, _plain("".join(chunks[out_fd])), _plain("".join(chunks[err_fd]))


def _plain(text: str) -> str:
    return _ANSI.sub("", text).replace("\r\n", "\n")
