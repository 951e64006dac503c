"""audit: every access key in the account, its age, its owner, and what the policy says."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.syntax import Syntax

from demo import seed
from demo.context import DemoError

if TYPE_CHECKING:
    from demo.context import DemoContext

TITLE = "audit · every access key, its age, its owner, and what the policy says"

POLICY = f"""\
# keyturn.toml, read from the current directory (or --config / KEYTURN_CONFIG)
[policy]
notify_after_days = 30   # tell the key's owner (seed 002's NOTIFYKEYAGE)
grace_days = 7           # deactivate 7 days after the notice: at 37 days
exempt_tags = {{ "{seed.EXEMPT_TAG[0]}" = "{seed.EXEMPT_TAG[1]}" }}   # reviewed by hand
"""


def run(ctx: DemoContext) -> None:
    account = _seed(ctx)
    here = ctx.workdir / "audit"
    here.mkdir(exist_ok=True)
    (here / "keyturn.toml").write_text(POLICY, encoding="utf-8")

    ctx.step("The policy")
    ctx.say(f"keyturn runs from [bold]{ctx.shown_path(here)}/[/], which holds this file:")
    ctx.console.print(
        Syntax(POLICY.rstrip(), "toml", theme="ansi_dark", background_color="default")
    )

    ctx.step("The inventory")
    ctx.say(
        "keyturn reads the IAM credential report: a handful of API calls whatever the "
        "number of users. [bold]--contacts[/] adds each user's Contact tag (one call per user)."
    )
    ctx.keyturn("audit", "--format", "table", "--contacts", cwd=here)

    ctx.step("A gate for CI pipelines: --check")
    ctx.say(
        "With [bold]--check[/] the exit status says whether any key is out of policy (3) or "
        "not (0). Here it also writes every key to a CSV, with key ids resolved "
        "([bold]--key-ids[/], one ListAccessKeys per user)."
    )
    ctx.keyturn(
        "audit", "--check", "--key-ids", "--contacts", "--format", "csv", "-o", "audit.csv",
        cwd=here, ok_codes=(3,),
    )  # fmt: skip
    rows = _check_csv(ctx, account, here / "audit.csv")
    needs = Counter(row["finding"] for row in rows if row["finding"] not in ("ok", "exempt"))
    ctx.say(
        f"[green]✓[/] {sum(needs.values())} keys need action "
        f"({', '.join(f'{n} {finding}' for finding, n in needs.most_common())}): "
        "in a pipeline, this step fails."
    )
    ctx.say(
        f"[green]✓[/] {ctx.shown_path(here / 'audit.csv')}: {len(rows)} rows, one per key, "
        "and every key id is one that exists."
    )
    ctx.say(
        "\nOne service at a time: [bold]--user[/] reads that user directly "
        "(GetUser, ListAccessKeys, GetAccessKeyLastUsed) instead of the report."
    )
    ctx.keyturn("audit", "--check", "--user", "ci-deployer", "--format", "table", cwd=here)
    ctx.say("[green]✓[/] exit status 0: ci-deployer's only key is 5 days old.")

    ctx.step("The HTML report")
    ctx.keyturn("audit", "--contacts", "--format", "html", "-o", "audit.html", cwd=here)
    report = here / "audit.html"
    if not report.is_file():
        raise DemoError(f"keyturn exited 0 but wrote no {ctx.shown_path(report)}")
    ctx.say(
        f"[green]✓[/] {ctx.shown_path(report)} ({report.stat().st_size // 1024} KB, one "
        "self-contained page: summary, key ages against the thresholds, a sortable table). "
        f"Open it: [link={report.as_uri()}]{report.as_uri()}[/link]"
    )


def _seed(ctx: DemoContext) -> seed.SeededAccount:
    ctx.step("A sandbox account")
    users = seed.population()
    with Progress(
        SpinnerColumn(),
        TextColumn("creating IAM users and keys"),
        BarColumn(),
        MofNCompleteColumn(),
        console=ctx.console,
        transient=True,
    ) as progress:
        task = progress.add_task("seed", total=len(users))
        account = seed.seed_account(ctx.aws, users, on_user=lambda _: progress.advance(task))
    facts = account.facts()
    ctx.say(
        f"[green]✓[/] {facts['users']} IAM users and {facts['keys']} access keys in "
        f"{account.seconds:.1f}s: people, services, CI robots, vendors and a few relics."
    )
    ctx.say(
        f"  {facts['two_keys']} users hold two keys, {facts['inactive']} keys are inactive, "
        f"{facts['never_used']} were never used, {facts['no_contact']} users have no Contact "
        f"tag, {facts['exempt']} are tagged {seed.EXEMPT_TAG[0]}={seed.EXEMPT_TAG[1]}. "
        "Key ages straddle the thresholds: 29, 30, 31, 36, 37 days, and up to 3 years."
    )
    return account


def _check_csv(ctx: DemoContext, account: seed.SeededAccount, report: Path) -> list[dict[str, str]]:
    """The report must list every seeded key exactly once, under its own id."""
    with report.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    seeded = {key_id for ids in account.key_ids.values() for key_id in ids}
    listed = [row["key_id"] for row in rows]
    if len(rows) != account.keys or set(listed) != seeded or len(set(listed)) != len(listed):
        raise DemoError(
            f"{ctx.shown_path(report)} lists {len(rows)} keys ({len(set(listed))} distinct ids); "
            f"the account holds {account.keys}"
        )
    return rows
