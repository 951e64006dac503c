"""The lease store for Lambda and several concurrent keyturn instances: one DynamoDB table.

Key schema: `pk` (hash: "lease", "role" or "meta") and `sk` (range: the lease id or role
name), so "every lease under a prefix" is one paginated Query with `begins_with`, read
strongly consistent. Every write is conditional: a new lease only if its id is unused
(`attribute_not_exists`), a state change only if `version` is still the one read (the
compare-and-set two revokers race on).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from keyturn.adapters.aws_errors import error_code, translate
from keyturn.domain.errors import OperationFailedError
from keyturn.domain.leases import Lease, Role
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LEASE = "lease"
ROLE = "role"
META = "meta"


class DynamoLeaseStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._ddb = client
        self.table = table

    @requires("dynamodb:CreateTable", "dynamodb:DescribeTable")
    def create_table(self) -> None:
        """For tests, the demo and first use; the SAM template creates it in production."""
        with translate("dynamodb:CreateTable", self.table):
            try:
                self._ddb.create_table(
                    TableName=self.table,
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as exc:
                if error_code(exc) != "ResourceInUseException":
                    raise
        with translate("dynamodb:DescribeTable", self.table):
            self._ddb.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )

    @requires("dynamodb:PutItem", "dynamodb:GetItem")
    def store_id(self) -> str:
        with translate("dynamodb:PutItem", self.table):
            try:
                self._ddb.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": META},
                        "sk": {"S": "store_id"},
                        "value": {"S": secrets.token_hex(8)},
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
        item = self._get(META, "store_id")
        assert item is not None
        return str(item["value"]["S"])

    # -- roles --------------------------------------------------------------------------

    @requires("dynamodb:PutItem")
    def put_role(self, role: Role) -> None:
        with translate("dynamodb:PutItem", self.table):
            self._ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": ROLE},
                    "sk": {"S": role.name},
                    "data": {"S": json.dumps(role.to_dict())},
                },
            )

    @requires("dynamodb:GetItem")
    def get_role(self, name: str) -> Role | None:
        item = self._get(ROLE, name)
        return Role.from_dict(json.loads(item["data"]["S"])) if item else None

    @requires("dynamodb:Query")
    def list_roles(self) -> list[Role]:
        return [Role.from_dict(json.loads(item["data"]["S"])) for item in self._query(ROLE, "")]

    @requires("dynamodb:DeleteItem")
    def delete_role(self, name: str) -> bool:
        with translate("dynamodb:DeleteItem", self.table):
            found = self._ddb.delete_item(
                TableName=self.table,
                Key={"pk": {"S": ROLE}, "sk": {"S": name}},
                ReturnValues="ALL_OLD",
            )
        return bool(found.get("Attributes"))

    # -- leases -------------------------------------------------------------------------

    @requires("dynamodb:PutItem")
    def create(self, lease: Lease) -> Lease:
        stored = _versioned(lease, 1)
        with translate("dynamodb:PutItem", lease.lease_id):
            try:
                self._ddb.put_item(
                    TableName=self.table,
                    Item=_item(stored),
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise OperationFailedError(f"lease {lease.lease_id} already exists") from exc
                raise
        return stored

    @requires("dynamodb:GetItem")
    def get(self, lease_id: str) -> Lease | None:
        item = self._get(LEASE, lease_id)
        return _lease(item) if item else None

    @requires("dynamodb:Query")
    def list_leases(self, prefix: str = "") -> list[Lease]:
        return [_lease(item) for item in self._query(LEASE, prefix)]

    @requires("dynamodb:PutItem")
    def replace(self, current: Lease, new: Lease) -> Lease | None:
        stored = _versioned(new, current.version + 1)
        with translate("dynamodb:PutItem", current.lease_id):
            try:
                self._ddb.put_item(
                    TableName=self.table,
                    Item=_item(stored),
                    ConditionExpression="version = :seen",
                    ExpressionAttributeValues={":seen": {"N": str(current.version)}},
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return None
                raise
        return stored

    # -- helpers --------------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with translate("dynamodb:GetItem", sk):
            found = self._ddb.get_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                ConsistentRead=True,
            )
        item = found.get("Item")
        return dict(item) if item else None

    def _query(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        condition = "pk = :pk AND begins_with(sk, :prefix)" if prefix else "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": pk}}
        if prefix:
            values[":prefix"] = {"S": prefix}
        items: list[dict[str, Any]] = []
        with translate("dynamodb:Query", f"{self.table} {prefix}".strip()):
            for page in self._ddb.get_paginator("query").paginate(
                TableName=self.table,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ConsistentRead=True,
            ):
                items.extend(dict(item) for item in page.get("Items", []))
        return items


def _versioned(lease: Lease, version: int) -> Lease:
    return dataclasses.replace(lease, version=version)


def _item(lease: Lease) -> dict[str, Any]:
    return {
        "pk": {"S": LEASE},
        "sk": {"S": lease.lease_id},
        "state": {"S": lease.state.value},
        "version": {"N": str(lease.version)},
        "data": {"S": json.dumps(lease.to_dict())},
    }


def _lease(item: dict[str, Any]) -> Lease:
    return Lease.from_dict(json.loads(item["data"]["S"]))
