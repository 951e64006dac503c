"""`keyturn rotate` with retire = "when-quiet" (issue 16): the summary (table and JSON)
names the consumer that still uses the old key, and the old key stays active."""

from __future__ import annotations

import json
import os
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
