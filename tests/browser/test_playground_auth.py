"""The playground of a hub with access control on, in headless Debian chromium.

A real ``capahub serve --demo`` runs with ``CAPAHUB_AUTH=on`` on a fresh SQLite file, the real
CLI makes a viewer token, and ``playground_auth.mjs`` runs a query without it (the notice shows),
pastes it into GraphiQL's header editor and runs the query again (the notice goes). The token
reaches the driver through its environment, and the driver's report replaces it by ``<TOKEN>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serving import capahub_serve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("playground_auth.mjs")
CAPAHUB = Path(sys.executable).with_name("capahub")
UNAUTHENTICATED_CONSOLE = "the server responded with a status of 401"


@pytest.fixture(scope="module")
def report(node: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the browser driver saw on the playground of a hub with auth on."""
    tmp = tmp_path_factory.mktemp("hub-auth")
    # No CAPAHUB_* from the caller's environment, no .env (cwd is tmp): auth on, nothing else.
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
            [str(CAPAHUB), "token", "create", "--name", "ui", "--role", "viewer"]
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
            [node, str(DRIVER), f"{srv.base}/graphql", str(tmp)],
            cwd=ROOT,
            env={**env, "CAPAHUB_PLAYGROUND_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, f"playground_auth.mjs failed ({done.returncode}):\n{done.stderr}"
    leaked = token in done.stdout + done.stderr
    assert not leaked, "playground_auth.mjs printed the token"
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["error"] is None, (
        f"{result['error']}\nscreenshot: {tmp / 'playground-auth-failure.png'}\n"
        f"report: {json.dumps(result, indent=2)}"
    )
    result["artifacts"] = str(tmp)
    return result


def test_query_without_token_shows_the_notice_and_unauthenticated(report: dict[str, Any]) -> None:
    assert report["noticeAfterLoad"] is True
    before = report["before"]
    assert before["noticeVisible"] is True
    assert "This hub needs a token." in before["noticeText"]
    assert '{"Authorization": "Bearer <token>"}' in before["noticeText"]
    assert "capahub token create" in before["noticeText"]
    error = json.loads(before["result"])["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in json.loads(before["result"])
    assert Path(report["artifacts"], "playground-auth-unauthenticated.png").is_file()


def test_refused_token_keeps_the_notice_with_the_hubs_reason(report: dict[str, Any]) -> None:
    refused = report["refused"]
    assert refused["noticeVisible"] is True
    assert "The hub refused the Authorization header: " in refused["noticeText"]
    assert "not a hub token" in refused["noticeText"]


def test_token_pasted_into_the_header_editor_runs_the_query(report: dict[str, Any]) -> None:
    assert report["openHeadersFocusesEditor"] is True
    assert report["headerEditorHoldsToken"] is True
    after = report["after"]
    assert json.loads(after["result"])["data"] == {"node": {"id": "system:crm", "name": "CRM"}}
    assert '"CRM"' in after["resultShown"]
    assert after["noticeVisible"] is False
    # The schema is read again with the token, so Docs and autocompletion work.
    assert report["schemaRefetchStatus"] == 200
    assert report["docsShowRootTypes"] is True
    assert Path(report["artifacts"], "playground-auth-authenticated.png").is_file()


def test_token_travels_only_in_the_authorization_header(report: dict[str, Any]) -> None:
    # The driver writes <TOKEN> wherever the token appeared: in no URL, result or page text.
    assert "<TOKEN>" not in json.dumps(report)
    requests = report["graphqlRequests"]
    sent = [(r["operationName"], r["authorization"], r["status"]) for r in requests]
    assert ("IntrospectionQuery", "none", 401) in sent
    assert ("CrmSystem", "none", 401) in sent
    assert ("CrmSystem", "token", 200) in sent
    assert ("CrmSystem", "other", 401) in sent
    assert ("IntrospectionQuery", "token", 200) in sent
    # As docs/playground.md says: GraphiQL keeps the header editor in this browser's storage.
    assert report["headersKeptInLocalStorage"] is True


def test_page_stays_on_the_host_without_errors(report: dict[str, Any]) -> None:
    assert report["offMachineRequests"] == []
    assert report["pageErrors"] == []
    unexpected = [m for m in report["consoleErrors"] if UNAUTHENTICATED_CONSOLE not in m]
    assert unexpected == []
