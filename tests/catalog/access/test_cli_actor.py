"""The command line records who changed the catalog: the login user, or `--as`."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

from typer.testing import CliRunner

from catalog.cli import app
from metadata.store import Change, Store

DOC = "nodes:\n  - {id: system:a, name: A}\n"


def _history(url: str, node: str) -> list[Change]:
    async def read() -> list[Change]:
        store = await Store.open(url)
        try:
            async with store.read() as r:
                return await r.history_of(node, limit=10)
        finally:
            await store.close()

    return asyncio.run(read())


def test_apply_records_the_local_user_or_the_as_option(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    doc = tmp_path / "a.yaml"
    doc.write_text(DOC)
    assert CliRunner().invoke(app, ["apply", str(doc), "--database", url]).exit_code == 0
    doc.write_text(DOC.replace("name: A", "name: A2"))
    result = CliRunner().invoke(app, ["apply", str(doc), "--database", url, "--as", "ci:nightly"])
    assert result.exit_code == 0, result.output
    newest, first = _history(url, "system:a")
    assert newest.actor == "ci:nightly" and first.actor == f"local:{getpass.getuser()}"
    assert newest.request_id and newest.request_id.startswith("cli-")
    assert newest.request_id != first.request_id


def test_as_refuses_unprintable_or_long_names(tmp_path: Path) -> None:
    doc = tmp_path / "a.yaml"
    doc.write_text(DOC)
    for bad in ("x" * 201, "bad\nname"):
        result = CliRunner().invoke(
            app, ["apply", str(doc), "--database", f"sqlite:///{tmp_path}/c.db", "--as", bad]
        )
        assert result.exit_code == 1 and "--as" in result.output
