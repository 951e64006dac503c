"""Enrollment records as a sealed IAM user tag (`keyturn:enrolled`).

Who can write the tag: keyturn, and anyone with `iam:TagUser` on the user. So the value is
believed only when its seal verifies for this user, this store kind, this location and the
account's current enrollment generation (keyturn.domain.enrollment); removing the tag
(UntagUser) only ever stops rotation, the safe direction, and the user is then reported as
"due, not enrolled". The generation itself lives where only keyturn's sealers can write
(keyturn.adapters.enrollment_generation) and carries its own seal.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from keyturn.adapters.aws_errors import translate
from keyturn.adapters.enrollment_generation import GenerationStore, generations_for
from keyturn.domain.enrollment import (
    ENROLL_TAG,
    INITIAL,
    Enrollment,
    Generation,
    GenerationView,
    generation_text,
    lowered,
    parse,
    parse_generation,
    payload,
    sealed_payload,
    sealed_text,
    staleness,
)
from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.domain.trust import Rejected
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from keyturn.ports import Authenticator


class IamTagEnrollments:
    def __init__(
        self,
        client: IAMClient,
        authenticator: Authenticator,
        store_kind: str,
        location: Callable[[str], str],
        *,
        account: str,
        generations: GenerationStore | None = None,
    ) -> None:
        self._iam = client
        self._auth = authenticator
        self._store = store_kind
        self._location = location
        self._account = account  # sealed in: another account's same-named user is not this one
        self._generations = generations or generations_for(authenticator)

    @requires("iam:ListUserTags")
    def read(self, user: str) -> Enrollment | Rejected | None:
        """IAM: ListUserTags (paginated); the generation's store once."""
        value = self._tag(user)
        return None if value is None else self.check(user, value)

    def check(
        self, user: str, value: str, generation: GenerationView | None = None
    ) -> Enrollment | Rejected:
        """The enrollment `value` records for `user`, if believed at the account's current
        generation (read now unless the caller read it once for many users)."""
        view = generation if generation is not None else self.generation()
        text, _, seal = value.rpartition(":")
        location = self._location(user)
        try:
            claimed = parse(user, text, location)
        except BadInputError as exc:
            return Rejected(user, str(exc))
        if claimed.store != self._store:
            return Rejected(user, f"enrolled for {claimed.store}, not {self._store}")
        if not self._auth.verify(sealed_payload(user, self._account, location, text), seal):
            return Rejected(
                user,
                f"{ENROLL_TAG} tag not sealed by {self._auth.describe()} for {location}: "
                "forged, foreign, or the store path changed since enrollment",
            )
        if view.problem is not None or view.current is None:
            return Rejected(user, view.problem or "no trusted enrollment generation")
        return staleness(user, claimed.generation, view.current) or claimed

    @requires("iam:TagUser")
    def write(self, enrollment: Enrollment) -> None:
        """IAM: TagUser. Sealed at the account's current generation (whatever `enrollment`
        says): a record sealed at another one would be stale at once."""
        view = self.generation()
        if view.current is None:
            raise OperationFailedError(f"cannot enroll {enrollment.user}: {view.problem}")
        self._put(replace(enrollment, generation=view.current))

    @requires("iam:TagUser")
    def _put(self, enrollment: Enrollment) -> None:
        """IAM: TagUser, sealed at the enrollment's own generation."""
        seal = self._auth.seal(sealed_text(enrollment, self._account))
        value = f"{payload(enrollment)}:{seal}"
        with translate("iam:TagUser", enrollment.user):
            self._iam.tag_user(UserName=enrollment.user, Tags=[{"Key": ENROLL_TAG, "Value": value}])

    @requires("iam:UntagUser")
    def remove(self, user: str) -> None:
        """IAM: UntagUser (idempotent: removing an absent tag succeeds)."""
        with translate("iam:UntagUser", user):
            self._iam.untag_user(UserName=user, TagKeys=[ENROLL_TAG])

    def location(self, user: str) -> str:
        return self._location(user)

    @property
    def store_kind(self) -> str:
        return self._store

    @requires("iam:GetAccountAuthorizationDetails")
    def tagged(self) -> dict[str, str | None]:
        """IAM: GetAccountAuthorizationDetails(Filter=User), paginated: every user, with its
        enrollment tag or None, in one call per page (the schedule checks hundreds)."""
        found: dict[str, str | None] = {}
        with translate("iam:GetAccountAuthorizationDetails"):
            pages = self._iam.get_paginator("get_account_authorization_details").paginate(
                Filter=["User"]
            )
            for page in pages:
                for user in page["UserDetailList"]:
                    found[user["UserName"]] = next(
                        (tag["Value"] for tag in user.get("Tags", []) if tag["Key"] == ENROLL_TAG),
                        None,
                    )
        return found

    # -- the enrollment generation ------------------------------------------------------

    def generation(self, tagged: Mapping[str, str | None] | None = None) -> GenerationView:
        """The account's generation, read and verified once. Given every user's tag
        (`tagged`), also look for a genuine record sealed at a *later* generation: proof
        that someone allowed to tag keyturn's key put an older value back."""
        raw = self._generations.load(self._account)
        where = self._generations.describe(self._account)
        current: Generation | None = INITIAL
        problem: str | None = None
        if raw is not None:
            text, _, seal = raw.rpartition(":")
            current = parse_generation(text)
            if current is None or not self._auth.verify(
                generation_text(self._account, current), seal
            ):
                current = None
                problem = (
                    f"the enrollment generation in {where} was not sealed by "
                    f"{self._auth.describe()}: planted, so no enrollment is believed until "
                    "an operator runs `keyturn unenroll` (which writes a new one)"
                )
        ceiling = current.number if current is not None else 0
        for user, value in (tagged or {}).items():
            later = self._later_generation(user, value, ceiling)
            if later is not None:
                ceiling = later.number
                if current is not None and problem is None:
                    problem = lowered(later, current)
        return GenerationView(current, ceiling, problem)

    def _later_generation(self, user: str, value: str | None, above: int) -> Generation | None:
        """The generation of `user`'s record when it is genuinely sealed above `above`.

        Seals are checked only for records that claim a later generation, which a healthy
        account never has, so this costs nothing in the common case."""
        if value is None:
            return None
        text, _, seal = value.rpartition(":")
        location = self._location(user)
        try:
            claimed = parse(user, text, location)
        except BadInputError:
            return None
        if claimed.generation.number <= above:
            return None
        if not self._auth.verify(sealed_payload(user, self._account, location, text), seal):
            return None
        return claimed.generation

    def raise_generation(self, view: GenerationView) -> Generation:
        """Write a new generation above every one seen (KMS: TagResource, or the local
        file), sealed; every record sealed before is stale from now on."""
        base = Generation(max(view.ceiling, view.current.number if view.current else 0))
        new = base.after(secrets.token_hex(4))
        seal = self._auth.seal(generation_text(self._account, new))
        self._generations.save(self._account, f"{new.text}:{seal}")
        return new

    def reseal(self, enrollment: Enrollment, at: Generation, expected: str) -> bool:
        """Re-seal `enrollment` at generation `at`, only if the user's tag still reads
        `expected` (a concurrent unenroll may have removed it since it was listed)."""
        if self._tag(enrollment.user) != expected:
            return False
        self._put(replace(enrollment, generation=at))
        return True

    @requires("iam:ListUserTags")
    def _tag(self, user: str) -> str | None:
        """IAM: ListUserTags (paginated): the raw enrollment tag value."""
        with translate("iam:ListUserTags", user):
            for page in self._iam.get_paginator("list_user_tags").paginate(UserName=user):
                for tag in page["Tags"]:
                    if tag["Key"] == ENROLL_TAG:
                        return tag["Value"]
        return None
