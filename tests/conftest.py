"""Shared fixtures: real local servers (moto, OpenBao) and a clean environment per test.

Every test runs in its own temporary directory with keyturn's and Vault's environment
variables removed, so neither the developer's ~/.aws nor a stray keyturn.toml can change a
result. Servers listen on 127.0.0.1 only and are stopped at the end of the session.

The suite runs in parallel (`pytest -n 2`, pytest-xdist; see `make test`): each worker is
its own process, so every session fixture here (moto, OpenBao) is one server per worker, on
a free port, with its own state; nothing a test writes may be shared between workers (the
state directory below is per test for that reason).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.logging.constants import (
    LOGGER_ATTRIBUTE_POWERTOOLS_HANDLER as POWERTOOLS_HANDLER,
)
from aws_lambda_powertools.logging.constants import (
    LOGGER_ATTRIBUTE_PRECONFIGURED as PRECONFIGURED,
)

from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.vault import LocalVault, VaultUnavailableError

pytest_plugins = ["tests.rotate_fixtures", "tests.crash_matrix_summary"]

CLEARED_PREFIXES = ("KEYTURN_", "VAULT_", "AWS_", "BAO_")
# COLUMNS and LINES: a terminal's size is no part of a test's input (pytest-xdist exports
# COLUMNS=80 to its workers, which would fold every piped table); tests about width set it.
CLEARED_NAMES = ("NOTIFYKEYAGE", "SOURCEMAIL", "COLUMNS", "LINES")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--dist loadgroup` for pytest 9: pytest-xdist (3.8) marks a test of an xdist_group by
    appending "@group" to its node id through `item._nodeid`, which pytest 9 no longer reads,
    so every group was silently ignored. The same suffix, where pytest 9 keeps the id.
    xdist sets `loadgroup` on its workers only: a run without `-n` (or with `-p no:xdist`, as
    mutmut's runs are) has no such option and no groups to mark."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        groups = sorted(
            {
                str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                for m in item.iter_markers("xdist_group")
            }
        )
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            from _pytest.nodeid import coerce_node_id

            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(groups)}")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(CLEARED_PREFIXES) or name in CLEARED_NAMES:
            monkeypatch.delenv(name, raising=False)
    # No shared or user AWS config can leak in.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # keyturn's state directory (local journal key, lease database): this test's own, not
    # ~/.local/state, which every worker, every run and the developer share. A test that
    # sets XDG_STATE_HOME itself overrides this.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def fresh_lambda_loggers() -> Iterator[None]:
    """Lambda handlers log through Powertools, which configures a service's logger once per
    process, bound to the sys.stdout of that moment: for the test that happened to run
    first. Forgetting that configuration before each test binds it to this test's stdout
    (what capsys reads), whatever ran before in the same worker."""
    _forget_powertools_loggers()
    yield
    _forget_powertools_loggers()


def _forget_powertools_loggers() -> None:
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and getattr(logger, PRECONFIGURED, False):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            for attribute in (PRECONFIGURED, POWERTOOLS_HANDLER):
                if hasattr(logger, attribute):
                    delattr(logger, attribute)


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    with LocalAws() as server:
        yield server


@pytest.fixture
def aws(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """moto, emptied, with this process's boto3 pointed at it."""
    local_aws.reset()
    for name, value in local_aws.env().items():
        monkeypatch.setenv(name, value)
    # moto has no rate limits, and its SES reports the sandbox's 1 mail a second: pacing
    # at AWS's rates would only slow the suite. Pacing's own tests turn it back on.
    monkeypatch.setenv("KEYTURN_PACING_ENABLED", "false")
    return local_aws


def started_vault(**options: Any) -> Iterator[LocalVault]:
    """An OpenBao dev server for a fixture to `yield from`: skipped where it cannot start,
    always stopped. `options` go to LocalVault (e.g. `tls=True`)."""
    try:
        server = LocalVault(**options).start()
    except VaultUnavailableError as exc:
        pytest.skip(f"OpenBao dev server cannot start here: {exc}")
    try:
        yield server
    finally:
        server.stop()


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120, debug: bool = False
) -> subprocess.CompletedProcess[str]:
    """`keyturn ARGS` as a subprocess of this interpreter (no installed script needed);
    `debug` turns root logging to DEBUG on stderr first, botocore's included."""
    code = "from keyturn.cli.main import run; run()"
    if debug:
        code = "import logging; logging.basicConfig(level=logging.DEBUG); " + code
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def local_vault() -> Iterator[LocalVault]:
    yield from started_vault()


@pytest.fixture
def vault(local_vault: LocalVault, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An authenticated hvac client for the OpenBao dev server, env pointed at it."""
    for name, value in local_vault.env().items():
        monkeypatch.setenv(name, value)
    client = local_vault.client()
    assert client.is_authenticated()
    return client
