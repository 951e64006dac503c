"""One use per identity proof across every broker instance: a conditional write of the
proof's replay key (a hash of its signed values) into the lease table (`pk` "proof"), which
fails if any instance wrote it first. The item carries `expires_at` (epoch seconds) for the
table's TTL to delete it; a proof is refused by age long before that, so a forgotten item
would only waste space.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from keyturn.adapters.aws_errors import error_code, translate
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROOF = "proof"


class DynamoReplayGuard:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._ddb = client
        self.table = table

    def seen(self, key: str) -> bool:
        """Always False: the conditional write after STS's verdict is the one check (a
        read first would cost a call and a permission for a shortcut; a replayed proof
        costs one STS call, then is refused)."""
        return False

    @requires("dynamodb:PutItem")
    def first_use(self, key: str, until: datetime) -> bool:
        with translate("dynamodb:PutItem", self.table):
            try:
                self._ddb.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": PROOF},
                        "sk": {"S": key[:256]},
                        "expires_at": {"N": str(int(until.timestamp()))},
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True
