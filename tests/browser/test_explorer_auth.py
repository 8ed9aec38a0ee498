"""The explorer on a hub with access control on, in headless Debian chromium.

``capahub serve --demo`` runs with ``CAPAHUB_AUTH=on``; the real CLI makes a viewer token.
``explorer.mjs auth`` opens the map without a token (the sign-in prompt), tries a wrong token
(refused, the hub's reason shown), signs in with the right one (the map loads), meets the
API's refusal of a viewer's write, and signs out. The token reaches the driver through its
environment, and the report has it as ``<TOKEN>`` wherever it would have appeared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serving import capahub_serve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("explorer.mjs")
CAPAHUB = Path(sys.executable).with_name("capahub")
UNAUTHENTICATED_CONSOLE = "the server responded with a status of 401"
TOKEN_KEY = "capahub.explorer.token"
SCREENSHOTS = ROOT / "docs" / "img" / "explorer"


@pytest.fixture(scope="module")
def report(node: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the driver saw on the explorer of a hub with auth on."""
    tmp = tmp_path_factory.mktemp("explorer-auth")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    env["CAPAHUB_AUTH"] = "on"
    database = f"sqlite:///{tmp / 'x.db'}"
    with capahub_serve(
        tmp,
        "--demo",
        "--host",
        "127.0.0.1",
        "--database",
        database,
        env=env,
        command=[str(CAPAHUB)],
    ) as srv:
        created = subprocess.run(
            [str(CAPAHUB), "token", "create", "--name", "explorer", "--role", "viewer"]
            + ["--database", database],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, f"capahub token create failed:\n{created.stderr}"
        token = created.stdout.strip().splitlines()[-1]
        done = subprocess.run(
            [node, str(DRIVER), "auth", srv.base, str(tmp)],
            cwd=ROOT,
            env={**env, "CAPAHUB_EXPLORER_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, f"explorer.mjs failed ({done.returncode}):\n{done.stderr}"
    assert token not in done.stdout + done.stderr, "explorer.mjs printed the token"
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["error"] is None, f"{result['error']}\nartifacts: {tmp}"
    if os.environ.get("CAPAHUB_UPDATE_SCREENSHOTS") == "1":  # as test_explorer.py does
        shutil.copyfile(tmp / "sign-in-1280.png", SCREENSHOTS / "sign-in-1280.png")
    return result


def test_without_a_token_the_sign_in_prompt_appears(report: dict[str, Any]) -> None:
    before = report["before"]
    assert "Sign in" in before["text"]
    assert "This hub needs a token to answer." in before["text"]
    assert "capahub token create" in before["text"]
    assert "Traceback" not in before["text"] and "Error:" not in before["text"]
    assert before["focused"] == "token"
    assert before["violations"] == []


def test_a_refused_token_shows_the_hubs_reason(report: dict[str, Any]) -> None:
    assert "The hub refused the token: " in report["refused"]["text"]
    assert "not a hub token" in report["refused"]["text"]


def test_after_signing_in_the_data_loads(report: dict[str, Any]) -> None:
    after = report["after"]
    assert after["boxes"] == 104
    assert "Token in use" in after["session"]
    # Kept for this tab only, never in localStorage or the URL.
    assert after["inSession"] == [TOKEN_KEY]
    assert after["inLocal"] == []
    assert "<TOKEN>" not in after["url"]
    assert report["signedOut"] == 0


def test_the_token_travels_as_a_bearer_header(report: dict[str, Any]) -> None:
    sent = {(r["operation"], r["authorization"], r["status"]) for r in report["graphql"]}
    assert ("ExplorerMap", "none", 401) in sent
    assert ("ExplorerMap", "other", 401) in sent
    assert ("ExplorerMap", "token", 200) in sent


def test_a_viewers_write_is_refused_with_the_apis_message(report: dict[str, Any]) -> None:
    assert "needs the editor role" in report["forbidden"] or "FORBIDDEN" in report["forbidden"]
    codes = {
        c
        for r in report["graphql"]
        if r["operation"] == "ExplorerRegisterCapability"
        for c in r["codes"]
    }
    assert codes == {"FORBIDDEN"}


def test_page_stays_on_the_host_without_errors(report: dict[str, Any]) -> None:
    assert report["offMachineRequests"] == []
    assert report["pageErrors"] == []
    assert [m for m in report["consoleErrors"] if UNAUTHENTICATED_CONSOLE not in m] == []
