"""`$` in a Python regex also matches before a final newline: with `re.match` an ARN, a
unique id or a principal pattern ending in "\n" passed. Each is matched in full now."""

from __future__ import annotations

import pytest

from keyturn.domain.authorization import canonical_caller, check_patterns
from keyturn.domain.errors import BadInputError

USER = "arn:aws:iam::123456789012:user/alice"
SESSION = "arn:aws:sts::123456789012:assumed-role/dev/alice"


@pytest.mark.parametrize("arn", [USER + "\n", SESSION + "\n"])
def test_a_caller_arn_with_a_trailing_newline_is_refused(arn: str) -> None:
    with pytest.raises(BadInputError, match="neither an IAM user nor an assumed role"):
        canonical_caller(arn, "AIDA12345678")


def test_a_unique_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(BadInputError, match="no usable unique id"):
        canonical_caller(USER, "AIDA12345678\n")


def test_a_principal_pattern_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(BadInputError, match="is not an IAM user or role ARN pattern"):
        check_patterns("dev", "allowed_principals", ["arn:aws:iam::123456789012:role/x\n"])


def test_the_same_values_without_the_newline_pass() -> None:
    assert canonical_caller(USER, "AIDA12345678").arn == USER
    assert check_patterns("dev", "allowed_principals", ["arn:aws:iam::123456789012:role/x"])
