"""Start-up: `keyturn --help` and a cached `creds ROLE --format process`, beside
`python -c "import boto3"`, in the same run (issue 14).

An SDK runs its credential_process at every start, so the cached answer is keyturn's
hottest path. Each iteration runs the commands one after the other (the order rotates),
so a neighbour's load slows all of them alike; the reported figures are medians of the
wall times of whole processes, interpreter start included, and ratios to importing boto3
in the same iteration. The cached run is checked to hand out the same key every time and
to create no IAM user.

Bytecode is cached, as in any installed copy (pip compiles on install): the commands run
with a fresh PYTHONPYCACHEPREFIX, warmed by one untimed run of each, and without
PYTHONDONTWRITEBYTECODE. With that variable set (as in some shells and CI images) an
editable checkout compiles every keyturn module it imports at every start, which measures
the compiler, not keyturn.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Row, aws_env, median, moto_client, reset_moto

DEFAULT_SAMPLES = 21
KEYTURN = str(Path(sys.executable).with_name("keyturn"))
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)
HELP_TARGET_S = 0.25
CACHED_TARGET_S = 0.15


def _timed(command: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr[-300:]}")
    return elapsed, done.stdout


def run(moto_url: str, runs: int, users: int | None = None) -> dict[str, Any]:
    """`runs` x DEFAULT_SAMPLES samples of each command (`users` overrides the samples)."""
    samples = (users or DEFAULT_SAMPLES) * max(1, runs)
    reset_moto(moto_url)
    iam = moto_client("iam", moto_url)
    arn = iam.create_policy(PolicyName="bench", PolicyDocument=POLICY)["Policy"]["Arn"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **aws_env(moto_url),
            "XDG_STATE_HOME": f"{tmp}/state",
            "XDG_CACHE_HOME": f"{tmp}/cache",
            "KEYTURN_LEASES_READY_INTERVAL_SECONDS": "0",
            "PYTHONPYCACHEPREFIX": f"{tmp}/pycache",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        _timed(
            [KEYTURN, "role", "write", "dev", "--credential-type", "iam_user", "--policy-arn", arn],
            env,
            tmp,
        )
        _, first = _timed([KEYTURN, "creds", "dev", "--format", "process"], env, tmp)
        key_id = json.loads(first)["AccessKeyId"]
        commands = {
            "help": [KEYTURN, "--help"],
            "cached_process": [KEYTURN, "creds", "dev", "--format", "process"],
            "import_boto3": [sys.executable, "-c", "import boto3"],
            "python": [sys.executable, "-c", "pass"],
        }
        for command in commands.values():  # untimed: fills the bytecode cache
            _timed(command, env, tmp)
        times: dict[str, list[float]] = {name: [] for name in commands}
        ratios: dict[str, list[float]] = {"help": [], "cached_process": []}
        over_python: dict[str, list[float]] = {"help": [], "cached_process": []}
        problems: list[str] = []
        names = list(commands)
        for index in range(samples):
            order = names[index % len(names) :] + names[: index % len(names)]
            this: dict[str, float] = {}
            for name in order:
                elapsed, out = _timed(commands[name], env, tmp)
                this[name] = elapsed
                if name == "cached_process" and json.loads(out)["AccessKeyId"] != key_id:
                    problems.append(f"sample {index}: a new key was issued")
            for name, elapsed in this.items():
                times[name].append(elapsed)
            for name in ratios:
                ratios[name].append(this[name] / this["import_boto3"])
                over_python[name].append(this[name] / this["python"])
        users_after = len(iam.list_users()["Users"])
    medians = {name: round(median(values), 4) for name, values in times.items()}
    ratio_medians = {name: round(median(values), 3) for name, values in ratios.items()}
    python_ratios = {name: round(median(values), 2) for name, values in over_python.items()}
    return {
        "params": {"samples": samples},
        "medians": {
            **medians,
            "ratio_to_import_boto3": ratio_medians,
            "ratio_to_python": python_ratios,
            "iam_users": users_after,
        },
        "rows": _rows(medians, ratio_medians, python_ratios, users_after, problems),
        "raw": {name: [round(x, 4) for x in values] for name, values in times.items()},
    }


def _rows(
    medians: dict[str, float],
    ratios: dict[str, float],
    python: dict[str, float],
    users: int,
    problems: list[str],
) -> list[Row]:
    return [
        Row(
            metric="`keyturn --help`, median",
            value=f"{medians['help']:.3f} s ({ratios['help']:.2f}x `import boto3`)",
            target=f"<= {HELP_TARGET_S} s",
            ok=medians["help"] <= HELP_TARGET_S,
            note=f"{python['help']:.1f}x `python -c pass` (medians of per-sample ratios)",
        ),
        Row(
            metric="cached `keyturn creds ROLE --format process`, median",
            value=f"{medians['cached_process']:.3f} s "
            f"({ratios['cached_process']:.2f}x `import boto3`)",
            target=f"<= {CACHED_TARGET_S} s",
            ok=medians["cached_process"] <= CACHED_TARGET_S,
            note=f"{python['cached_process']:.1f}x `python -c pass`",
        ),
        Row(metric='`python -c "import boto3"`, median', value=f"{medians['import_boto3']:.3f} s"),
        Row(metric='`python -c "pass"`, median', value=f"{medians['python']:.3f} s"),
        Row(
            metric="cached runs that issued a new lease",
            value=str(len(problems)),
            target="0 (1 IAM user in all)",
            ok=not problems and users == 1,
            note="; ".join(problems[:3]),
        ),
    ]
