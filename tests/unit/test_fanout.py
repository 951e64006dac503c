"""Multi-account runs: every account visited, one failure never stops the others."""

from __future__ import annotations

import pytest

from keyturn.domain.errors import AccessDeniedError, BadInputError
from keyturn.services.fanout import fan_out, parse_account_ids


def test_failures_are_reported_per_account_and_the_rest_finish() -> None:
    def work(account: str) -> int:
        if account == "222222222222":
            raise AccessDeniedError("AWS refused sts:AssumeRole (arn:...): AccessDenied")
        if account == "333333333333":
            raise RuntimeError("boom")
        return int(account[0])

    outcome = fan_out(["111111111111", "222222222222", "333333333333", "444444444444"], work)
    assert outcome.results == {"111111111111": 1, "444444444444": 4}
    assert "AccessDenied" in outcome.failures["222222222222"]
    assert outcome.failures["333333333333"] == "internal error: RuntimeError: boom"
    assert not outcome.ok


def test_each_account_once() -> None:
    seen: list[str] = []
    fan_out(["111111111111", "111111111111"], seen.append, workers=2)
    assert seen == ["111111111111"]


@pytest.mark.parametrize("text", ["", "12345", "111111111111,abc", " , "])
def test_account_ids_are_checked(text: str) -> None:
    with pytest.raises(BadInputError, match="12-digit"):
        parse_account_ids(text)


def test_account_ids_parse() -> None:
    assert parse_account_ids(" 111111111111, 222222222222,111111111111") == [
        "111111111111",
        "222222222222",
    ]
