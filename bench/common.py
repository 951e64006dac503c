"""Helpers every benchmark module shares: timing, call counting, the fake AWS environment."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

_PEAK_RSS = Path(__file__).resolve().parent / "peak_rss.py"
REGION = "us-east-1"
FAKE_KEY_ID = "AKIAKEYTURNBENCH0000"
FAKE_SECRET = "keyturn-bench-not-a-secret"  # noqa: S105 - moto accepts any credentials

# Variables that could point boto3 or keyturn elsewhere than the bench server.
_FOREIGN_PREFIXES = ("AWS_", "KEYTURN_", "VAULT_", "BAO_")
_FOREIGN_NAMES = ("NOTIFYKEYAGE", "SOURCEMAIL")


class _RowRequired(TypedDict):
    metric: str
    value: str


class Row(_RowRequired, total=False):
    """One line of the printed table. `ok` is None when the metric has no target."""

    target: str
    ok: bool | None
    note: str


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def aws_env(
    moto_url: str, base: Mapping[str, str] | None = None, *, paced: bool = True
) -> dict[str, str]:
    """`base` (default os.environ) without anything AWS/keyturn-related, pointed at moto.

    A developer's own AWS_PROFILE or keyturn.toml must never leak into a measurement, so the
    keyturn subprocess gets this environment and runs in an empty directory.

    `paced=False` turns keyturn's request pacing off (`pacing.enabled`): for the benches
    against bare moto, which models no AWS limit and measures keyturn's own work per call.
    Paced at AWS-like rates, they would measure `pacing.iam` (10/s) instead; the
    latency-model benches (enforce_model, rotate, quiet, trail) keep pacing on, sized to
    the model's limits.
    """
    source = os.environ if base is None else base
    env = {
        name: value
        for name, value in source.items()
        if not name.startswith(_FOREIGN_PREFIXES) and name not in _FOREIGN_NAMES
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    if not paced:
        env["KEYTURN_PACING_ENABLED"] = "false"
    return env


@contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Run in-process code (boto3's credential chain reads os.environ) under `env`."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def moto_client(
    service: str,
    url: str,
    *,
    key_id: str = FAKE_KEY_ID,
    secret: str = FAKE_SECRET,
    config: Any = None,
) -> Any:
    """A boto3 client for `service` at `url` (moto, or a proxy in front of it), signed with
    the bench's fake key unless another is given (a new key, to prove it works)."""
    import boto3

    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )


def problems_row(metric: str, problems: Sequence[str]) -> Row:
    """The row that says whether the tools compared did the same work, and if not, why."""
    return Row(
        metric=metric,
        value="yes" if not problems else "NO",
        ok=not problems,
        note="; ".join(problems)[:200],
    )


def reset_moto(moto_url: str) -> None:
    """POST /moto-api/reset: every benchmark starts from an empty account."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", data=b"", method="POST")  # noqa: S310 - loopback URL
    with urllib.request.urlopen(request, timeout=60):  # noqa: S310 - loopback URL
        pass


class CallCounter:
    """Counts HTTP requests per API operation through botocore's `before-send` event.

    `before-send` fires once per attempt, so retries are counted too: this is what the
    server (and AWS's rate limiter) sees, not what the code asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def on_send(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.counts[operation] += 1

    def attach(self, events: Any, service: str = "iam") -> None:
        """`events`: a boto3 session's or a client's `meta.events` emitter."""
        events.register(f"before-send.{service}", self.on_send)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))


@dataclass
class Stopwatch:
    """`with Stopwatch() as sw: ...` then `sw.seconds`."""

    seconds: float = 0.0
    _start: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._start


# -- the bench server's side door (bench/moto_app.py) -------------------------------------


def _bench_api(moto_url: str, route: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback URL
        f"{moto_url}/bench-api/{route}",
        data=data if data is not None else (b"" if route.endswith("reset") else None),
        method="GET" if data is None and not route.endswith("reset") else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - loopback URL
        return json.loads(response.read() or b"null")


def reset_server_calls(moto_url: str) -> None:
    """Zero the server's per-operation request counter."""
    _bench_api(moto_url, "calls/reset")


def server_calls(moto_url: str) -> dict[str, int]:
    """`{"iam:ListUsers": 1, ...}`: requests the server received since the last reset."""
    calls: dict[str, int] = _bench_api(moto_url, "calls")
    return calls


@contextmanager
def counted_calls(moto_url: str) -> Iterator[dict[str, int]]:
    """`with counted_calls(url) as calls:` -- `calls` is filled in when the block ends."""
    calls: dict[str, int] = {}
    reset_server_calls(moto_url)
    yield calls
    calls.update(server_calls(moto_url))


def seed_iam(
    moto_url: str,
    users: Sequence[Mapping[str, Any]],
    batch: int = 2_000,
    *,
    with_secrets: bool = False,
) -> list[dict[str, Any]]:
    """Create users and (backdated) keys straight in the server's IAM backend.

    Returns `[{name, keys: [key id], secrets?: [secret]}]` (secrets only if asked)."""
    created: list[dict[str, Any]] = []
    for start in range(0, len(users), batch):
        payload = {"users": list(users[start : start + batch]), "with_secrets": with_secrets}
        created.extend(_bench_api(moto_url, "iam/seed", payload)["users"])
    return created


def seed_secrets(moto_url: str, secrets: Sequence[Mapping[str, str]], batch: int = 2_000) -> None:
    """Create Secrets Manager secrets `[{name, value}]` straight in the server's backend."""
    for start in range(0, len(secrets), batch):
        _bench_api(moto_url, "secrets/seed", {"secrets": list(secrets[start : start + batch])})


def run_process(
    argv: Sequence[str], env: dict[str, str], cwd: str, timeout: float
) -> tuple[subprocess.CompletedProcess[bytes], float, float]:
    """Run `argv`; return it, its wall seconds and its peak RSS in MiB.

    Through bench/peak_rss.py, so the RSS is the program's own (see there why). Output goes
    to temporary files, not pipes, so a large report never blocks the child. The launcher
    costs a few milliseconds of wall time, the same for every tool measured.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss,
    ):
        launcher = [sys.executable, "-I", "-S", str(_PEAK_RSS), rss.name, "--"]
        started = time.perf_counter()
        process = subprocess.Popen(
            [*launcher, *argv],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        completed = subprocess.CompletedProcess(
            list(argv), process.returncode, out.read(), err.read()
        )
        kib = int(rss.read().strip() or 0)
    return completed, wall, kib / 1024


def key_status(moto_url: str) -> dict[str, int]:
    """`{"Active": n, "Inactive": m}` over every IAM user, read in the server."""
    counts: dict[str, int] = _bench_api(moto_url, "iam/key-status")
    return counts


def ses_production(moto_url: str) -> None:
    """Make the server's SES report a production quota instead of the sandbox's 200 a day."""
    _bench_api(moto_url, "ses/production", {})
