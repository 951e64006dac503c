"""A consumer check before promotion (issue 16, `[rotate] probe`): an AWS Lambda function
that keyturn invokes with the *pending* key's id after verification and before the store
serves it, so a team can refuse a rotation its consumers cannot take yet (a pinned key id
in a firewall rule, a consumer that caches the key id, a change freeze).

The request (RequestResponse, bounded by `rotate.probe_timeout_seconds`, never retried):

    {"source": "keyturn", "check": "pending key", "account": "111122223333",
     "user": "alice", "new_key_id": "AKIA...", "old_key_id": "AKIA...",
     "store": "secretsmanager", "location": "keyturn/111122223333/alice"}

Ids and keyturn's own words only: never a secret (the probe may read the store's pending
version itself if its role allows it).

The answer, documented shape: a JSON object whose `ok` is the JSON value `true`; an
optional `reason` (text) is shown when it is not. Everything else stops the rotation: a
FunctionError (the function raised), a status outside 2xx, a payload that is not such an
object (`"ok": "true"`, `1`, a list, no JSON, more than MAX_ANSWER bytes), a timeout, a
refused or unknown function.

Who writes the answer: whoever controls the probe function's code and configuration (and
anyone who may update it), usually the consuming team, not keyturn's operators. So it is
a claim with exactly one power: to stop this rotation. It cannot make keyturn skip a
check (verification has already happened, and nothing it says is read except `ok` and
`reason`), and its `reason` is text another principal wrote: shown cut to REASON_CHARS
printable characters, quoted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from keyturn.adapters.aws_errors import translate
from keyturn.adapters.sns import ACCOUNT_ID, KEY_ID, USER_NAME, WORD, _checked
from keyturn.domain.errors import KeyturnError, OperationFailedError
from keyturn.domain.model import LAMBDA_FUNCTION
from keyturn.permissions import requires

# A probe answers yes or no: more than this is not an answer keyturn reads.
MAX_ANSWER = 4096
REASON_CHARS = 120
ERROR_CHARS = 400
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class ProbeRefusedError(OperationFailedError):
    """The consumer probe did not say ok: the rotation stops before promotion."""


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """What the probe is told: ids and keyturn's words, checked as an event's are."""

    user: str
    new_key_id: str
    old_key_id: str | None
    location: str

    def payload(self, account: str, store: str) -> dict[str, Any]:
        return {
            "source": "keyturn",
            "check": "pending key",
            "account": _checked(ACCOUNT_ID, account, "account id"),
            "user": _checked(USER_NAME, self.user, "user name"),
            "new_key_id": _checked(KEY_ID, self.new_key_id, "new key id"),
            "old_key_id": None
            if self.old_key_id is None
            else _checked(KEY_ID, self.old_key_id, "old key id"),
            "store": _checked(WORD, store, "store kind"),
            "location": self.location,
        }


def shown(text: str) -> str:
    """Another principal's text as one short, printable, quoted token."""
    flat = _UNPRINTABLE.sub("?", text)
    cut = flat[:REASON_CHARS] + ("..." if len(flat) > REASON_CHARS else "")
    return repr(cut)


def judge(status: int, function_error: str | None, answer: bytes) -> str | None:
    """None when the probe said ok in the documented shape, else why not (one line)."""
    if function_error:
        return f"the function failed ({shown(function_error)})"
    if not 200 <= status < 300:
        return f"status {status}"
    if len(answer) > MAX_ANSWER:
        return f"an answer of more than {MAX_ANSWER} bytes"
    try:
        found = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        return "an answer that is not JSON"
    if not isinstance(found, dict):
        return 'an answer that is not a JSON object with "ok": true'
    if found.get("ok") is True:
        return None
    reason = found.get("reason")
    said = f": {shown(reason)}" if isinstance(reason, str) and reason else ""
    return f'not ok (expected "ok": true){said}'


class LambdaProbe:
    """Invokes the configured probe function synchronously, once per rotation."""

    def __init__(self, client: Any, function: str, *, account: str, store: str) -> None:
        if not LAMBDA_FUNCTION.fullmatch(function):
            raise ValueError(f"{function[:80]!r} is not a Lambda function name or ARN")
        self._lambda = client
        self._function = function
        self._account = account
        self._store = store

    @property
    def name(self) -> str:
        return self._function

    @requires("lambda:InvokeFunction")
    def check(self, request: ProbeRequest) -> None:
        """Lambda: Invoke (RequestResponse). ProbeRefusedError unless the answer is ok."""
        where = f"consumer probe {self._function}"
        try:
            payload = json.dumps(request.payload(self._account, self._store))
        except ValueError as exc:
            raise ProbeRefusedError(f"{where}: not invoked: {exc}") from None
        try:
            with translate("lambda:InvokeFunction", self._function):
                answer = self._lambda.invoke(
                    FunctionName=self._function,
                    InvocationType="RequestResponse",
                    Payload=payload.encode(),
                )
                body = answer["Payload"].read(MAX_ANSWER + 1)
        except KeyturnError as exc:  # one line, bounded: an error body is the far side's text
            said = " ".join(str(exc).split())
            raise ProbeRefusedError(f"{where}: {said[:ERROR_CHARS]}") from exc
        why = judge(int(answer.get("StatusCode", 0)), answer.get("FunctionError"), body)
        if why is not None:
            raise ProbeRefusedError(f"{where} said no: {why}")
