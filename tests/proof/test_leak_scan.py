"""Invariant 5, proven over whole flows: no secret access key created during the run appears
in any output, log record, event file, report, database, exception text or repr, except the
one `creds` printed because the user asked for it.

The secrets come from the emulator itself (`ledger`, tests/proof/conftest.py), so the scan
also knows the secrets of keys that keyturn created in a subprocess and then deleted.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.domain.errors import KeyturnError
from keyturn.domain.leases import Role
from keyturn.handlers import enforce as enforce_handler
from keyturn.handlers import leases as leases_handler
from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.vault import LocalVault
from keyturn.services.leases import LeaseEngineSettings, LeaseService
from tests.conftest import run_cli
from tests.proof.conftest import Run, SecretLedger
from tests.rotate_fixtures import enroll_users

VAULT_TOKEN = "hvs.proof-vault-token-never-shown-1234"
SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@dataclass
class Context:
    aws_request_id: str = "proof-request"
    function_name: str = "keyturn"


class Scan:
    """Everything the run produced, labelled; the secrets each may legitimately hold."""

    def __init__(self, ledger: SecretLedger) -> None:
        self.ledger = ledger
        self.texts: list[tuple[str, str | bytes, int]] = []

    def add(self, label: str, text: str | bytes, allowed: int = 0) -> None:
        """`allowed`: how many secrets this text may hold (the ones `creds` printed)."""
        self.texts.append((label, text, allowed))

    def run(self, keyturn: Run, *args: str, allowed: int = 0, code: int | None = 0) -> str:
        done = keyturn(*args)
        label = "keyturn " + " ".join(args)
        if code is not None:
            assert done.returncode == code, (label, done.stdout, done.stderr)
        self.add(label + " (stdout)", done.stdout, allowed)
        self.add(label + " (stderr)", done.stderr)
        return done.stdout

    def leaks(self) -> list[str]:
        found = []
        for label, text, allowed in self.texts:
            hits = self.ledger.found_in(text)
            if len(hits) > allowed:
                found.append(f"{label}: {len(hits)} secret(s) {hits}, {allowed} allowed")
        return found


POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'


def seed(aws: LocalAws) -> str:
    """Users with keys of every age; returns a managed policy's ARN for lease roles."""
    aws.client("ses").verify_email_identity(EmailAddress="keys@example.com")
    aws.client("iam").create_group(GroupName="devs")
    for name, age, active in (("alice", 31, True), ("bob", 90, True), ("carol", 3, False)):
        aws.create_user(name, tags={"Contact": f"{name}@example.com"})
        aws.add_key(name, age_days=age, active=active, last_used_days_ago=1)
    aws.add_key("bob", age_days=400)  # two keys, one long overdue
    aws.create_user("dave", tags={"Contact": "dave@example.com"})
    aws.add_key("dave", age_days=60)
    arn: str = aws.client("iam").create_policy(PolicyName="p", PolicyDocument=POLICY)["Policy"][
        "Arn"
    ]
    return arn


