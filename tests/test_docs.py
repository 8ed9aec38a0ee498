"""Docs stay true: every setting is documented, README names the commands CI runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from catalog.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "settings.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`{name}`" in doc, f"docs/settings.md lacks {name}"
        assert f"`CAPAHUB_{name.upper()}`" in doc, f"docs/settings.md lacks CAPAHUB_{name.upper()}"
        assert field.description, f"Settings.{name} has no description"


def test_readme_gives_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/serve" in readme and "capahub serve --demo" in readme
    assert "scripts/test" in readme
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_readme_examples_run_on_the_demo(demo_gql: Any) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) >= 6
    for block in blocks:
        body = demo_gql.post(block)
        assert not body.get("errors"), (block, body.get("errors"))
        assert body["data"], block
