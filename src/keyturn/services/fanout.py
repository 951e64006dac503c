"""One run over many accounts: the same work in each, one account's failure reported and
never allowed to stop the others.

This is the CLI's way across an Organization; the Lambda deployment fans out through SQS
instead (one message per account), so AWS retries each failed account on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from keyturn.domain.errors import BadInputError, KeyturnError

T = TypeVar("T")
ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass
class FanOut(Generic[T]):
    """Per-account results and, for the accounts that failed, the one-line reason."""

    results: dict[str, T] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def parse_account_ids(text: str) -> list[str]:
    """`--accounts 111122223333,444455556666`: twelve digits each, duplicates dropped."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    bad = [part for part in ids if not ACCOUNT_ID.match(part)]
    if bad or not ids:
        raise BadInputError(
            "--accounts: expected comma-separated 12-digit account ids, got "
            + (", ".join(repr(part) for part in bad) if bad else "nothing")
        )
    return list(dict.fromkeys(ids))


def fan_out(accounts: Iterable[str], work: Callable[[str], T], *, workers: int = 4) -> FanOut[T]:
    """Run `work(account_id)` for every account, a bounded number at a time."""
    outcome: FanOut[T] = FanOut()
    ids = list(dict.fromkeys(accounts))

    def attempt(account: str) -> tuple[str, T | None, str | None]:
        try:
            return account, work(account), None
        except KeyturnError as exc:
            return account, None, " ".join(str(exc).split())
        except Exception as exc:  # one account's surprise must not hide the others' results
            return account, None, f"internal error: {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for account, result, failure in pool.map(attempt, ids):
            if failure is not None:
                outcome.failures[account] = failure
            else:
                outcome.results[account] = result  # type: ignore[assignment]
    return outcome
