"""When to retire a promoted rotation's old key on evidence, not on a timer (issue 16).

With `[rotate] retire = "when-quiet"` the old key stays active after promotion until IAM's
last-used record shows it *quiet*: no use for `quiet` since the later of the promotion and
its last recorded use. A consumer that moves to the new key late (after a deploy, after a
restart) is waited for; a consumer that never moves is bounded by `max_overlap` after the
promotion, where keyturn either deactivates anyway or escalates (never retires, reports
loudly), as configured.

Pure: no I/O, the clock and the last use passed in (keyturn.services.rotate reads them with
one iam:GetAccessKeyLastUsed per user per run).

How fresh IAM's last-used data is, and so the default quiet period:

- the API reference of GetAccessKeyLastUsed / AccessKeyLastUsed documents *no* freshness
  bound, only that the date, service and region are those of the key's most recent use
  (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AccessKeyLastUsed.html);
- the one latency IAM documents for its last-used tracking is "Recent activity usually
  appears within four hours" (IAM API reference, GenerateServiceLastAccessedDetails:
  https://docs.aws.amazon.com/IAM/latest/APIReference/API_GenerateServiceLastAccessedDetails.html).

So keyturn assumes a use may show up to 4 hours late: a quiet period must be the longest
gap between a consumer's uses *plus* those 4 hours, or a consumer's latest use may not be
visible yet when the period ends. The default covers a daily job (the longest common
schedule) plus the lag: 24 h + 4 h = 28 h. Shorter periods are for consumers known to
call at least hourly (then 5 h is enough).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from keyturn.domain.model import LastUse

# The documented "usually within four hours" of IAM's last-used tracking (see above).
REPORTING_LAG = timedelta(hours=4)
# A daily consumer's gap plus the lag.
DEFAULT_QUIET = timedelta(hours=24) + REPORTING_LAG
DEFAULT_MAX_OVERLAP = timedelta(days=7)

OnMax = Literal["deactivate", "escalate"]


@dataclass(frozen=True, slots=True)
class QuietPolicy:
    """`quiet`: how long the old key must show no use; `max_overlap`: the longest the old
    key stays active after promotion while still used; `on_max`: what happens then."""

    quiet: timedelta = DEFAULT_QUIET
    max_overlap: timedelta = DEFAULT_MAX_OVERLAP
    on_max: OnMax = "escalate"


class Verdict(StrEnum):
    WAIT = "wait"
    RETIRE = "retire"
    ESCALATE = "escalate"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with the old key now, and the one line that says why.

    `forced`: retired at the bound although still used (on_max = "deactivate")."""

    verdict: Verdict
    reason: str
    forced: bool = False


def _minutes(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() // 60))


def consumer(use: LastUse) -> str:
    """`<service> in <region>`, with AWS's "N/A" (read as None) said in words."""
    return f"{use.service or 'an unknown service'} in {use.region or 'an unknown region'}"


def decide(
    promoted_at: datetime, last_use: LastUse | None, now: datetime, policy: QuietPolicy
) -> Decision:
    """Retire when the old key has been quiet for `policy.quiet`, else wait, up to the bound.

    A use at or after the promotion (a consumer still on the old key) restarts the quiet
    period from that use; a use before it (or none at all) does not count, since every
    consumer was on the old key until then. Quiet wins over the bound: a consumer that
    moved late still gets its key retired, escalated or not.
    """
    used_after = last_use is not None and last_use.date >= promoted_at
    quiet_since = last_use.date if used_after and last_use is not None else promoted_at
    if now - quiet_since >= policy.quiet:
        return Decision(
            Verdict.RETIRE,
            f"old key not used for {_minutes(now - quiet_since)} min "
            f"(quiet period {_minutes(policy.quiet)} min): retiring it",
        )
    if used_after and last_use is not None:
        seen = f"old key still used by {consumer(last_use)} {_minutes(now - last_use.date)} min ago"
    else:
        seen = (
            "old key not used since promotion; retired once quiet for "
            f"{_minutes(policy.quiet)} min (in {_minutes(quiet_since + policy.quiet - now)} min)"
        )
    if now - promoted_at < policy.max_overlap:
        return Decision(Verdict.WAIT, f"{seen}, waiting")
    bound = f"max overlap of {_minutes(policy.max_overlap)} min reached"
    if policy.on_max == "deactivate":
        return Decision(Verdict.RETIRE, f"{seen}; {bound}: deactivating it anyway", forced=True)
    return Decision(
        Verdict.ESCALATE,
        f"{seen}; {bound}: NOT deactivating it (on_max_overlap = escalate): move that "
        "consumer to the new key, or deactivate the old key by hand",
    )
