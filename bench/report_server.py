"""A stand-in IAM endpoint that serves one synthetic credential report, for huge accounts.

Seeding 100,000 users into moto takes far longer than the measurement itself, and only the
report matters to a plain `keyturn audit`: so this loopback server answers the two calls it
makes, GenerateCredentialReport and GetCredentialReport, in IAM's real query-protocol XML
(the CSV base64-encoded in `<Content>`, as AWS sends it). Anything else gets an IAM-style
error, so a code path that needs more calls fails loudly instead of being measured wrong.
"""

from __future__ import annotations

import base64
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs

ACCOUNT = "123456789012"
XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n"
)


def synthetic_report(users: int, seed: int = 100) -> tuple[bytes, int]:
    """The CSV of `users` users (10% keyless, 55% one key, 35% two) and its key count."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)

    def stamp(days: float) -> str:
        return (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S+00:00")

    lines = [HEADER]
    keys = 0
    for index in range(users):
        name = f"synthetic-user-{index:07d}"
        roll = rng.random()
        n_keys = 0 if roll < 0.10 else 1 if roll < 0.65 else 2
        slots = []
        for slot in (1, 2):
            if slot > n_keys:
                slots.append("false,N/A,N/A,N/A,N/A")
                continue
            keys += 1
            age = rng.uniform(0, 500)
            active = "true" if rng.random() >= 0.15 else "false"
            if rng.random() < 0.3:
                slots.append(f"{active},{stamp(age)},N/A,N/A,N/A")
            else:
                used = stamp(rng.uniform(0, age))
                slots.append(f"{active},{stamp(age)},{used},us-east-1,s3")
        created = stamp(600)
        lines.append(
            f"{name},arn:aws:iam::{ACCOUNT}:user/{name},{created},false,N/A,N/A,N/A,false,"
            f"{slots[0]},{slots[1]},false,N/A,false,N/A\n"
        )
    return "".join(lines).encode(), keys


class ReportServer:
    """`with ReportServer(csv_bytes) as server: server.url` -- a loopback IAM endpoint."""

    def __init__(self, report: bytes) -> None:
        generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        content = base64.b64encode(report).decode()
        self._answers = {
            "GenerateCredentialReport": _xml(
                "GenerateCredentialReport",
                "<State>COMPLETE</State><Description>Report generated</Description>",
            ),
            "GetCredentialReport": _xml(
                "GetCredentialReport",
                f"<Content>{content}</Content><ReportFormat>text/csv</ReportFormat>"
                f"<GeneratedTime>{generated}</GeneratedTime>",
            ),
        }
        self.calls: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        answers, calls = self._answers, self.calls

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                action = form.get("Action", ["?"])[0]
                calls[action] += 1
                body = answers.get(action)
                status = 200
                if body is None:
                    status = 400
                    body = (
                        f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>Sender</Type>'
                        f"<Code>InvalidAction</Code><Message>{action} is not served by the "
                        "bench's report server</Message></Error><RequestId>bench</RequestId>"
                        "</ErrorResponse>"
                    ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        return Handler

    def __enter__(self) -> ReportServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def _xml(action: str, result: str) -> bytes:
    return (
        f'<{action}Response xmlns="{XMLNS}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata></{action}Response>"
    ).encode()
