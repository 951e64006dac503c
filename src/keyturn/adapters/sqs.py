"""SQS: the fan-out queue, one message per account.

SendMessageBatch takes at most ten entries; a batch can partly fail (each entry has its own
result), so the failed entries are named in the error rather than lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import OperationFailedError
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

BATCH = 10


class AccountQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._sqs = client
        self.url = queue_url

    @requires("sqs:SendMessage")  # SendMessageBatch is authorized as sqs:SendMessage
    def send(self, bodies: Sequence[Mapping[str, Any]]) -> int:
        """Send every body as one JSON message; the count sent. Raises naming failures."""
        failed: list[str] = []
        for start in range(0, len(bodies), BATCH):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(start + offset), "MessageBody": json.dumps(dict(body), sort_keys=True)}
                for offset, body in enumerate(bodies[start : start + BATCH])
            ]
            with translate("sqs:SendMessage", self.url):
                answer = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            for entry in answer.get("Failed", []):
                body = bodies[int(entry["Id"])]
                failed.append(f"{body.get('account_id', entry['Id'])}: {entry.get('Code', '')}")
        if failed:
            raise OperationFailedError(
                f"{len(failed)} of {len(bodies)} messages were not queued: {', '.join(failed[:5])}"
            )
        return len(bodies)
