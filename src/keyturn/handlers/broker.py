"""Lambda: `keyturn.handlers.broker.handler` behind a function URL (AuthType NONE).

Why NONE and not AWS_IAM: with AWS_IAM, Lambda would check the signature but the caller
would need `lambda:InvokeFunctionUrl` granted by a policy, and the broker would learn the
caller only from `requestContext.authorizer.iam` without a proof bound to the request. The
proof in the request (a signed sts:GetCallerIdentity bound to this broker's server id and to
the request's own SHA-256) is what authenticates, the same check `keyturn broker serve` makes;
an unauthenticated request costs one STS call at most and creates nothing. Reserved
concurrency bounds how many run at once.

State kept across invocations of one warm instance, on purpose: the per-caller rate buckets
(per instance; see docs/broker.md). The service itself is built per invocation from the
environment (KEYTURN_*), with the DynamoDB lease store, whose table also records each used
proof (one use across all instances).
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from keyturn.adapters.event_log import JsonStreamSink
from keyturn.config import load_settings
from keyturn.domain.errors import KeyturnError
from keyturn.services.broker import BrokerRequest, MemoryReplayGuard
from keyturn.services.caller_limits import CallerLimits

# This instance's buckets and (SQLite store only) its memory of used proofs.
_limits: CallerLimits | None = None
_memory = MemoryReplayGuard()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _limits
    from keyturn.wiring_broker import build_broker, build_caller_limits

    sink = JsonStreamSink(sys.stdout)
    try:
        loaded = load_settings()
        if _limits is None:
            _limits = build_caller_limits(loaded.settings)
        service = build_broker(loaded, sink, limits=_limits, memory=_memory)
    except KeyturnError as exc:
        sink.emit({"event": "broker.request", "status": 500, "outcome": str(exc)})
        return _response(500, {"error": "the broker is misconfigured; see its log"})
    http = (event.get("requestContext") or {}).get("http") or {}
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else b""
    except ValueError:
        sink.emit({"event": "broker.request", "status": 400, "outcome": "body is not base64"})
        return _response(400, {"error": "request body is not valid base64"})
    if not event.get("isBase64Encoded"):
        body = str(raw).encode()
    response = service.handle(
        BrokerRequest(str(http.get("method", "")), str(event.get("rawPath", "")), body)
    )
    return _response(response.status, response.body, response.headers)


def _response(status: int, body: Any, headers: Any = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            **dict(headers or {}),
        },
        "body": json.dumps(body),
    }
