"""`keyturn rotate` with retire = "when-quiet" (issue 16): the summary (table and JSON)
names the consumer that still uses the old key, and the old key stays active."""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest

from keyturn.sandbox.aws import REGION
from tests.conftest import run_cli
from tests.rotate_fixtures import AuthedAws

keyturn = run_cli


@pytest.fixture
def env(authed: AuthedAws) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(authed.env())
    merged.update(
        {
            "KEYTURN_ROTATE_STORE": "secretsmanager",
            "KEYTURN_ROTATE_PATH": f"w{uuid.uuid4().hex[:8]}/{{user}}",
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
            "KEYTURN_ROTATE_RETIRE": "when-quiet",
        }
    )
    authed.enroll_with = merged
    return merged


def test_resume_shows_which_consumer_still_uses_the_old_key(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    (old,) = authed.seed_user("lena")
    rotated = keyturn(env, "rotate", "lena")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "not used since promotion" in " ".join(rotated.stdout.split())
    authed.server.set_last_used(old.key_id, 0, service="dynamodb", region=REGION)

    table = keyturn(env, "rotate", "--resume")
    assert table.returncode == 0, table.stderr
    flat = " ".join(table.stdout.replace("│", " ").split())
    assert "waiting" in flat
    assert "1 waiting for the old key to go quiet" in flat

    shown = json.loads(keyturn(env, "rotate", "--resume", "--format", "json").stdout)
    (lena,) = shown["users"]
    assert lena["result"] == "waiting"
    assert lena["message"].startswith(f"old key still used by dynamodb in {REGION} ")
    assert lena["message"].endswith(" min ago, waiting")
    assert authed.keys("lena")[old.key_id] == "Active"


def test_the_audit_shows_the_same_waiting_line_as_the_rotate_summary(
    authed: AuthedAws, env: dict[str, str], tmp_path: object
) -> None:
    (old,) = authed.seed_user("lena")
    authed.seed_user("bo")  # never rotated: no line
    assert keyturn(env, "rotate", "lena").returncode == 0
    authed.server.set_last_used(old.key_id, 0, service="dynamodb", region=REGION)
    resumed = json.loads(keyturn(env, "rotate", "--resume", "--format", "json").stdout)
    line = resumed["users"][0]["message"]
    assert line.startswith(f"old key still used by dynamodb in {REGION} ")

    def minutes_out(text: str) -> str:  # the "<n> min ago" may tick between two runs
        return re.sub(r"\d+ min ago", "N min ago", text)

    audit = json.loads(keyturn(env, "audit", "--format", "json").stdout)
    assert list(audit["rotation_waiting"]) == ["lena"]
    assert minutes_out(audit["rotation_waiting"]["lena"]) == minutes_out(line)

    table = keyturn(env, "audit", "--format", "table")
    assert table.returncode == 0, table.stderr
    assert f"rotation of lena: {minutes_out(line)}" in minutes_out(" ".join(table.stdout.split()))

    html = keyturn(env, "audit", "--format", "html")
    assert "Rotations waiting for consumers" in html.stdout
    assert "dynamodb" in html.stdout

    timer = {**env, "KEYTURN_ROTATE_RETIRE": "timer"}  # nothing waits on evidence then
    assert "rotation_waiting" not in json.loads(keyturn(timer, "audit", "-f", "json").stdout)


def test_an_event_the_bus_refused_is_reported_then_published_by_resume(
    authed: AuthedAws, env: dict[str, str]
) -> None:
    env = {**env, "KEYTURN_ROTATE_EVENT_BUS": "later", "KEYTURN_ROTATE_RETIRE": "timer"}
    authed.seed_user("lena")
    first = keyturn(env, "rotate", "lena")
    assert first.returncode == 0, first.stderr  # never a failed rotation
    flat = " ".join(first.stdout.replace("│", " ").split())
    assert "2 consumer event(s) not published yet (the next run retries them)" in flat
    authed.client("events").create_event_bus(Name="later")
    shown = json.loads(keyturn(env, "rotate", "--resume", "--format", "json").stdout)
    assert shown["summary"]["unpublished_events"] == 0
    (lena,) = shown["users"]
    assert lena["unpublished_events"] == []
    assert any("published on retry" in w for w in lena["warnings"])
