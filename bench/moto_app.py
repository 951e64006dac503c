"""`python -m bench.moto_app -H HOST -p PORT`: moto_server, plus a bench-only side door.

Every AWS request goes to moto's own WSGI application (the one `moto_server` runs), untouched.
The wrapper adds, under `/bench-api/` (a path no AWS client uses):

- `POST /bench-api/calls/reset` and `GET /bench-api/calls`: a count of the AWS requests the
  server received, per service and operation. Counted here, in the server, because a botocore
  hook cannot see inside another program (Cloud Custodian runs in its own virtualenv): every
  tool is measured the same way, retries included, with no proxy adding latency to one side.
- `GET /bench-api/iam/key-status`: how many keys are Active / Inactive.
- `POST /bench-api/ses/production`: moto's SES always reports the sandbox quota (200 a day);
  this makes it report a production account's (50,000 a day, 14 a second), as an account
  that mails 1,000 key owners would have. Until the server stops.
- `POST /bench-api/iam/seed`: create users and keys straight in moto's IAM backend, with a
  key's creation date set in the past. No AWS API can backdate a key, and seeding 10,000 users
  through the API costs minutes of the bench's budget while measuring nothing. With
  `"with_secrets": true` the answer carries each key's secret too (for seeding a store).
- `POST /bench-api/secrets/seed`: create Secrets Manager secrets straight in the backend
  (`{"secrets": [{"name", "value"}]}`), for the same reason.

Operation names: the `Action` form field (query protocol: IAM, STS, SES), else the
`X-Amz-Target` header (JSON protocol), else the method and first path segment (REST).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

ACCOUNT = "123456789012"
PREFIX = "/bench-api/"
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def operation_of(environ: dict[str, Any], body: bytes) -> str:
    """`service:Operation` of one request, from its signature scope and its body."""
    match = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(1) if match else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    content_type = environ.get("CONTENT_TYPE", "")
    if body and "x-www-form-urlencoded" in content_type:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return f"{service}:{action[0]}"
    query_action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if query_action:
        return f"{service}:{query_action[0]}"
    segment = environ.get("PATH_INFO", "/").strip("/").split("/", 1)[0]
    return f"{service}:{environ.get('REQUEST_METHOD', '?')} /{segment}"


class BenchApp:
    """WSGI middleware: count every AWS request, answer /bench-api/, pass the rest to moto."""

    def __init__(self, moto: WsgiApp) -> None:
        self._moto = moto
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            return self._bench_api(path[len(PREFIX) :], environ, start_response)
        if path.startswith("/moto-api/"):
            return self._moto(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        operation = operation_of(environ, body)
        with self._lock:
            self.calls[operation] += 1
        return self._moto(environ, start_response)

    def _bench_api(
        self, route: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if route == "calls" and method == "GET":
            with self._lock:
                answer: Any = dict(sorted(self.calls.items()))
        elif route == "calls/reset" and method == "POST":
            with self._lock:
                self.calls.clear()
            answer = {}
        elif route == "iam/key-status" and method == "GET":
            answer = key_status()
        elif route == "ses/production" and method == "POST":
            answer = ses_production()
        elif route == "iam/seed" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            answer = seed_iam(json.loads(environ["wsgi.input"].read(length) or b"{}"))
        elif route == "secrets/seed" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            answer = seed_secrets(json.loads(environ["wsgi.input"].read(length) or b"{}"))
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown bench route\n"]
        payload = json.dumps(answer).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]


def seed_iam(document: dict[str, Any]) -> dict[str, Any]:
    """Create `document["users"]`: [{name, contact?, keys: [{age_days, active}]}].

    Goes through the backend's own create_user / create_access_key, so the users, tags and
    keys are exactly what the API would have made; only the creation date is then moved.
    """
    from moto.backends import get_backend

    backend = get_backend("iam")[ACCOUNT]["global"]  # type: ignore[index]
    now = datetime.now(UTC).replace(tzinfo=None)  # moto keeps naive UTC datetimes
    created: list[dict[str, Any]] = []
    with_secrets = bool(document.get("with_secrets"))
    for user in document.get("users", ()):
        tags = [{"Key": "Contact", "Value": user["contact"]}] if user.get("contact") else []
        backend.create_user("us-east-1", user["name"], tags=tags)
        keys = []
        secrets = []
        for key in user.get("keys", ()):
            made = backend.create_access_key(user["name"])
            made.create_date = now - timedelta(days=float(key.get("age_days", 0)))
            if not key.get("active", True):
                made.status = "Inactive"
            keys.append(made.access_key_id)
            secrets.append(made.secret_access_key)
        entry: dict[str, Any] = {"name": user["name"], "keys": keys}
        if with_secrets:
            entry["secrets"] = secrets
        created.append(entry)
    return {"users": created}


def seed_secrets(document: dict[str, Any]) -> dict[str, int]:
    """Create `document["secrets"]`: [{name, value}] in us-east-1, through the backend's own
    create_secret (one version labelled AWSCURRENT, as CreateSecret makes)."""
    from moto.backends import get_backend

    backend = get_backend("secretsmanager")[ACCOUNT]["us-east-1"]  # type: ignore[index]
    count = 0
    for secret in document.get("secrets", ()):
        backend.create_secret(
            name=secret["name"],
            secret_string=secret["value"],
            secret_binary=None,
            description=None,
            tags=None,
            kms_key_id=None,
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        count += 1
    return {"secrets": count}


def ses_production() -> dict[str, int]:
    from moto.ses import models

    quota = models.SESQuota
    if not getattr(quota, "_bench_production", False):
        made = quota.__init__

        def production(self: Any, sent: int) -> None:
            made(self, sent)
            self.max24_hour_send = 50_000
            self.max_send_rate = 14

        quota.__init__ = production  # type: ignore[method-assign]
        quota._bench_production = True  # type: ignore[attr-defined]
    return {"max24_hour_send": 50_000}


def key_status() -> dict[str, int]:
    """How many access keys are Active / Inactive: checks an enforcement run's effect."""
    from moto.backends import get_backend

    backend = get_backend("iam")[ACCOUNT]["global"]  # type: ignore[index]
    counts: Counter[str] = Counter()
    for user in list(backend.users.values()):
        for key in list(user.access_keys):
            counts[key.status] += 1
    return dict(counts)


def main(argv: Sequence[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(prog="python -m bench.moto_app", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    moto = DomainDispatcherApplication(create_backend_app)
    moto.debug = True  # as moto_server sets it
    run_simple(
        args.host,
        args.port,
        BenchApp(moto),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
