"""Pure rules of issue 12 item 10 (no server): an event or message may only tighten a run,
and an operators' notice holds identifiers and counts only."""

from __future__ import annotations

import json

import pytest

from keyturn.adapters.sns import RunNotice, UserResult, rotation_notice
from keyturn.config import load_settings
from keyturn.handlers.enforce import EventRefusedError, tighten_dry_run
from keyturn.handlers.fanout import AccountJob, admit, parse_job
from keyturn.services.rotate import Outcome

MEMBER = "111122223333"


@pytest.mark.parametrize(
    ("configured", "requested", "runs_dry"),
    [
        (True, None, True),
        (True, True, True),
        (False, None, False),
        (False, True, True),  # tighter: allowed
        (False, False, False),
    ],
)
def test_dry_run_may_only_tighten(configured: bool, requested: bool | None, runs_dry: bool) -> None:
    assert tighten_dry_run(configured, requested, source="the event") is runs_dry


def test_an_event_cannot_loosen_a_dry_run() -> None:
    with pytest.raises(EventRefusedError, match="the event asks for dry_run false"):
        tighten_dry_run(True, False, source="the event")


def settings(**env: str) -> object:
    return load_settings(environ={"KEYTURN_FANOUT_ROLE_NAME": "keyturn-member", **env}).settings


@pytest.mark.parametrize(
    ("job", "env", "why"),
    [
        (AccountJob(MEMBER, "enforce", False), {}, "configured as a dry run"),
        (AccountJob(MEMBER, "audit", role_name="admin"), {}, "not the configured member role"),
        (AccountJob("999999999999", "audit"), {}, "not an active account"),
        (AccountJob(MEMBER, "enforce"), {"KEYTURN_FANOUT_TASK": "audit"}, "task is audit"),
    ],
)
def test_a_message_asking_for_more_is_refused(
    job: AccountJob, env: dict[str, str], why: str
) -> None:
    with pytest.raises(EventRefusedError, match=why):
        admit(job, settings(**env), frozenset({MEMBER}))  # type: ignore[arg-type]


def test_a_message_asking_for_less_is_admitted() -> None:
    acting = settings(KEYTURN_ENFORCE_DRY_RUN="false")
    members = frozenset({MEMBER})
    assert admit(AccountJob(MEMBER, "enforce", True), acting, members) is True  # type: ignore[arg-type]
    assert admit(AccountJob(MEMBER, "enforce"), acting, members) is False  # type: ignore[arg-type]
    assert admit(AccountJob(MEMBER, "audit", role_name="keyturn-member"), acting, members) is None  # type: ignore[arg-type]


def test_a_message_with_unknown_fields_is_refused() -> None:
    from keyturn.domain.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown field"):
        parse_job(json.dumps({"account_id": MEMBER, "task": "audit", "dryrun": True}))


# -- notices -----------------------------------------------------------------------------------


def test_a_notice_refuses_text_that_is_not_an_identifier() -> None:
    for bad in ("alice <https://phish.example>", "ceo@example.com cfo@example.com", ""):
        with pytest.raises(ValueError, match="not a valid identifier") as refused:
            UserResult(bad, "rotated")
        assert bad not in str(refused.value) or not bad  # the hostile text is never echoed
    with pytest.raises(ValueError, match="count name"):
        RunNotice("keyturn.enforce", "ok", {"re-verify at https://x": 1})


def test_a_rotation_notice_names_ids_and_counts_what_it_cannot_name() -> None:
    outcomes = [
        Outcome("alice", True, "promoted", "AKIAOLD0000000000001", "AKIANEW0000000000001"),
        Outcome("111122223333/bob", False, "failed", message="tag says: URGENT re-verify"),
        Outcome("evil name", False, "failed"),
    ]
    notice = rotation_notice(outcomes)
    document = json.dumps(notice.document())
    assert notice.outcome == "failed"
    assert notice.counts == {"ok": 1, "failed": 2}
    assert "alice: promoted (AKIAOLD0000000000001 -> AKIANEW0000000000001)" in notice.description()
    assert "111122223333/bob" in document
    assert "URGENT" not in document
    assert "evil name" not in document
