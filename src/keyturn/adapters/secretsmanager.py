"""AWS Secrets Manager as a SecretStore: staging labels are the rotation's pending state.

One secret per user (name from a template such as `iam/{account}/{user}`), document
`{"UserName", "AccessKeyId", "SecretAccessKey"}` (seed 001's shape). A new key is written
as a version labelled AWSPENDING whose VersionId is the rotation token
(ClientRequestToken), and becomes AWSCURRENT only by `promote`; Secrets Manager then moves
AWSPREVIOUS to the old version by itself.

Every read names its VersionStage: without it moto (and a racing label move) may return
another version than the one meant.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import BadInputError, NotFoundError, OperationFailedError
from keyturn.domain.model import NewKeySecret
from keyturn.domain.rotation import StoredEntry, StoreView
from keyturn.domain.store_paths import render
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"
STAGES = {"current": CURRENT, "pending": PENDING, "previous": PREVIOUS}


@requires("secretsmanager:DescribeSecret")
def secret_name(client: SecretsManagerClient, secret_id: str) -> str:
    """The secret's name, from Secrets Manager itself (`secret_id` may be a name or an ARN).

    A secret's name is set at CreateSecret and never changes, so it is a fact about the
    secret that no value writer can alter (the rotation function binds the user by it).
    """
    with translate("secretsmanager:DescribeSecret", secret_id):
        found = client.describe_secret(SecretId=secret_id)
    return str(found["Name"])


class SecretsManagerStore:
    def __init__(
        self,
        client: SecretsManagerClient,
        name_template: str,
        *,
        account: str = "",
        kms_key_id: str | None = None,
        user_field: str = "UserName",
        key_field: str = "AccessKeyId",
        secret_field: str = "SecretAccessKey",  # noqa: S107 - a field name
    ) -> None:
        self._sm = client
        self._template = name_template
        self._account = account
        self._kms = kms_key_id
        self._user_field = user_field
        self._key_field = key_field
        self._secret_field = secret_field
        # Version ids seen by the last describe, to spare a call when promoting.
        # None records "no such secret" (put_pending then creates it without a failed put).
        self._stages: dict[str, dict[str, list[str]] | None] = {}

    def location(self, user: str) -> str:
        """The secret's name, checked against Secrets Manager's name grammar
        (domain.store_paths) before any call uses it."""
        return render(self._template, account=self._account, user=user, store="secretsmanager")

    # -- reads ---------------------------------------------------------------------------

    @requires("secretsmanager:DescribeSecret")
    def describe(self, user: str) -> StoreView:
        stages = self._version_stages(user)
        if stages is None:
            return StoreView()

        def entry(stage: str) -> StoredEntry | None:
            version = _version_with(stages, stage)
            return None if version is None else StoredEntry(token=version)

        return StoreView(current=entry(CURRENT), pending=entry(PENDING), previous=entry(PREVIOUS))

    @requires("secretsmanager:GetSecretValue", "kms:Decrypt")
    def key_id(self, user: str, stage: str) -> str | None:
        doc = self._document(user, stage=STAGES[stage])
        if doc is None:
            return None
        value = doc.get(self._key_field)
        return value if isinstance(value, str) and value else None

    @requires("secretsmanager:GetSecretValue", "kms:Decrypt")
    def read_pending(self, user: str, token: str) -> NewKeySecret | None:
        doc = self._document(user, stage=PENDING, version=token)
        return None if doc is None else self._secret(user, doc)

    @requires("secretsmanager:GetSecretValue", "kms:Decrypt")
    def read_current(self, user: str) -> NewKeySecret | None:
        doc = self._document(user, stage=CURRENT)
        return None if doc is None else self._secret(user, doc)

    @requires("secretsmanager:GetSecretValue", "kms:Decrypt")
    def read_document(self, user: str, stage: str = CURRENT) -> dict[str, Any] | None:
        """The whole JSON document at a stage (the rotation handler keeps extra fields)."""
        return self._document(user, stage=stage)

    # -- writes --------------------------------------------------------------------------

    @requires("secretsmanager:PutSecretValue", "kms:GenerateDataKey")
    def put_pending(
        self,
        user: str,
        secret: NewKeySecret,
        token: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """PutSecretValue(ClientRequestToken=token, VersionStages=[AWSPENDING]).

        Idempotent: the same token and document again is accepted as a no-op. A secret that
        does not exist yet is first created holding a placeholder *without* a key, because
        Secrets Manager labels a secret's first version AWSCURRENT whatever we ask, and
        an unverified key must never be current (invariant 4).
        """
        doc = dict(extra or {})
        doc.update(
            {
                self._user_field: user,
                self._key_field: secret.access_key_id,
                self._secret_field: secret.secret_access_key,
            }
        )
        body = json.dumps(doc)
        name = self.location(user)
        known = self._stages.get(user, ...)
        if known is None:  # describe() just saw no secret: create it, skip a failing put
            self._create_placeholder(user, name)
        try:
            self._put(name, token, body)
        except NotFoundError:
            self._create_placeholder(user, name)
            self._put(name, token, body)
        self._remember_pending(user, token)

    def _put(self, name: str, token: str, body: str) -> None:
        with translate("secretsmanager:PutSecretValue", name):
            self._sm.put_secret_value(
                SecretId=name, ClientRequestToken=token, SecretString=body, VersionStages=[PENDING]
            )

    def _remember_pending(self, user: str, token: str) -> None:
        """Keep the cached labels in step with our own write, so `promote` can move
        AWSCURRENT without another DescribeSecret (one call fewer per rotation). A stale
        cache costs nothing worse than one refused call and a fresh look (see _move_current).
        """
        stages = self._stages.get(user)
        if not stages:
            self._stages.pop(user, None)
            return
        updated = {
            version: [label for label in labels if label != PENDING]
            for version, labels in stages.items()
        }
        updated.setdefault(token, []).append(PENDING)
        self._stages[user] = updated

    # Called from put_pending for a secret that does not exist yet; declared on its own so
    # the Secrets Manager rotation function (whose secret always exists) is not granted it.
    # CreateSecret with Tags needs TagResource too (tag-on-create authorization).
    @requires("secretsmanager:CreateSecret", "secretsmanager:TagResource")
    def _create_placeholder(self, user: str, name: str) -> None:
        args: dict[str, Any] = {
            "Name": name,
            "Description": f"Access key of IAM user {user}, rotated by keyturn",
            "SecretString": json.dumps({self._user_field: user}),
            "Tags": [{"Key": "keyturn:user", "Value": user}],
        }
        if self._kms:
            args["KmsKeyId"] = self._kms
        try:
            with translate("secretsmanager:CreateSecret", name):
                created = self._sm.create_secret(**args)
        except OperationFailedError as exc:
            if "ResourceExists" not in str(exc):  # created meanwhile: fine
                raise
            self._stages.pop(user, None)
            return
        self._stages[user] = {created["VersionId"]: [CURRENT]}

    @requires("secretsmanager:UpdateSecretVersionStage", "secretsmanager:DescribeSecret")
    def promote(self, user: str, token: str) -> None:
        """Move AWSCURRENT to the pending version `token`, then take AWSPENDING off it.

        Secrets Manager does not remove AWSPENDING itself, and AWS's own rotation
        templates do it in finishSecret: a label left on the current version makes the
        next rotation (and anyone reading AWSPENDING) see a "pending" key that is in fact
        current. Both moves are no-ops when already done, so a retried finishSecret or a
        resume after a crash between them ends the same.
        """
        try:
            self._move_current(user, token)
            self._drop_pending(user, token)
        finally:
            # The labels our own moves produced served the second move; after a promotion
            # the next reader looks afresh (another process may roll back meanwhile).
            self._stages.pop(user, None)

    @requires("secretsmanager:UpdateSecretVersionStage", "secretsmanager:DescribeSecret")
    def restore_previous(self, user: str, from_token: str) -> None:
        """Make AWSPREVIOUS current again, if `from_token` is still the current version."""
        stages = self._version_stages(user, fresh=True)
        if stages is None:
            raise NotFoundError(f"secret {self.location(user)} does not exist")
        if _version_with(stages, CURRENT) != from_token:
            return  # already restored (idempotent) or moved on by someone else
        previous = _version_with(stages, PREVIOUS)
        if previous is None:
            raise OperationFailedError(
                f"secret {self.location(user)} has no AWSPREVIOUS version to restore"
            )
        try:
            self._move_current(user, previous)
        finally:
            self._stages.pop(user, None)

    @requires("secretsmanager:UpdateSecretVersionStage", "secretsmanager:DescribeSecret")
    def discard_pending(self, user: str, token: str) -> None:
        """AWSPENDING off version `token` (a rotation stopped before promotion), if there:
        no reader of the pending stage sees the stopped rotation's key."""
        try:
            self._drop_pending(user, token)
        finally:
            self._stages.pop(user, None)

    def _move_current(self, user: str, target: str) -> None:
        name = self.location(user)
        for fresh in (False, True):
            stages = self._version_stages(user, fresh=fresh)
            if stages is None:
                raise NotFoundError(f"secret {name} does not exist")
            if target not in stages:
                raise OperationFailedError(f"secret {name} has no version {target}")
            current = _version_with(stages, CURRENT)
            if current == target:
                return
            args: dict[str, Any] = {
                "SecretId": name,
                "VersionStage": CURRENT,
                "MoveToVersionId": target,
            }
            if current is not None:
                args["RemoveFromVersionId"] = current
            try:
                with translate("secretsmanager:UpdateSecretVersionStage", name):
                    self._sm.update_secret_version_stage(**args)
            except OperationFailedError:
                if fresh:
                    raise
                continue  # our cached labels were stale: look again once
            self._stages[user] = _moved(stages, CURRENT, target)
            return

    def _drop_pending(self, user: str, version: str) -> None:
        """RemoveFromVersionId: AWSPENDING off `version` (the now-current one), if there."""
        name = self.location(user)
        for fresh in (False, True):
            stages = self._version_stages(user, fresh=fresh)
            if stages is None or PENDING not in stages.get(version, []):
                return
            try:
                with translate("secretsmanager:UpdateSecretVersionStage", name):
                    self._sm.update_secret_version_stage(
                        SecretId=name, VersionStage=PENDING, RemoveFromVersionId=version
                    )
            except OperationFailedError:
                if fresh:
                    raise
                continue  # cached labels were stale: look again once
            return

    # -- helpers -------------------------------------------------------------------------

    def _version_stages(self, user: str, *, fresh: bool = True) -> dict[str, list[str]] | None:
        if not fresh and self._stages.get(user):
            return self._stages[user]
        name = self.location(user)
        try:
            with translate("secretsmanager:DescribeSecret", name):
                found = self._sm.describe_secret(SecretId=name)
        except NotFoundError:
            self._stages[user] = None
            return None
        stages = {
            version: list(labels) for version, labels in found.get("VersionIdsToStages", {}).items()
        }
        self._stages[user] = stages
        return stages

    def _document(
        self, user: str, *, stage: str, version: str | None = None
    ) -> dict[str, Any] | None:
        name = self.location(user)
        args: dict[str, Any] = {"SecretId": name, "VersionStage": stage}
        if version is not None:
            args["VersionId"] = version
        try:
            with translate("secretsmanager:GetSecretValue", f"{name} {stage}"):
                found = self._sm.get_secret_value(**args)
        except NotFoundError:
            return None
        except OperationFailedError as exc:
            if "InvalidRequest" in str(exc) or "InvalidParameter" in str(exc):
                return None  # no version carries that stage
            raise
        try:
            doc = json.loads(found.get("SecretString") or "")
        except ValueError:
            raise BadInputError(
                f"secret {name} ({stage}) is not a JSON document; keyturn expects "
                f'{{"{self._user_field}", "{self._key_field}", "{self._secret_field}"}}'
            ) from None
        if not isinstance(doc, dict):
            raise BadInputError(f"secret {name} ({stage}) is not a JSON object")
        return doc

    def _secret(self, user: str, doc: dict[str, Any]) -> NewKeySecret | None:
        key_id, secret = doc.get(self._key_field), doc.get(self._secret_field)
        if not key_id and not secret:
            return None  # the placeholder keyturn writes before the first key
        if not isinstance(key_id, str) or not isinstance(secret, str):
            raise BadInputError(
                f"secret {self.location(user)} has the wrong shape: expected string fields "
                f"{self._key_field} and {self._secret_field}"
            )
        return NewKeySecret(key_id, secret)


def _version_with(stages: dict[str, list[str]], stage: str) -> str | None:
    return next((version for version, labels in stages.items() if stage in labels), None)


def _moved(stages: dict[str, list[str]], stage: str, target: str | None) -> dict[str, list[str]]:
    """The labels after our own move of `stage` to `target` (None: removed).

    Moving AWSCURRENT makes Secrets Manager move AWSPREVIOUS to the version that lost it;
    the cache follows, so removing AWSPENDING right after needs no DescribeSecret. A stale
    cache costs one refused call and a fresh look, never a wrong write.
    """
    updated = {
        version: [label for label in labels if label != stage] for version, labels in stages.items()
    }
    if stage == CURRENT:
        old = _version_with(stages, CURRENT)
        if old is not None and old != target:
            updated = {
                version: [label for label in labels if label != PREVIOUS]
                for version, labels in updated.items()
            }
            updated[old].append(PREVIOUS)
    if target is not None:
        updated.setdefault(target, []).append(stage)
    return updated