def cli_flows(scan: Scan, keyturn: Run, tmp_path: Path, policy: str) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    for fmt in ("table", "json", "csv", "html"):
        scan.run(keyturn, "audit", "--key-ids", "--contacts", "-f", fmt, code=None)
        scan.run(keyturn, "audit", "-f", fmt, "-o", str(reports / f"audit.{fmt}"), code=None)
    scan.run(keyturn, "config", "show")
    scan.run(keyturn, "config", "show", "--json")
    events = tmp_path / "events"
    events.mkdir()
    scan.run(keyturn, "enforce", "--events", str(events / "dry.jsonl"), "--json")
    scan.run(keyturn, "enforce", "--apply", "--events", str(events / "apply.jsonl"))
    scan.run(keyturn, "enforce", "--apply", "--json", "--delete-after", "1")
    scan.run(
        keyturn,
        "role",
        "write",
        "dev",
        "--credential-type",
        "iam_user",
        "--max-ttl",
        "2h",
        "--policy-arn",
        policy,
        "--iam-group",
        "devs",
    )
    scan.run(
        keyturn,
        "role",
        "write",
        "fed",
        "--credential-type",
        "federation_token",
        "--policy-arn",
        policy,
    )
    leases = []
    for fmt in ("json", "env", "table"):
        out = scan.run(keyturn, "creds", "dev", "--ttl", "1h", "-f", fmt, allowed=1)
        assert len(scan.ledger.found_in(out)) == 1, f"creds -f {fmt} should print its secret"
    issued = json.loads(scan.run(keyturn, "creds", "dev", "-f", "json", allowed=1))
    leases.append(issued["lease_id"])
    # STS: the secret and the session token, both asked for. moto renders them in its
    # response template (no backend object holds them), so the ledger learns them here.
    fed = json.loads(scan.run(keyturn, "creds", "fed", "-f", "json", allowed=2))
    scan.ledger.add(fed["secret_key"], fed["session_token"])
    scan.run(keyturn, "lease", "list")
    scan.run(keyturn, "lease", "list", "-f", "json", "--all")
    scan.run(keyturn, "lease", "renew", leases[0], "--increment", "90m")
    scan.run(keyturn, "lease", "revoke", leases[0])
    scan.run(keyturn, "lease", "revoke-prefix", "aws/creds/dev")
    scan.run(keyturn, "lease", "tidy")
    # Failures, with and without --debug (a traceback is text too).
    scan.run(keyturn, "creds", "nope", code=2)
    scan.run(keyturn, "--debug", "lease", "revoke", "aws/creds/dev/nosuchlease", code=None)
    scan.run(keyturn, "--debug", "enforce", "--grace", "-1", code=2)
    unreachable = keyturn(
        "--debug",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "audit",
        extra={"KEYTURN_AWS_MAX_ATTEMPTS": "1"},
    )
    assert unreachable.returncode == 4, unreachable.stderr
    scan.add("unreachable endpoint, --debug", unreachable.stdout + unreachable.stderr)


