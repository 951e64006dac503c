"""Amazon EventBridge: tell consumers a key changed, instead of letting them poll (issue 16).

On promotion keyturn puts an `Access Key Rotated` event, on the old key's retirement an
`Access Key Retired` event (source `keyturn`) on the configured bus (`rotate.event_bus`),
so an ordinary EventBridge rule can refresh a consumer: an ECS service update, an
external-secrets refresh, a CI secret sync.

What an event may hold: the account id, the IAM user name, access key ids, the store kind
and location (composed by keyturn from its own path template), and the rotation's state
word. Never a secret, and never text another principal wrote: names and ids are checked
against IAM's alphabets and left out (the event not sent) when they do not match.

A publishing failure is the caller's to report (keyturn.services.rotate): it never fails
a rotation, whose keys and store are already right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from keyturn.adapters.aws_errors import translate
from keyturn.adapters.sns import ACCOUNT_ID, KEY_ID, USER_NAME, WORD, _checked
from keyturn.domain.errors import OperationFailedError
from keyturn.permissions import requires

SOURCE = "keyturn"
DetailType = Literal["Access Key Rotated", "Access Key Retired"]
ROTATED: DetailType = "Access Key Rotated"
RETIRED: DetailType = "Access Key Retired"


@dataclass(frozen=True)
class KeyEvent:
    """One event's detail: ids and state words only (checked when the entry is made)."""

    detail_type: DetailType
    user: str
    old_key_id: str | None
    new_key_id: str | None
    location: str
    state: str

    def detail(self, account: str, store: str) -> dict[str, Any]:
        def key(value: str | None, what: str) -> str | None:
            return None if value is None else _checked(KEY_ID, value, what)

        return {
            "account": _checked(ACCOUNT_ID, account, "account id"),
            "user": _checked(USER_NAME, self.user, "user name"),
            "old_key_id": key(self.old_key_id, "old key id"),
            "new_key_id": key(self.new_key_id, "new key id"),
            "store": _checked(WORD, store, "store kind"),
            "location": self.location,
            "state": _checked(WORD, self.state, "state"),
        }


class EventBridgeEvents:
    """Puts keyturn's rotation events on one bus (name or ARN)."""

    def __init__(self, client: Any, bus: str, *, account: str, store: str) -> None:
        self._events = client
        self._bus = bus
        self._account = account
        self._store = store

    @property
    def bus(self) -> str:
        return self._bus

    @requires("events:PutEvents")
    def publish(self, event: KeyEvent) -> None:
        """EventBridge: PutEvents, one entry; a rejected entry raises like a failed call."""
        try:
            detail = event.detail(self._account, self._store)
        except ValueError as exc:
            raise OperationFailedError(f"event {event.detail_type!r} not sent: {exc}") from None
        entry = {
            "Source": SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(detail, sort_keys=True),
            "EventBusName": self._bus,
        }
        with translate("events:PutEvents", self._bus):
            answer = self._events.put_events(Entries=[entry])
        if answer.get("FailedEntryCount"):
            failed = (answer.get("Entries") or [{}])[0]
            raise OperationFailedError(
                f"events:PutEvents ({self._bus}): entry rejected "
                f"({failed.get('ErrorCode', 'unknown error')})"
            )
