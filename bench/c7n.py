"""Cloud Custodian, the peer: its own virtualenv, one policy run, its output read back.

c7n pins its own boto3, so it lives in bench/.venv-c7n (made on first use with
`python3 -m venv` + `pip install c7n`), never in keyturn's environment. Its boto3 (>= 1.28)
honours AWS_ENDPOINT_URL, so it talks to the bench's moto server like any other client;
`ensure_venv` refuses an older one rather than let it reach a real AWS endpoint.

Every run gets `--cache-period 0` (c7n otherwise reuses a resource list for 15 minutes, which
would time a cache read, not a scan) and a fresh HOME and output directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REGION, aws_env, run_process

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-c7n"
PYTHON = VENV / "bin" / "python"
CUSTODIAN = VENV / "bin" / "custodian"
MIN_BOTO3 = (1, 28)
RUN_TIMEOUT_S = 1_800.0


def credential_age_filter(days: int) -> dict[str, Any]:
    """Custodian's `credential` filter for "a key older than `days`", read from the report
    at once (`report_delay: 0`), as both the scan and the enforce bench compare against."""
    return {
        "type": "credential",
        "key": "access_keys.last_rotated",
        "value_type": "age",
        "value": days,
        "op": "greater-than",
        "report_delay": 0,
    }


def ensure_venv() -> dict[str, str]:
    """Create the virtualenv once; return the versions of c7n, boto3 and botocore in it."""
    if not CUSTODIAN.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "c7n"],
            check=True,
        )
    probe = subprocess.run(
        [
            str(PYTHON),
            "-c",
            "import json; from importlib.metadata import version as v; "
            "print(json.dumps({p: v(p) for p in ('c7n', 'boto3', 'botocore')}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    versions: dict[str, str] = json.loads(probe.stdout)
    major, minor = (int(part) for part in versions["boto3"].split(".")[:2])
    if (major, minor) < MIN_BOTO3:
        raise RuntimeError(
            f"c7n's boto3 {versions['boto3']} predates AWS_ENDPOINT_URL support (1.28): "
            "it would not talk to the local server"
        )
    return versions


@dataclass
class C7nRun:
    wall_s: float
    peak_rss_mb: float
    resources: list[dict[str, Any]]


def run_policy(moto_url: str, policy: dict[str, Any], timeout: float = RUN_TIMEOUT_S) -> C7nRun:
    """`custodian run` one policy against the server; its resources.json, time and RSS."""
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-c7n-") as workdir:
        home = Path(workdir)
        policy_file = home / "policy.json"
        policy_file.write_text(json.dumps({"policies": [policy]}), encoding="utf-8")
        output = home / "out"
        env = aws_env(moto_url)
        env["HOME"] = workdir
        completed, wall, rss = run_process(
            [
                str(CUSTODIAN),
                "run",
                "--cache-period",
                "0",
                "--region",
                REGION,
                "-s",
                str(output),
                str(policy_file),
            ],
            env,
            workdir,
            timeout,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"custodian run exited {completed.returncode}: "
                f"{completed.stderr.decode('utf-8', 'replace')[-2000:]}"
            )
        resources_file = output / policy["name"] / "resources.json"
        resources: list[dict[str, Any]] = json.loads(resources_file.read_text(encoding="utf-8"))
    return C7nRun(wall_s=wall, peak_rss_mb=rss, resources=resources)
