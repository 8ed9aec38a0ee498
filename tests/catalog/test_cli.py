"""The capahub command line, through typer's CliRunner and as real processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from catalog.cli import app
from catalog.demo import demo_document
from tests.serving import capahub_serve

runner = CliRunner()
DOC = "nodes: [{id: system:a, name: A}, {id: system:b, name: B}]\nrelations: [{from: system:a, type: DEPENDS_ON, to: system:b}]\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_apply_then_export_round_trips(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    demo = _write(tmp_path, "demo.yaml", demo_document())
    result = runner.invoke(app, ["apply", str(demo), "--database", db])
    assert result.exit_code == 0, result.output
    assert "nodes added" in result.output
    exported = runner.invoke(app, ["export", "--database", db])
    assert exported.exit_code == 0
    doc = yaml.safe_load(exported.stdout)
    assert len(doc["nodes"]) > 100
    # Re-applying the export to the same catalog changes nothing ...
    again = runner.invoke(
        app, ["apply", str(_write(tmp_path, "x.yaml", exported.stdout)), "--database", db]
    )
    assert again.exit_code == 0
    # ... and applying it to an empty catalog reproduces it exactly.
    db2 = f"sqlite:///{tmp_path / 'b.db'}"
    as_json = runner.invoke(app, ["export", "--database", db, "--format", "json"]).stdout
    assert (
        runner.invoke(
            app, ["apply", str(_write(tmp_path, "x.json", as_json)), "--database", db2]
        ).exit_code
        == 0
    )
    assert json.loads(
        runner.invoke(app, ["export", "--database", db2, "--format", "json"]).stdout
    ) == json.loads(as_json)


def test_apply_dry_run_writes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    result = runner.invoke(
        app, ["apply", str(_write(tmp_path, "d.yaml", DOC)), "--dry-run", "--database", db]
    )
    assert result.exit_code == 0 and "dry run" in result.output
    assert yaml.safe_load(runner.invoke(app, ["export", "--database", db]).stdout) == {
        "nodes": [],
        "relations": [],
    }


def test_apply_refuses_bad_file_with_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    bad = _write(
        tmp_path,
        "bad.yaml",
        "nodes: [{id: system:a, name: A}]\nrelations: [{from: system:a, type: MASTERS, to: system:a}]\n",
    )
    result = runner.invoke(app, ["apply", str(bad), "--database", db])
    assert result.exit_code != 0
    # file:line:column: field: rule (catalog/problems.py)
    assert re.search(
        r"bad\.yaml:2:\d+: relations\[0\]\.type: MASTERS cannot go from a system to a system",
        result.output,
    ), result.output
    missing = runner.invoke(app, ["apply", str(tmp_path / "nope.yaml"), "--database", db])
    assert missing.exit_code != 0 and "cannot read" in missing.output


def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPAHUB_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert runner.invoke(app, ["apply", str(_write(tmp_path, "d.yaml", DOC))]).exit_code == 0
    assert (tmp_path / "env.db").exists()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real `capahub serve --demo` process on 127.0.0.1; yields (base URL, database URL)."""
    db = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "CAPAHUB_LOG_LEVEL": "warning"}
    with capahub_serve(tmp_path, "--demo", "--database", db, env=env) as srv:
        yield srv.base, db


def test_running_server_sees_what_apply_wrote_from_another_process(
    server: tuple[str, str], tmp_path: Path
) -> None:
    base, db = server
    q = {"query": '{ node(id: "system:new-pos") { id name ... on System { dependsOn { id } } } }'}
    assert httpx.post(f"{base}/graphql", json=q).json()["data"]["node"] is None
    doc = _write(
        tmp_path,
        "pos.yaml",
        "nodes: [{id: system:new-pos, name: New POS}]\nrelations: [{from: system:new-pos, type: DEPENDS_ON, to: system:erp}]\n",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "catalog.cli", "apply", str(doc), "--database", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    expected = {"id": "system:new-pos", "name": "New POS", "dependsOn": [{"id": "system:erp"}]}
    started = time.monotonic()
    node = httpx.post(f"{base}/graphql", json=q).json()["data"]["node"]
    while time.monotonic() - started < 5 and node != expected:
        time.sleep(0.05)
        node = httpx.post(f"{base}/graphql", json=q).json()["data"]["node"]
    assert node == expected


def test_playground_and_healthz_on_a_real_server(server: tuple[str, str]) -> None:
    base, _ = server
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    page = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_running_server_sees_a_rename_from_another_process(
    server: tuple[str, str], tmp_path: Path
) -> None:
    base, db = server
    q = {"query": '{ node(id: "system:erp") { name version } }'}
    before = httpx.post(f"{base}/graphql", json=q).json()["data"]["node"]  # now cached
    doc = _write(tmp_path, "rename.yaml", "nodes: [{id: system:erp, name: ERP renamed}]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "catalog.cli", "apply", str(doc), "--database", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 5
    node = before
    while time.monotonic() < deadline and node["name"] != "ERP renamed":
        time.sleep(0.1)
        node = httpx.post(f"{base}/graphql", json=q).json()["data"]["node"]
    assert node == {"name": "ERP renamed", "version": before["version"] + 1}


def test_cli_errors_are_one_line_on_stderr(tmp_path: Path) -> None:
    for args in (
        ["export", "--database", "notaurl"],
        ["export", "--database", "postgresql://u@127.0.0.1:1/x"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "catalog.cli", *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 1
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: cannot open"), (
            proc.stderr
        )
