"""README's mutation table is the tool's output, never typed by hand (issue 18).

`python -m mutation` writes mutation/results.md and the same table into README.md between
two markers; this test renders the block from results.md with the tool's own function and
compares, so a hand edit of either side (a kill rate nudged up, a row dropped) fails here.
"""

from __future__ import annotations

import pytest
from mutation.__main__ import END, README, RESULTS, START, readme_block, with_block


def test_the_readme_block_is_what_the_tool_renders_from_results_md() -> None:
    readme = README.read_text("utf-8")
    block = readme_block(RESULTS.read_text("utf-8"))
    assert readme.count(START) == 1
    assert readme.count(END) == 1
    start = readme.index(START)
    assert readme[start : readme.index(END) + len(END)] == block, (
        "README.md's mutation table differs from mutation/results.md: run `make mutation` "
        "(or `python -m mutation --report-only`) instead of editing it"
    )


def test_every_module_of_results_md_is_in_the_block_with_its_counts() -> None:
    results = "\n".join(
        [
            "| module | mutants | killed | equivalent | wording only | survived | no tests "
            "| hand-made killed | kill rate |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            "| domain.leases | 817 | 804 | 13 | 2 | 0 | 0 | 4/4 | 100.0% |",
            "| domain.policy | 111 | 100 | 0 | 0 | 11 | 0 | 0/0 | 90.1% (under target) |",
        ]
    )
    assert readme_block(results).splitlines() == [
        START,
        "| module | mutants | killed | equivalent | kill rate |",
        "|---|---:|---:|---:|---:|",
        "| leases | 817 | 804 | 15 | 100.0% |",
        "| policy | 111 | 100 | 0 | 90.1% (under target) |",
        END,
    ]
    measured = RESULTS.read_text("utf-8")
    modules = [line.split("|")[1].strip() for line in measured.splitlines() if "| domain." in line]
    block = readme_block(measured)
    assert modules
    assert all(f"| {m.removeprefix('domain.')} |" in block for m in modules)


def test_with_block_replaces_only_the_text_between_the_markers() -> None:
    readme = f"# title\n\nbefore\n\n{START}\nold | table\n{END}\n\nafter\n"
    block = f"{START}\nnew\n{END}"
    assert with_block(readme, block) == f"# title\n\nbefore\n\n{START}\nnew\n{END}\n\nafter\n"
    assert with_block(with_block(readme, block), block) == with_block(readme, block)


@pytest.mark.parametrize(
    "readme",
    [
        "no markers at all\n",
        f"{START}\nonly the start\n",
        f"{START}\n{START}\ntwice\n{END}\n",
        f"{END}\nreversed\n{START}\n",
    ],
)
def test_a_readme_without_one_pair_of_markers_in_order_is_refused(readme: str) -> None:
    with pytest.raises(SystemExit, match=r"README\.md"):
        with_block(readme, f"{START}\n{END}")


def test_results_without_a_table_are_refused() -> None:
    with pytest.raises(SystemExit, match="no table"):
        readme_block("# Mutation testing results\n\nnothing measured yet\n")
