"""The documentation cannot drift: the config reference is the model's, examples parse,
links resolve, and the site builds strictly (as `make docs` does in `make test`)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from keyturn import docs_config
from keyturn.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_config_reference_is_generated_from_the_model() -> None:
    """Fails when a setting changed and `python -m keyturn.docs_config` was not re-run."""
    assert docs_config.PAGE == DOCS / "reference" / "configuration.md"
    assert docs_config.PAGE.read_text(encoding="utf-8") == docs_config.render(), (
        "docs/reference/configuration.md is stale: run `python -m keyturn.docs_config`"
    )


def test_check_mode_exits_1_on_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "configuration.md"
    page.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(docs_config, "PAGE", page)
    monkeypatch.setattr(docs_config, "ROOT", tmp_path)
    assert docs_config.main(["--check"]) == 1
    assert "run `python -m keyturn.docs_config`" in capsys.readouterr().err
    assert docs_config.main([]) == 0
    assert docs_config.main(["--check"]) == 0


def test_every_section_and_key_of_the_model_is_on_the_page() -> None:
    text = docs_config.render()
    for section, info in Settings.model_fields.items():
        assert f"## [{section}]" in text
        model = info.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for key in model.model_fields:
            assert f"`{section}.{key}`" in text


def test_a_new_setting_without_a_meaning_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    class Extra(BaseModel):
        brand_new_knob: int = 3

    monkeypatch.setattr(docs_config, "SECTIONS", {**docs_config.SECTIONS, "extra": Extra})
    with pytest.raises(docs_config.MissingMeaningError, match=r"extra\.brand_new_knob"):
        docs_config.render()


def test_a_field_description_documents_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    class Extra(BaseModel):
        knob: float = Field(default=2.5, ge=1, le=9, description="how far to turn it")

    monkeypatch.setattr(docs_config, "SECTIONS", {**docs_config.SECTIONS, "extra": Extra})
    assert "| `extra.knob` | number, 1–9 | `2.5` | how far to turn it |" in docs_config.render()


def test_a_meaning_for_a_removed_setting_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(docs_config.MEANINGS, "aws.gone", "a setting that was removed")
    with pytest.raises(docs_config.MissingMeaningError, match=r"aws\.gone"):
        docs_config.render()


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_every_toml_example_is_a_valid_config() -> None:
    """A documented keyturn.toml that keyturn would reject is a broken promise."""
    found = 0
    for path in _markdown_files():
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```toml\n(.*?)```", text, flags=re.S):
            found += 1
            try:
                Settings.model_validate(tomllib.loads(block))
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{path.relative_to(ROOT)}: invalid example:\n{block}\n{exc}")
    assert found >= 2


def test_readme_links_resolve() -> None:
    """The README is not part of the site, so mkdocs does not check its links."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local
    for target in local:
        assert (ROOT / target).exists(), f"README.md links to missing {target}"


def test_readme_stays_a_front_door() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) < 8000
    assert "make demo" in text
    assert "make test" in text


def test_bench_summary_writes_the_benchmarks_page() -> None:
    from bench import summary

    assert summary.PAGE == DOCS / "benchmarks.md"
    page = summary.PAGE.read_text(encoding="utf-8")
    for marker in (summary.BEGIN, summary.END, summary.HEADLINE_BEGIN, summary.HEADLINE_END):
        assert marker in page
    assert summary.SOAK_BEGIN in page
    assert summary.SOAK_END in page


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed")
def test_site_builds_strictly(tmp_path: Path) -> None:
    """A broken link, a broken anchor or a page left out of the nav fails the build."""
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "reference" / "configuration" / "index.html").exists()