def lambda_flows(
    scan: Scan,
    aws: LocalAws,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Powertools' loggers do not propagate (and keep the stream of the first test that made
    # them), so the capture handler is attached to them directly.
    from aws_lambda_powertools import Logger

    for name in ("keyturn-enforce", "keyturn-leases"):
        Logger(service=name)  # Powertools sets up its handler on first use; keep it first
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [*logger.handlers, caplog.handler])
    for name, value in {
        "SOURCEMAIL": "keys@example.com",
        "KEYTURN_ENFORCE_DRY_RUN": "false",
        "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
        "KEYTURN_LEASES_TIDY_MARGIN": "0s",
        "VAULT_TOKEN": VAULT_TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    for event in (SCHEDULED, {**SCHEDULED, "detail": {"dry_run": True}}, {"bad": 1}):
        try:
            scan.add("enforce handler result", repr(enforce_handler.handler(event, Context())))
        except KeyturnError as exc:
            scan.add("enforce handler error", f"{exc!s} {exc!r}")
    try:
        scan.add("leases handler result", repr(leases_handler.handler({}, Context())))
    except KeyturnError as exc:
        scan.add("leases handler error", f"{exc!s} {exc!r}")
    out, err = capfd.readouterr()
    scan.add("Lambda stdout (Powertools JSON logs)", out)
    scan.add("Lambda stderr", err)
    assert any(r.getMessage() == "keyturn enforce finished" for r in caplog.records)


def in_process_objects(scan: Scan, aws: LocalAws, tmp_path: Path) -> None:
    """reprs and exception texts of the objects that hold a secret."""
    iam = aws.client("iam")
    store = SqliteLeaseStore(tmp_path / "inproc.db")
    store.put_role(Role.build("ok", credential_type="iam_user", iam_groups=["devs"]))
    store.put_role(Role.build("broken", credential_type="iam_user", iam_groups=["no-such-group"]))
    service = LeaseService(
        store,
        IamLeaseAdmin(iam),
        StsLeaseIssuer(aws.client("sts")),
        SystemClock(),
        LeaseEngineSettings(tidy_margin=timedelta(0)),
    )
    issued = service.issue("ok")
    scan.add("repr(IssuedCredential)", repr(issued))
    scan.add("str(IssuedCredential)", str(issued))
    scan.add("repr(Lease)", repr(issued.lease))
    key = IamLeaseAdmin(iam).create_access_key(issued.lease.principal)
    scan.add("repr/str(NewKeySecret)", f"{key!r} {key!s}")
    scan.add("Lease.to_dict()", json.dumps(issued.lease.to_dict(), default=str))
    with pytest.raises(KeyturnError) as failed:
        service.issue("broken")  # CreateAccessKey never ran: rolled back at add_groups
    scan.add("issue failure", f"{failed.value!s} {failed.value!r}")
    revoked = service.revoke(issued.lease.lease_id)
    scan.add("RevokeOutcome", repr(revoked))
    store.close()


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_no_secret_leaks_anywhere_in_the_end_to_end_flows(
    keyturn: Run,
    aws: LocalAws,
    ledger: SecretLedger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # DEBUG everywhere, botocore included, as a Lambda with its log level set to DEBUG.
    caplog.set_level(logging.DEBUG)
    scan = Scan(ledger)
    policy = seed(aws)
    caplog.clear()  # the seeding client's own debug logs are the test's, not keyturn's
    cli_flows(scan, keyturn, tmp_path, policy)
    lambda_flows(scan, aws, monkeypatch, capfd, caplog)
    in_process_objects(scan, aws, tmp_path)
    for record in caplog.records:
        scan.add(f"log record {record.name}", record.getMessage() + repr(record.__dict__))
    for path in files_under(tmp_path):
        scan.add(f"file {path.relative_to(tmp_path)}", path.read_bytes())
    # The scan saw real work: secrets from seeding, from `creds` (IAM and STS), and files.
    assert len(ledger.secrets) >= 12, len(ledger.secrets)
    assert any(label.startswith("file reports/audit.html") for label, _, _ in scan.texts)
    assert any(label.startswith("file state/keyturn/leases.db") for label, _, _ in scan.texts)
    assert scan.leaks() == []


# -- rotation: the CLI into both stores, and the two rotation Lambdas ----------------------
#
# The CLI runs with Python logging at DEBUG on stderr (botocore then logs every request and
# answer body), so stderr is the log too. `--show-secret` is the one place a new secret may
# appear; the test proves it does appear there, so the scan is able to fail.


def debug_keyturn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`keyturn ARGS` as a subprocess, with root logging at DEBUG to stderr."""
    return run_cli(env, *args, timeout=180, debug=True)


def rotation_cli_flows(
    scan: Scan,
    aws: LocalAws,
    env: dict[str, str],
    store: str,
    stored_secret: Callable[[str], str],
    quiet: Callable[[], AbstractContextManager[None]],
) -> None:
    """Every rotation mode of the CLI for five users whose names start with `store`.
    `quiet()` keeps the test's own AWS calls out of the captured DEBUG records."""
    rita, sam, tess, uma, vic = (
        f"{store}-{name}" for name in ("rita", "sam", "tess", "uma", "vic")
    )
    with quiet():
        for user in (rita, sam, tess, uma, vic):
            aws.create_user(user)
            aws.add_key(user, age_days=100)
        enroll_users(rita, sam, tess, uma, vic, environ=env)  # as an operator did before

    def run(*args: str, allowed: int = 0, code: int = 0, crash_after: str = "") -> str:
        extra = {"KEYTURN_TEST_CRASH_AFTER": crash_after} if crash_after else {}
        done = debug_keyturn({**env, **extra}, *args)
        label = f"[{store}] keyturn {' '.join(args)}"
        if crash_after:
            label += f" (killed after {crash_after})"
        assert done.returncode == code, (label, done.stdout, done.stderr)
        scan.add(label + " stdout", done.stdout, allowed)
        scan.add(label + " stderr + DEBUG log", done.stderr)
        return done.stdout

    run("rotate", rita, "--dry-run")
    shown = run("rotate", rita, "--show-secret", allowed=1)
    # Asked for: the new secret is printed, and it is the one the store now serves.
    assert len(scan.ledger.found_in(shown)) == 1, f"[{store}] --show-secret printed no secret"
    assert stored_secret(rita) in shown
    run("rotate", sam)
    run("rotate", sam)  # a second time, so the store holds a previous entry to restore
    run("rotate", "--rollback", sam)
    # Killed with the new secret only in memory, and with it stored as pending; resumed.
    run("rotate", tess, code=-signal.SIGKILL, crash_after="create")
    run("rotate", uma, code=-signal.SIGKILL, crash_after="store")
    run("rotate", "--resume", tess, uma, "--dry-run")
    run("rotate", "--resume", tess, uma)
    run("rotate", vic, "--dry-run", "--show-secret", code=2)  # bad input: nothing to show
    run("rotate", vic, "--grace-days", "0")
    with quiet():
        aws.add_key(vic)  # two active keys: rotation refuses, with a traceback under --debug
    run("--debug", "rotate", vic, code=1)


def rotation_lambda_flows(
    scan: Scan,
    aws: LocalAws,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scheduled rotation Lambda and the Secrets Manager rotation function, in-process
    with DEBUG on: results, raised errors, Powertools logs and every log record."""
    from aws_lambda_powertools import Logger

    from keyturn.handlers import rotate as rotate_handler
    from keyturn.handlers import secretsmanager_rotation as sm_handler

    for name in ("keyturn-rotate", "keyturn-secretsmanager-rotation"):
        Logger(service=name)  # as in lambda_flows: Powertools' loggers do not propagate
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [*logger.handlers, caplog.handler])
    for name, value in {
        "KEYTURN_ROTATE_STORE": "secretsmanager",
        "KEYTURN_ROTATE_PATH": "lambda/{user}",
        "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING):  # the test's own seeding is not keyturn's log
        for user in ("walt", "xena"):
            aws.create_user(user)
        aws.add_key("walt", age_days=100)
        old = aws.add_key("xena", age_days=100)
        doc = {"UserName": "xena", "AccessKeyId": old.key_id, "SecretAccessKey": old.secret}
        arn = aws.client("secretsmanager").create_secret(
            Name="lambda/xena",
            SecretString=json.dumps(doc),  # rotate.path's name: bound
        )["ARN"]

    def call(label: str, function: Callable[[Any], Any], event: Any) -> None:
        try:
            scan.add(label + " result", repr(function(event)))
        except KeyturnError as exc:
            scan.add(label + " error", f"{exc!s} {exc!r}")

    call("rotate handler", rotate_handler.handler, {"users": ["walt"]})
    call(
        "rotate handler, a user that does not exist", rotate_handler.handler, {"users": ["nobody"]}
    )
    # Secrets Manager's four steps (createSecret retried) on seed 001's secret shape.
    token = str(uuid.uuid4())
    for step in ("createSecret", "createSecret", "setSecret", "testSecret", "finishSecret"):
        event = {"SecretId": arn, "ClientRequestToken": token, "Step": step}
        call(f"secretsmanager rotation {step}", sm_handler.handler, event)
    unknown = {"SecretId": arn, "ClientRequestToken": "x" * 36, "Step": "testSecret"}
    call("secretsmanager rotation, unknown token", sm_handler.handler, unknown)
    out, err = capfd.readouterr()
    scan.add("rotation Lambdas stdout (Powertools JSON logs)", out)
    scan.add("rotation Lambdas stderr", err)
    assert any(r.getMessage() == "rotation step done" for r in caplog.records)
    assert len(aws.client("iam").list_access_keys(UserName="xena")["AccessKeyMetadata"]) == 2


def test_no_secret_leaks_in_rotation_flows(
    aws: LocalAws,
    ledger: SecretLedger,
    local_vault: LocalVault,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    scan = Scan(ledger)
    sm = aws.client("secretsmanager")
    kv = local_vault.client().secrets.kv.v2
    caplog.clear()  # the test's own clients' debug logs are not keyturn's

    def in_secretsmanager(user: str) -> str:
        with caplog.at_level(logging.WARNING):
            found = sm.get_secret_value(SecretId=f"cli/{user}", VersionStage="AWSCURRENT")
        secret: str = json.loads(found["SecretString"])["SecretAccessKey"]
        return secret

    def in_vault(user: str) -> str:
        with caplog.at_level(logging.WARNING):
            found = kv.read_secret_version(
                path=f"cli/{user}", mount_point="secret", raise_on_deleted_version=True
            )
        secret: str = found["data"]["data"]["secret_key"]
        return secret

    common = {**cli_env, "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0"}
    sm_env = {
        **common,
        "KEYTURN_ROTATE_STORE": "secretsmanager",
        "KEYTURN_ROTATE_PATH": "cli/{user}",
    }
    vault_env = {
        **common,
        **local_vault.env(),
        "KEYTURN_ROTATE_STORE": "vault",
        "KEYTURN_ROTATE_PATH": "cli/{user}",
        "KEYTURN_VAULT_KV_MOUNT": "secret",
    }

    def quiet() -> AbstractContextManager[None]:
        return caplog.at_level(logging.WARNING)

    rotation_cli_flows(scan, aws, sm_env, "sm", in_secretsmanager, quiet)
    rotation_cli_flows(scan, aws, vault_env, "vault", in_vault, quiet)
    rotation_lambda_flows(scan, aws, monkeypatch, capfd, caplog)
    for record in caplog.records:
        scan.add(f"log record {record.name}", record.getMessage() + repr(record.__dict__))
    for path in files_under(tmp_path):
        scan.add(f"file {path.relative_to(tmp_path)}", path.read_bytes())
    # The scan saw real work: 13 seeded keys, 12 rotated in by the CLI and the Lambdas
    # (an orphan and a retried createSecret included), and DEBUG logs that carry bodies.
    assert len(ledger.secrets) >= 20, len(ledger.secrets)
    assert any(isinstance(text, str) and "DEBUG:botocore" in text for _, text, _ in scan.texts)
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    assert scan.leaks() == []


def test_the_vault_token_is_never_shown(keyturn: Run) -> None:
    for args in (("config", "show"), ("config", "show", "--json"), ("--debug", "config", "show")):
        done = keyturn(*args, extra={"VAULT_TOKEN": VAULT_TOKEN})
        assert done.returncode == 0, done.stderr
        assert VAULT_TOKEN not in done.stdout + done.stderr
        assert "***" in done.stdout
    # An invalid value next to it: the error names the key, never the token.
    bad = keyturn(
        "config", "show", extra={"VAULT_TOKEN": VAULT_TOKEN, "VAULT_ADDR": "ftp://" + VAULT_TOKEN}
    )
    assert bad.returncode == 2
    assert VAULT_TOKEN not in bad.stdout + bad.stderr.replace("ftp://" + VAULT_TOKEN, "")


def secret_scan_sees(ledger: SecretLedger, text: str) -> bool:
    return bool(ledger.found_in(text))


def test_the_scan_itself_catches_a_leak(aws: LocalAws, ledger: SecretLedger) -> None:
    """Guard against a scan that silently sees nothing (a broken ledger passes every test)."""
    aws.create_user("zed")
    key = aws.add_key("zed")
    assert secret_scan_sees(ledger, f"oops {key.secret} oops")
    assert not secret_scan_sees(ledger, f"fine {key.key_id} fine")


# -- the new clients: credential_process, its cache, exec, the broker, quarantine -----------


def test_no_secret_leaks_in_broker_process_exec_and_quarantine_flows(
    keyturn: Run, cli_env: dict[str, str], aws: LocalAws, ledger: SecretLedger, tmp_path: Path
) -> None:
    """`creds --format process` (issued, then cached), `exec` (with and without
    --revoke-on-exit), `broker serve` and its clients, `quarantine`: only the credential the
    user asked for appears, and only where it was asked for (stdout of process/creds, the
    child's environment, the private cache files); the broker's audit events, every stderr,
    the lease store and the incident record hold none."""
    import os
    import sys

    scan = Scan(ledger)
    policy = seed(aws)
    scan.run(keyturn, "role", "write", "dev", "--credential-type", "iam_user",
             "--policy-arn", policy)  # fmt: skip
    first = scan.run(keyturn, "creds", "dev", "--format", "process", allowed=1)
    again = scan.run(keyturn, "creds", "dev", "--format", "process", allowed=1)
    assert json.loads(first)["SecretAccessKey"] == json.loads(again)["SecretAccessKey"]
    assert len(ledger.found_in(first)) == 1  # the scan can see the secret it allows
    probe = "import os,sys; sys.exit(0 if os.environ.get('AWS_SECRET_ACCESS_KEY') else 3)"
    scan.run(keyturn, "exec", "dev", "--", sys.executable, "-c", probe)
    scan.run(keyturn, "exec", "dev", "--revoke-on-exit", "--", sys.executable, "-c", probe)
    scan.run(keyturn, "exec", "dev", "--", "no-such-command-xyz", code=127)
    # The broker: served by this process's (issuer's) keys, asked by a user with its own.
    aws.create_user("req")
    requester = aws.add_key("req")
    config = tmp_path / "broker.toml"
    config.write_text(
        f"""
[leases.roles.bdev]
credential_type = "iam_user"
policy_arns = ["{policy}"]
allowed_principals = ["arn:aws:iam::123456789012:user/req"]
"""
    )
    os.chmod(config, 0o600)
    events = tmp_path / "broker-events.jsonl"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "keyturn"), "-c", str(config), "broker", "serve",
         "--port", "0", "--events", str(events)],
        env={**cli_env, "KEYTURN_LEASES_SQLITE_PATH": str(tmp_path / "broker.db")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" listening on ")[1].split(" ")[0]
        as_req = {
            "AWS_ACCESS_KEY_ID": requester.key_id,
            "AWS_SECRET_ACCESS_KEY": requester.secret,
        }
        made = keyturn("creds", "bdev", "--broker", url, "-f", "json", extra=as_req)
        assert made.returncode == 0, made.stderr
        issued = json.loads(made.stdout)
        scan.ledger.add(requester.secret)
        scan.add("creds --broker -f json (stdout)", made.stdout, allowed=1)
        scan.add("creds --broker -f json (stderr)", made.stderr)
        assert len(ledger.found_in(made.stdout)) == 1
        for args, code in (
            (("creds", "bdev", "--broker", url, "--format", "process"), 0),
            (("lease", "list", "--broker", url), 0),
            (("lease", "renew", issued["lease_id"], "--broker", url), 0),
            (("creds", "nope", "--broker", url), None),
            (("lease", "revoke", issued["lease_id"], "--broker", url), 0),
        ):
            done = keyturn(*args, extra=as_req)
            label = "keyturn " + " ".join(args)
            assert code is None or done.returncode == code, (label, done.stderr)
            allowed = 1 if "process" in args else 0
            scan.add(label + " (stdout)", done.stdout, allowed)
            scan.add(label + " (stderr)", done.stderr)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    scan.add("broker serve stderr", err)
    # Quarantine: one of the seeded users' keys, reported exposed (dry run, then for real).
    exposed = aws.client("iam").list_access_keys(UserName="dave")["AccessKeyMetadata"][0]
    records = tmp_path / "incidents"
    records.mkdir()
    extra = {"KEYTURN_QUARANTINE_RECORD_LOCATION": str(records)}
    for args in (("--dry-run",), ("--json",)):
        done = keyturn("quarantine", exposed["AccessKeyId"], *args, extra=extra)
        assert done.returncode in (0, 1), done.stderr  # contained, or not (no store)
        scan.add(f"quarantine {args} (stdout)", done.stdout)
        scan.add(f"quarantine {args} (stderr)", done.stderr)
    for path in files_under(tmp_path):
        cached = path.is_relative_to(tmp_path / "cache")
        scan.add(f"file {path.relative_to(tmp_path)}", path.read_bytes(), 1 if cached else 0)
    assert events.read_text().count("broker.request") >= 5
    assert scan.leaks() == []
