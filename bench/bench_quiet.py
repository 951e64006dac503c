"""Usage-aware retirement at scale (issue 16): what a scheduled run that only checks users
waiting for their old key to go quiet costs, under bench_rotate's latency model.

Setup (not measured, straight to moto): `users` users rotated with `retire = "when-quiet"`,
so every one is promoted and waiting (verification at 1 success, nothing to propagate).
Then the scheduled Rotate function's first phase, `run_many(pending_users, resume)`, runs
twice through the FaultProxy (60 ms a call, IAM at 20 requests/s, throttling above it):

- `timer`: the same waiting users under the timer (an overlap not yet over): the baseline;
- `when-quiet`: the check itself (GetAccessKeyLastUsed per user, then wait).

Reported: IAM calls per user in each, their difference (target: 1 extra call per user),
and the when-quiet run's wall time against the model's rate bound, IAM calls / IAM rate
(target: within 1.25x). Every user must still be waiting, its old key active, afterwards.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from typing import Any

from bench.bench_rotate import IAM_RATE, LATENCY_S, PROPAGATION_S, model, seed
from bench.common import Row, Stopwatch, aws_env, patched_environ
from keyturn.config import load_settings
from keyturn.services.rotate import run_many
from keyturn.wiring import build_aws, build_rotation

DEFAULT_USERS = 1_000
GOAL_RATIO = 1.25
GOAL_EXTRA = 1.0


def _settings(retire: str, rate: float, **extra: Any) -> Any:
    flags: dict[str, Any] = {
        "rotate.store": "secretsmanager",
        "rotate.path": "bench/{user}",
        "rotate.rate": rate,
        "rotate.retire": retire,
        # the timer baseline: an overlap not over yet (when-quiet: none, it waits on use)
        "rotate.overlap_minutes": 24 * 60 if retire == "timer" else 0,
        **extra,
    }
    return load_settings(flags=flags).settings


def check_pass(url: str, retire: str, plan: Any) -> dict[str, Any]:
    from keyturn.sandbox.faults import FaultProxy

    with FaultProxy(url, plan) as proxy, patched_environ(aws_env(proxy.url, _base())):
        # pacing.iam too: rotation takes the lower of it and rotate.rate (default 10/s)
        settings = _settings(
            retire, plan.rate_limits["iam"], **{"pacing.iam": plan.rate_limits["iam"]}
        )
        service = build_rotation(settings, build_aws(settings))
        with Stopwatch() as watch:
            outcomes = run_many(
                service.pending_users(), service.resume, workers=settings.rotate.worker_count()
            )
        calls = dict(sorted(proxy.calls.items()))
    iam = sum(n for op, n in calls.items() if op.startswith("iam:"))
    return {
        "wall_s": round(watch.seconds, 2),
        "calls": calls,
        "iam_calls": iam,
        "rate_bound_s": round(iam / plan.rate_limits["iam"], 2),
        "waiting": sum(1 for o in outcomes if o.ok and o.waiting),
        "states": dict(Counter(str(o.state) for o in outcomes)),
        "failed": [f"{o.user}: {o.message}" for o in outcomes if not o.ok][:5],
    }


_STATE = tempfile.mkdtemp(prefix="keyturn-bench-quiet-")


def _base() -> dict[str, str]:
    """The process environment with keyturn's local sealing key in a scratch directory."""
    return {**os.environ, "XDG_STATE_HOME": _STATE}


def run(moto_url: str, runs: int, users: int | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    size = users or DEFAULT_USERS
    plan = model(LATENCY_S, PROPAGATION_S, IAM_RATE)
    names = [user["name"] for user in seed(moto_url, size, prefix="bench-quiet")]
    with patched_environ(aws_env(moto_url, _base())):
        setup = _settings(
            "when-quiet", 1000.0, **{"rotate.verify_successes": 1, "pacing.enabled": False}
        )
        setup_service = build_rotation(setup, build_aws(setup))
        rotated = run_many(names, setup_service.rotate, workers=32)
    assert all(o.ok and o.waiting for o in rotated), [o.message for o in rotated[:3]]
    timer = check_pass(moto_url, "timer", plan)
    quiet = check_pass(moto_url, "when-quiet", plan)
    extra = (quiet["iam_calls"] - timer["iam_calls"]) / size
    ratio = quiet["wall_s"] / quiet["rate_bound_s"]
    ok = extra <= GOAL_EXTRA and ratio <= GOAL_RATIO and quiet["waiting"] == size
    rows = [
        Row(
            metric=f"when-quiet check, {size:,} waiting users: extra IAM calls per user",
            value=f"{extra:.2f}",
            target=f"<= {GOAL_EXTRA:g}",
            ok=extra <= GOAL_EXTRA,
            note=f"{quiet['iam_calls']:,} IAM calls vs {timer['iam_calls']:,} for the same "
            "users waiting on the timer",
        ),
        Row(
            metric=f"... wall time ({size:,} users)",
            value=f"{quiet['wall_s']:.1f} s",
            note=f"timer baseline {timer['wall_s']:.1f} s (bound {timer['rate_bound_s']:.1f} s)",
        ),
        Row(
            metric=f"... wall / rate bound ({size:,} users)",
            value=f"{ratio:.2f}",
            target=f"<= {GOAL_RATIO}",
            ok=ratio <= GOAL_RATIO,
            note=f"bound {quiet['rate_bound_s']:.1f} s = IAM calls / {IAM_RATE:g}/s; "
            f"still waiting {quiet['waiting']:,} / {size:,}",
        ),
    ]
    return {
        "rows": rows,
        "medians": {str(size): {"extra_iam_per_user": extra, "ratio": round(ratio, 3)}},
        "raw": {"timer": timer, "when-quiet": quiet},
        "ok": ok,
        "seconds": round(time.perf_counter() - started, 1),
    }
