"""IAM actions declared beside the code that needs them (STYLE habit 7).

Each adapter method that calls AWS is decorated with `@requires("iam:ListAccessKeys", ...)`;
a service lists the adapter methods it uses, so the policy a function needs is derived from
code, never written twice by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "__keyturn_requires__"


def requires(*actions: str) -> Callable[[F], F]:
    """Mark a function as needing these IAM actions."""

    def mark(func: F) -> F:
        setattr(func, ATTRIBUTE, tuple(sorted(set(actions))))
        return func

    return mark


def actions_of(functions: Iterable[Callable[..., Any]]) -> list[str]:
    """The sorted union of the actions the given functions declared."""
    found: set[str] = set()
    for func in functions:
        declared = getattr(func, ATTRIBUTE, None)
        if declared is None:
            raise ValueError(f"{func.__qualname__} declares no IAM actions")
        found.update(declared)
    return sorted(found)
