"""The pacer's rates: configured, discovered (SES), per account. The hook on real clients
is tested against moto in tests/integration/test_pacing_moto.py."""

from __future__ import annotations

from keyturn.adapters.pacing import SES_SEND, Pacer
from keyturn.config import load_settings
from keyturn.wiring import build_pacer


def test_a_discovered_send_rate_applies_capped_by_the_setting() -> None:
    pacer = Pacer({"cloudtrail:LookupEvents": 2.0})
    assert pacer.rate(SES_SEND) is None
    assert pacer.limit_send_rate(14.0, cap=None) == 14.0
    assert pacer.rate(SES_SEND) == 14.0
    assert pacer.limit_send_rate(14.0, cap=5.0) == 5.0
    assert pacer.rate(SES_SEND) == 5.0


def test_the_settings_build_one_pacer_per_run_and_a_fresh_one_per_account() -> None:
    settings = load_settings(flags={"pacing.iam": 20.0}).settings
    pacer = build_pacer(settings.pacing)
    assert pacer is not None
    assert pacer.rate("iam") == 20.0
    assert pacer.rate("cloudtrail:LookupEvents") == 2.0
    pacer.limit_send_rate(14.0, cap=None)
    other = pacer.fresh()
    assert other.rate("iam") == 20.0
    assert other.rate(SES_SEND) is None  # discovered per account, by its own run
    off = load_settings(flags={"pacing.enabled": False}).settings
    assert build_pacer(off.pacing) is None
