"""The everyday command line (issue 16) through real processes: progress on terminals and in
logs, --version, readable hints, a light start, export --output and portable exports, harvest
creating its system, the start message of serve, and scripts/serve installing only when
needed."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import shutil
import stat
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
import yaml
from strawberry.http.ides import get_graphql_ide_html

from catalog.demo import demo_data_dir, demo_document, load_demo
from catalog.demo.sources import generate_demo_sources
from catalog.playground import TITLE, playground_html, vendor_assets
from catalog.services import WriteServices
from catalog.settings import Settings
from tests.serving import capahub_serve

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "catalog.cli"]
SHOP_SPEC = ROOT / "tests" / "fixtures" / "harvest" / "shop-openapi.yaml"
ANSI = re.compile(r"\x1b\[")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    env.pop("NO_COLOR", None)
    env.update({"COLUMNS": "110", "TERM": "xterm-256color", **extra})
    return env


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _catalog(tmp_path: Path, text: str = "") -> str:
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    if text:
        doc = tmp_path / "doc.yaml"
        doc.write_text(text)
        done = run("apply", str(doc), "--database", db, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    return db


# -- progress -------------------------------------------------------------------------------


def test_progress_is_plain_lines_when_not_a_terminal(tmp_path: Path) -> None:
    db = _catalog(tmp_path, demo_document())
    done = run("reindex", "--database", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "indexing"
    assert any(re.fullmatch(r"indexing \((\d+)/\1\) done in \d+\.\d s", line) for line in lines)
    assert lines[-1].startswith("indexed ")
    assert not ANSI.search(done.stderr) and "━" not in done.stderr

    exported = run("export", "--database", db, cwd=tmp_path)
    assert exported.returncode == 0
    assert exported.stderr.splitlines()[0] == "exporting"
    assert "done in" in exported.stderr
    assert len(yaml.safe_load(exported.stdout)["nodes"]) > 100  # stdout is the document alone

    harvested = run(
        "harvest", "openapi", str(SHOP_SPEC), "--system", "system:webshop", "--database", db,
        cwd=tmp_path,
    )  # fmt: skip
    assert harvested.returncode == 0, harvested.stderr
    steps = harvested.stderr.splitlines()
    assert steps[0] == "harvesting source:shop-openapi (0/4)"
    assert any(s.startswith("reading ") and s.endswith("(1/4)") for s in steps)
    assert steps[-1].startswith("harvested source:shop-openapi (4/4) done in")
    assert not ANSI.search(harvested.stderr)


def _run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; its exit status and
    everything it wrote there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, *args], cwd=cwd, env=_env(), stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), out.decode(errors="replace")


def test_progress_is_a_rich_bar_on_a_terminal(tmp_path: Path) -> None:
    db = _catalog(tmp_path, demo_document())
    status, out = _run_on_a_terminal(["reindex", "--database", db], tmp_path)
    assert status == 0, out
    assert "━" in out and ANSI.search(out)  # rich's bar, drawn with escape sequences
    assert "done in" not in out  # no plain lines
    assert "indexed " in out

    status, out = _run_on_a_terminal(
        ["export", "--database", db, "--output", str(tmp_path / "x.yaml")], tmp_path
    )
    assert status == 0, out
    assert "━" in out and "exported " in out


# -- version, hints, start ------------------------------------------------------------------


def test_version_is_the_installed_distributions(tmp_path: Path) -> None:
    done = run("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == f"capahub {version('capahub')}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["apply", "--help"],
        ["export", "--help"],
        ["harvest", "--help"],
        ["reindex", "--help"],
        ["serve", "--help"],
        ["token", "create", "--help"],
    ],
)
def test_help_hints_read_naturally(args: list[str], tmp_path: Path) -> None:
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert not re.search(r"<(bool|str|int|float|path|list\[[^\]]*\])>", text), text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage  # FILES..., not {files}...
    if args[0] != "--help":
        assert re.search(r"--database\s+URL\s", text), text
    if args[0] == "apply":
        assert usage.split()[-3:] == ["apply", "[OPTIONS]", "FILES..."]
    if args[0] == "export":
        assert re.search(r"--output\s+-o\s+FILE", text) and "[yaml|json]" in text
    if args[0] == "--help":
        assert "--version" in text


def _imported(args: list[str], cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "catalog.cli", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["apply", "--help"], ["export", "--help"], ["harvest", "--help"]],
)
def test_start_imports_only_what_the_command_needs(args: list[str], tmp_path: Path) -> None:
    modules = _imported(args, tmp_path)
    assert "catalog.cli" in modules
    heavy = {"sqlalchemy", "catalog.registry", "catalog.services", "strawberry", "uvicorn"}
    assert not heavy & modules, heavy & modules
    if args == ["--version"]:
        assert "rich" not in modules


# -- export ---------------------------------------------------------------------------------

DOC = "nodes: [{id: system:a, name: A}, {id: system:b, name: B}]\nrelations: [{from: system:a, type: DEPENDS_ON, to: system:b}]\n"


def test_export_output_replaces_the_file_atomically(tmp_path: Path) -> None:
    db = _catalog(tmp_path, DOC)
    out = tmp_path / "out" / "catalog.yaml"
    out.parent.mkdir()
    out.write_text("old export\n")
    out.chmod(0o640)
    inode = out.stat().st_ino

    done = run("export", "--database", db, "--output", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert f"exported 2 nodes and 1 relations to {out}" in done.stderr
    assert out.read_text() == run("export", "--database", db, cwd=tmp_path).stdout
    # Renamed into place (a new inode), keeping the file's mode; no temporary file left.
    assert out.stat().st_ino != inode
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in out.parent.iterdir()) == ["catalog.yaml"]

    as_json = run("export", "--format", "json", "-o", str(out), "--database", db, cwd=tmp_path)
    assert as_json.returncode == 0 and json.loads(out.read_text())["relations"]

    # A failed export leaves the old file as it was.
    before = out.read_bytes()
    bad = run("export", "--database", "notaurl", "--output", str(out), cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert out.read_bytes() == before
    nowhere = run("export", "--database", db, "-o", str(tmp_path / "no" / "x.yaml"), cwd=tmp_path)
    assert nowhere.returncode == 1
    assert nowhere.stderr.splitlines()[-1].startswith(f"error: --output {tmp_path}/no/x.yaml")
    assert not (tmp_path / "no").exists()


async def _load_demo(database: str) -> None:
    settings = Settings(database_url=database)
    services = await WriteServices.start(settings)
    try:
        await load_demo(services.registry, demo_data_dir(settings))
    finally:
        await services.close()


RECORDS = """{ records(entity: "entity:customer", first: 5) {
  totalCount errors { source code message } edges { node { sources } } } }"""


def test_exported_demo_works_on_another_machine(tmp_path: Path) -> None:
    # Machine A: the demo, with its source databases beside the catalog file.
    a = tmp_path / "machine-a"
    a.mkdir()
    db_a = f"sqlite:///{a / 'hub.db'}"
    asyncio.run(_load_demo(db_a))
    assert (a / "hub-demo-data" / "crm.db").is_file()
    done = run("export", "--database", db_a, "--output", str(a / "export.yaml"), cwd=a)
    assert done.returncode == 0, done.stderr
    exported = (a / "export.yaml").read_text()
    assert str(a) not in exported and str(tmp_path) not in exported
    assert "location: sqlite:///{demo_data_dir}/crm.db" in exported
    shutil.rmtree(a / "hub-demo-data")  # machine B cannot read A's files

    # Machine B: its own demo data directory (set by CAPAHUB_DEMO_DATA_DIR), an empty catalog.
    b = tmp_path / "machine-b"
    generate_demo_sources(b / "demo")
    shutil.copy(a / "export.yaml", b / "export.yaml")
    db_b = f"sqlite:///{b / 'hub.db'}"
    env = _env(CAPAHUB_DEMO_DATA_DIR=str(b / "demo"))
    applied = run("apply", "export.yaml", "--database", db_b, cwd=b, env=env)
    assert applied.returncode == 0, applied.stderr
    again = run("export", "--database", db_b, cwd=b, env=env)
    assert again.stdout == exported  # byte-identical round trip

    with capahub_serve(b, "--database", db_b, env=env) as served:
        answer = httpx.post(
            f"{served.base}/graphql", json={"query": RECORDS}, timeout=30, trust_env=False
        ).json()
    records = answer["data"]["records"]
    assert records["errors"] == [], records["errors"]
    assert records["totalCount"] > 0
    assert {s for e in records["edges"] for s in e["node"]["sources"]} >= {"system:crm"}


# -- harvest --------------------------------------------------------------------------------


def test_harvest_creates_a_missing_system(tmp_path: Path) -> None:
    db = _catalog(tmp_path)
    dry = run(
        "harvest", "openapi", str(SHOP_SPEC), "--system", "system:shop", "--dry-run",
        "--database", db, cwd=tmp_path,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "system system:shop was not in the catalog: would be added" in dry.stdout
    assert "left out" not in dry.stdout  # planned as if the system were there
    # ... and shown in the diff, first, like every node the harvest would add.
    diff_rows = [line for line in dry.stdout.splitlines() if "added" in line and ":" in line]
    assert "system:shop" in diff_rows[0] and "Sneaker Shop Commerce API" in diff_rows[0]
    assert (
        json.loads(run("export", "--format", "json", "--database", db, cwd=tmp_path).stdout)[
            "nodes"
        ]
        == []
    )

    done = run(
        "harvest", "openapi", str(SHOP_SPEC), "--system", "system:shop", "--database", db,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        "system system:shop was not in the catalog: added, named 'Sneaker Shop Commerce API'"
        in " ".join(done.stdout.split())
    )
    added = int(re.search(r"nodes added\s*│\s*(\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    doc = json.loads(run("export", "--format", "json", "--database", db, cwd=tmp_path).stdout)
    system = next(n for n in doc["nodes"] if n["id"] == "system:shop")
    assert system == {
        "id": "system:shop",
        "name": "Sneaker Shop Commerce API",
        "lifecycle": "ACTIVE",
    }
    assert {"from": "source:shop-openapi", "type": "PART_OF", "to": "system:shop"} in doc[
        "relations"
    ]
    # The system is counted among the nodes added: one more than the harvest's own.
    harvested = sum(
        1 for n in doc["nodes"] if n["id"] not in ("system:shop", "source:shop-openapi")
    )
    assert added == harvested + 1

    again = run(
        "harvest", "openapi", str(SHOP_SPEC), "--system", "system:shop", "--database", db,
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "was not in the catalog" not in again.stdout


def test_harvest_with_no_create_system_says_how_to_create_it(tmp_path: Path) -> None:
    db = _catalog(tmp_path)
    done = run(
        "harvest", "openapi", str(SHOP_SPEC), "--system", "system:github", "--no-create-system",
        "--database", db, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "no system 'system:github' in the catalog" in done.stderr
    assert "capahub apply" in done.stderr and "{id: system:github, name: github}" in done.stderr
    assert json.loads(run("export", "--format", "json", "--database", db, cwd=tmp_path).stdout) == {
        "nodes": [],
        "relations": [],
    }


def test_a_failed_harvest_creates_no_system(tmp_path: Path) -> None:
    db = _catalog(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text('{"openapi": "3.1.0", "info": {"title": "Broken"}, "paths": {"/a": ')
    done = run(
        "harvest", "openapi", str(broken), "--system", "system:broken", "--database", db,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1 and "source:broken" in done.stderr.splitlines()[-1]
    assert (
        json.loads(run("export", "--format", "json", "--database", db, cwd=tmp_path).stdout)[
            "nodes"
        ]
        == []
    )


# -- serve ----------------------------------------------------------------------------------


def test_serve_prints_its_urls_once_listening(tmp_path: Path) -> None:
    db = _catalog(tmp_path, DOC)
    with capahub_serve(tmp_path, "--database", db, env=_env()) as served:
        deadline = time.monotonic() + 10
        while "capahub is serving" not in served.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        output = served.output()
    assert f"GraphQL API and playground: {served.base}/graphql\n" in output
    assert f"explorer:                   {served.base}/\n" in output
    # After uvicorn's own "running on" line: printed once the socket listens.
    assert output.index("Uvicorn running on") < output.index("capahub is serving")


def test_playground_title(tmp_path: Path) -> None:
    page = get_graphql_ide_html("graphiql")
    for asset in vendor_assets(page):
        target = tmp_path / asset.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("/* stand-in */")
    html = playground_html(page, tmp_path)
    assert f"<title>{TITLE}</title>" in html and "Strawberry GraphiQL" not in html
    assert TITLE == "capahub - GraphQL playground"


# -- scripts/serve --------------------------------------------------------------------------

FAKE_PYTHON = """#!/usr/bin/env bash
# The real interpreter, except that "-m pip" is only recorded.
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "pip $*" >> "$PIP_LOG"; exit 0; fi
PYTHONPATH="$CHECKOUT" exec {python} "$@"
"""
FAKE_CAPAHUB = """#!/usr/bin/env bash
echo "capahub $*"
"""


def test_scripts_serve_installs_only_when_needed(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "serve", checkout / "scripts" / "serve")
    shutil.copy(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    (checkout / "catalog").mkdir()
    (checkout / "catalog" / "__init__.py").write_text("")  # "this checkout's" package
    bin_dir = checkout / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (
        ("python", FAKE_PYTHON.format(python=sys.executable)),
        ("capahub", FAKE_CAPAHUB),
    ):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "pip.log"
    env = _env(PIP_LOG=str(log), CHECKOUT=str(checkout))

    def serve() -> tuple[str, int]:
        done = subprocess.run(
            ["bash", str(checkout / "scripts" / "serve"), "--port", "9"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == "capahub serve --demo --port 9\n"
        return done.stderr, len(log.read_text().splitlines()) if log.exists() else 0

    assert serve()[1] == 1  # no stamp yet: installed
    assert serve()[1] == 1  # nothing changed: not again
    stamp = checkout / ".venv" / ".capahub-installed"
    os.utime(stamp, (stamp.stat().st_mtime - 5,) * 2)  # pyproject.toml edited after it
    assert serve()[1] == 2  # pyproject.toml changed
    assert serve()[1] == 2
    (checkout / "catalog" / "__init__.py").unlink()  # the venv's capahub is not this checkout
    (checkout / "catalog").rmdir()
    assert serve()[1] == 3
    env["CAPAHUB_REINSTALL"] = "1"
    assert serve()[1] == 4
