"""moto's server, in-process, plus the seeding helpers real AWS would not allow.

In-process (ThreadedMotoServer) because the emulator's backend objects are then reachable
from Python: a test can backdate a key's creation or give it a last-used date, which no AWS
API can do. Clients still talk HTTP to it, exactly as they would to AWS.
"""

from __future__ import annotations

import io
import json
import logging
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import boto3

ACCOUNT = "123456789012"
REGION = "us-east-1"
# The role AWS Organizations creates in every account it makes (moto does not check it).
MEMBER_ROLE = "OrganizationAccountAccessRole"
FAKE_KEY_ID = "AKIAKEYTURNSANDBOX00"
FAKE_SECRET = "keyturn-sandbox-not-a-secret"  # noqa: S105 - moto accepts any credentials


@dataclass(frozen=True)
class SeededKey:
    user: str
    key_id: str
    secret: str

    def __repr__(self) -> str:
        return f"SeededKey(user={self.user!r}, key_id={self.key_id!r}, secret=***)"


class LocalAws:
    """Start moto on a free loopback port; use as a context manager.

    `aws_managed_policies=True` makes moto load its copy of AWS's managed policies
    (`arn:aws:iam::aws:policy/ReadOnlyAccess` and the rest), which it leaves out by default:
    the sandbox then accepts documented examples as they are written for AWS. It costs
    about half a second per reset, so tests leave it off. moto reads the switch from one
    process-wide setting (and keeps its backends per process, so starting one resets them);
    the setting is restored when this server stops. (A standalone
    `moto_server` takes it from the environment: `MOTO_IAM_LOAD_MANAGED_POLICIES=true`.)
    """

    def __init__(self, *, aws_managed_policies: bool = False) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self._clients: dict[str, Any] = {}
        self._managed_policies = aws_managed_policies
        self._managed_before: bool | None = None

    def start(self) -> LocalAws:
        if self._managed_policies:
            from moto.core.config import default_user_config

            iam_config = default_user_config.setdefault("iam", {})
            self._managed_before = iam_config.get("load_aws_managed_policies", False)
            iam_config["load_aws_managed_policies"] = True
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        if self._managed_policies:
            self.reset()  # moto's backends are per process: rebuild IAM's with the policies
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._managed_before is not None:
            from moto.core.config import default_user_config

            default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = (
                self._managed_before
            )
            self._managed_before = None

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- talking to it --------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment that points boto3 (and so keyturn) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self, service: str, **credentials: str) -> Any:
        """A client for `service`; with the sandbox's admin credentials it is built once."""
        if not credentials:
            if service not in self._clients:
                self._clients[service] = self._new_client(service)
            return self._clients[service]
        return self._new_client(service, **credentials)

    def _new_client(self, service: str, **credentials: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=credentials.get("key_id", FAKE_KEY_ID),
            aws_secret_access_key=credentials.get("secret", FAKE_SECRET),
        )

    def client_in_account(self, service: str, account: str, role: str = MEMBER_ROLE) -> Any:
        """A client acting inside another account of the emulator, through `role`.

        moto keeps one backend per account and routes a request by the account of the
        credentials that signed it, so assuming a role is how a test or the demo seeds a
        member account.
        """
        credentials = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="keyturn-sandbox"
        )["Credentials"]
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )

    def create_organization(self, *member_names: str) -> list[str]:
        """An Organization with this account as management and one member per name; returns
        the members' account ids, in the order of the names."""
        org = self.client("organizations")
        org.create_organization(FeatureSet="ALL")
        return [
            org.create_account(AccountName=name, Email=f"{name}@example.com")[
                "CreateAccountStatus"
            ]["AccountId"]
            for name in member_names
        ]

    def reset(self) -> None:
        self._post("/moto-api/reset", b"")

    def set_authentication(self, enabled: bool) -> None:
        """Turn moto's signature and IAM policy checks on or off (DESIGN.md).

        The body is how many requests moto still lets through unchecked: 0 means "check
        from now on", infinity means "never check" (its default).
        """
        self._post("/moto-api/reset-auth", b"0" if enabled else b"inf")

    def data(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=30) as response:  # noqa: S310 - loopback URL we built
            result: dict[str, Any] = json.load(response)
        return result

    def _post(self, path: str, body: bytes) -> None:
        # text/plain: urllib's default form type makes moto's Flask app swallow the body
        request = urllib.request.Request(  # noqa: S310 - loopback URL we built
            f"{self.url}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - loopback URL
            pass

    # -- seeding ------------------------------------------------------------------------

    def probe_function(self, name: str, *answers: str, **credentials: str) -> str:
        """A Lambda function (its ARN) whose next invocations answer `answers` in turn.

        moto runs a function's code only in Docker; its Docker-less Lambda (switched on
        here, for the whole server) answers each Invoke with the next queued text instead,
        which is all a test of keyturn's probe needs: the request goes over the wire as to
        AWS, the answer comes back as AWS would give it (status 200, no FunctionError).
        `credentials` (key_id, secret) sign the setup calls when authentication is on.
        """
        self._post("/moto-api/config", json.dumps({"lambda": {"use_docker": False}}).encode())
        iam, lam = self.client("iam", **credentials), self.client("lambda", **credentials)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        try:
            role = iam.create_role(
                RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust)
            )
        except iam.exceptions.EntityAlreadyExistsException:
            role = iam.get_role(RoleName=f"{name}-role")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("probe.py", "def handler(event, context):\n    return {}\n")
        arn = lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="probe.handler",
            Code={"ZipFile": buffer.getvalue()},
        )["FunctionArn"]
        self.queue_probe_answers(*answers)
        return str(arn)

    def queue_probe_answers(self, *answers: str) -> None:
        """Queue what the next Invokes (any function) answer; see `probe_function`."""
        body = {"results": list(answers), "region": REGION}
        self._post("/moto-api/static/lambda-simple/response", json.dumps(body).encode())

    def create_user(
        self, name: str, *, tags: dict[str, str] | None = None, path: str = "/"
    ) -> None:
        iam = self.client("iam")
        iam.create_user(
            UserName=name,
            Path=path,
            Tags=[{"Key": key, "Value": value} for key, value in (tags or {}).items()],
        )

    def add_key(
        self,
        user: str,
        *,
        age_days: float = 0,
        active: bool = True,
        last_used_days_ago: float | None = None,
        service: str = "s3",
        region: str = REGION,
    ) -> SeededKey:
        """Create a key, then rewrite its creation (and last-use) time in the emulator."""
        created = self.client("iam").create_access_key(UserName=user)["AccessKey"]
        key = SeededKey(user, created["AccessKeyId"], created["SecretAccessKey"])
        if not active:
            self.client("iam").update_access_key(
                UserName=user, AccessKeyId=key.key_id, Status="Inactive"
            )
        if age_days:
            self.backdate(key.key_id, age_days)
        if last_used_days_ago is not None:
            self.set_last_used(key.key_id, last_used_days_ago, service=service, region=region)
        return key

    def backdate(self, key_id: str, age_days: float) -> None:
        # moto's access keys hold naive UTC datetimes
        self._key(key_id).create_date = _naive_utc(datetime.now(UTC) - timedelta(days=age_days))

    def set_last_used(
        self, key_id: str, days_ago: float, *, service: str = "s3", region: str = REGION
    ) -> None:
        from moto.iam.models import AccessKeyLastUsed

        when = datetime.now(UTC) - timedelta(days=days_ago)
        self._key(key_id).last_used = AccessKeyLastUsed(_naive_utc(when), service, region)

    def _key(self, key_id: str) -> Any:
        for user in _iam_backend().users.values():
            for key in user.access_keys:
                if key.access_key_id == key_id:
                    return key
        raise KeyError(key_id)


def _iam_backend() -> Any:
    from moto.backends import get_backend

    return get_backend("iam")[ACCOUNT]["global"]


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)
