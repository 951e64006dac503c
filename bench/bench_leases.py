"""Issue and revoke N iam_user leases against a moto_server URL.

Reports AWS API calls per issue and per revoke, and keyturn's overhead over a bare boto3
loop that makes exactly the same IAM calls (no lease store, no claims, no validation).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.domain.leases import Role
from keyturn.services.leases import LeaseEngineSettings, LeaseService

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)


def _client(service: str, url: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIAKEYTURNBENCH0000",
        aws_secret_access_key="bench",  # noqa: S106 - moto accepts any credentials
    )


def _counted(client: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    return calls


def _reset(url: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310


def _keyturn(url: str, leases: int, arn: str) -> tuple[float, float, Counter[str], Counter[str]]:
    iam = _client("iam", url)
    calls = _counted(iam)
    with tempfile.TemporaryDirectory() as tmp:
        service = LeaseService(
            SqliteLeaseStore(Path(tmp) / "leases.db"),
            IamLeaseAdmin(iam),
            StsLeaseIssuer(_client("sts", url)),
            SystemClock(),
            LeaseEngineSettings(),
        )
        service.write_role(Role.build("bench", credential_type="iam_user", policy_arns=[arn]))
        service.store_id()
        start = time.perf_counter()
        ids = [
            service.issue("bench", timedelta(hours=1), "bench").lease.lease_id
            for _ in range(leases)
        ]
        issued = time.perf_counter()
        issue_calls = Counter(calls)
        calls.clear()
        for lease_id in ids:
            service.revoke(lease_id)
        done = time.perf_counter()
    return issued - start, done - issued, issue_calls, Counter(calls)


def _bare(url: str, leases: int, arn: str) -> tuple[float, float]:
    iam = _client("iam", url)
    start = time.perf_counter()
    names = []
    for i in range(leases):
        name = f"keyturn-bare-{i}"
        iam.create_user(
            UserName=name,
            Path="/",
            Tags=[
                {"Key": "keyturn:lease-id", "Value": f"aws/creds/bench/{i}"},
                {"Key": "keyturn:role", "Value": "bench"},
                {"Key": "keyturn:store", "Value": "bare"},
            ],
        )
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        iam.create_access_key(UserName=name)
        names.append(name)
    issued = time.perf_counter()
    for name in names:
        for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        for policy in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
            iam.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
        iam.list_user_policies(UserName=name)
        iam.list_groups_for_user(UserName=name)
        with contextlib.suppress(ClientError):
            iam.delete_login_profile(UserName=name)
        iam.list_mfa_devices(UserName=name)
        iam.list_ssh_public_keys(UserName=name)
        iam.list_signing_certificates(UserName=name)
        iam.delete_user(UserName=name)
    done = time.perf_counter()
    return issued - start, done - issued


def run(moto_url: str, runs: int = 1000) -> dict[str, Any]:
    """`runs` is the number of leases issued and then revoked."""
    results: dict[str, Any] = {"leases": runs}
    timings = {}
    for label in ("bare", "keyturn", "bare2", "keyturn2"):  # interleaved, twice: less drift
        _reset(moto_url)
        arn = _client("iam", moto_url).create_policy(PolicyName="bench", PolicyDocument=POLICY)[
            "Policy"
        ]["Arn"]
        if label.startswith("bare"):
            timings[label] = _bare(moto_url, runs, arn)
        else:
            issue_s, revoke_s, issue_calls, revoke_calls = _keyturn(moto_url, runs, arn)
            timings[label] = (issue_s, revoke_s)
            results["calls_per_issue"] = sum(issue_calls.values()) / runs
            results["calls_per_revoke"] = sum(revoke_calls.values()) / runs
            results["issue_calls"] = {k: v / runs for k, v in sorted(issue_calls.items())}
            results["revoke_calls"] = {k: v / runs for k, v in sorted(revoke_calls.items())}
    bare = min(sum(timings["bare"]), sum(timings["bare2"]))
    ours = min(sum(timings["keyturn"]), sum(timings["keyturn2"]))
    results["bare_seconds"] = round(bare, 2)
    results["keyturn_seconds"] = round(ours, 2)
    results["overhead_percent"] = round(100 * (ours - bare) / bare, 1)
    results["timings"] = {k: [round(x, 2) for x in v] for k, v in timings.items()}
    return results


if __name__ == "__main__":
    import sys

    print(json.dumps(run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000), indent=2))
