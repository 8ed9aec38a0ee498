"""GraphQL over HTTP (catalog/http.py): status codes, media types and error bodies on /graphql."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.http import GRAPHQL_RESPONSE_JSON, JSON, negotiate_media_type
from catalog.settings import Settings
from tests.serving import capahub_serve

ROOT = Path(__file__).resolve().parents[2]
AUDIT_SCRIPT = Path(__file__).with_name("audit.mjs")
GQLR = {"accept": GRAPHQL_RESPONSE_JSON}
LEGACY = {"accept": JSON}
TYPENAME = {"query": "{ __typename }"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A client on the real app over an empty SQLite catalog."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", _env_file=None)
    with TestClient(create_app(settings)) as client:
        yield client


def answer(resp: httpx.Response) -> dict[str, Any]:
    """The body of an answered request without ``extensions.cost`` (docs/limits.md)."""
    body: dict[str, Any] = resp.json()
    extensions = body.pop("extensions", {})
    assert set(extensions) == {"cost", "catalogVersion"}, extensions
    return body


def assert_request_error(resp: httpx.Response, status: int, code: str = "BAD_USER_INPUT") -> str:
    """Check a refused request: status, JSON media type, GraphQL-shaped body; return its message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(("application/json", GRAPHQL_RESPONSE_JSON))
    body = resp.json()
    assert set(body) == {"errors"}
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert error["message"]
    message: str = error["message"]
    return message


# Content negotiation


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON}", GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON};q=0.5, application/json", JSON),
        ("application/json, */*;q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, */*", GRAPHQL_RESPONSE_JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),
        ("text/html", None),
        ("application/json;q=0", None),
        ("application/json;q=oops", None),
    ],
)
def test_negotiate_media_type_follows_accept(accept: str | None, expected: str | None) -> None:
    assert negotiate_media_type(accept) == expected


def test_post_accepting_graphql_response_json_answers_with_it(client: TestClient) -> None:
    resp = client.post("/graphql", json=TYPENAME, headers=GQLR)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    assert resp.headers["vary"] == "Accept"
    assert answer(resp) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
def test_post_accepting_json_or_anything_answers_application_json(
    client: TestClient, accept: str | None
) -> None:
    headers = {"accept": accept} if accept else {}
    resp = client.post("/graphql", json=TYPENAME, headers=headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == JSON
    assert answer(resp) == {"data": {"__typename": "Query"}}


def test_unacceptable_accept_is_406(client: TestClient) -> None:
    resp = client.post("/graphql", json=TYPENAME, headers={"accept": "text/csv"})
    assert "Accept" in assert_request_error(resp, 406)
    assert resp.headers["content-type"] == JSON


def test_get_with_query_and_unacceptable_accept_is_406(client: TestClient) -> None:
    resp = client.get("/graphql", params=TYPENAME, headers={"accept": "text/html"})
    assert_request_error(resp, 406)


def test_browser_get_without_query_shows_the_playground(client: TestClient) -> None:
    resp = client.get("/graphql", headers={"accept": "text/html"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")


# Results: 200 for executed operations, 400 without `data` for request errors (graphql-response)


def test_parse_error_is_400_without_data_for_graphql_response_json(client: TestClient) -> None:
    resp = client.post("/graphql", json={"query": "{"}, headers=GQLR)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    body = resp.json()
    assert "data" not in body
    assert body["errors"][0]["message"].startswith("Syntax Error")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_parse_error_is_200_without_data_for_application_json(client: TestClient) -> None:
    resp = client.post("/graphql", json={"query": "{"}, headers=LEGACY)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == JSON
    body = resp.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(("headers", "status"), [(GQLR, 400), (LEGACY, 200)])
def test_validation_error_status_depends_on_media_type(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    resp = client.post("/graphql", json={"query": "{ noSuchField }"}, headers=headers)
    assert resp.status_code == status
    body = resp.json()
    assert "data" not in body
    assert "noSuchField" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(("headers", "status"), [(GQLR, 400), (LEGACY, 200)])
def test_variable_coercion_error_status_depends_on_media_type(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    query = "query($id: ID!) { node(id: $id) { id } }"
    resp = client.post("/graphql", json={"query": query, "variables": {}}, headers=headers)
    assert resp.status_code == status
    body = resp.json()
    assert "data" not in body
    assert "$id" in body["errors"][0]["message"]


def test_field_error_is_200_with_data_for_graphql_response_json(client: TestClient) -> None:
    resp = client.post("/graphql", json={"query": '{ node(id: "bogus") { id } }'}, headers=GQLR)
    assert resp.status_code == 200
    body = resp.json()
    assert body["data"] == {"node": None}
    assert body["errors"][0]["path"] == ["node"]


def test_post_accepts_utf8_charset_and_non_ascii(client: TestClient) -> None:
    query = '{ __type(name: "Run🏃Swim🏊") { name } }'
    resp = client.post(
        "/graphql",
        content=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json; charset=utf-8", **GQLR},
    )
    assert resp.status_code == 200
    assert answer(resp) == {"data": {"__type": None}}


# GET


def test_get_executes_a_query_with_json_variables(client: TestClient) -> None:
    params = {
        "query": "query($name: String!) { __type(name: $name) { name } }",
        "variables": json.dumps({"name": "Query"}),
    }
    resp = client.get("/graphql", params=params, headers=GQLR)
    assert resp.status_code == 200
    assert answer(resp) == {"data": {"__type": {"name": "Query"}}}


def test_get_ignores_empty_optional_parameters(client: TestClient) -> None:
    params = {"query": "{ __typename }", "variables": "", "operationName": "", "extensions": ""}
    resp = client.get("/graphql", params=params, headers=LEGACY)
    assert resp.status_code == 200
    assert answer(resp) == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("headers", [GQLR, LEGACY])
def test_get_mutation_is_405_and_allows_post(client: TestClient, headers: dict[str, str]) -> None:
    resp = client.get("/graphql", params={"query": "mutation { __typename }"}, headers=headers)
    assert "POST" in assert_request_error(resp, 405)
    assert resp.headers["allow"] == "POST"


def test_get_with_invalid_variables_json_is_400(client: TestClient) -> None:
    params = {"query": "{ __typename }", "variables": "{not json"}
    resp = client.get("/graphql", params=params, headers=LEGACY)
    assert_request_error(resp, 400)


def test_get_without_query_is_400(client: TestClient) -> None:
    resp = client.get("/graphql", headers=LEGACY)
    assert "query" in assert_request_error(resp, 400)


def test_head_is_405_and_names_the_allowed_methods(client: TestClient) -> None:
    resp = client.head("/graphql", headers=LEGACY)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, POST"


# POST body and parameters


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_post_in_an_unsupported_media_type_is_415(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    resp = client.post("/graphql", content=json.dumps(TYPENAME).encode(), headers=headers)
    assert "Content-Type" in assert_request_error(resp, 415)


@pytest.mark.parametrize("headers", [GQLR, LEGACY])
def test_unparsable_json_body_is_400_with_json_error(
    client: TestClient, headers: dict[str, str]
) -> None:
    resp = client.post(
        "/graphql",
        content=b'{ "not a JSON',
        headers={"content-type": "application/json", **headers},
    )
    assert "JSON" in assert_request_error(resp, 400)
    assert resp.headers["content-type"] == headers["accept"]


def test_empty_body_is_400(client: TestClient) -> None:
    resp = client.post("/graphql", headers={"content-type": "application/json"})
    assert "empty" in assert_request_error(resp, 400)


@pytest.mark.parametrize("body", ["42", '"{ __typename }"', "null", "true"])
def test_body_that_is_not_an_object_is_400(client: TestClient, body: str) -> None:
    resp = client.post(
        "/graphql", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert "object" in assert_request_error(resp, 400)


def test_batch_is_refused_with_400(client: TestClient) -> None:
    resp = client.post("/graphql", json=[TYPENAME, TYPENAME])
    assert "Batching" in assert_request_error(resp, 400)


@pytest.mark.parametrize("headers", [GQLR, LEGACY])
def test_missing_query_is_400(client: TestClient, headers: dict[str, str]) -> None:
    resp = client.post("/graphql", json={"qeury": "{ __typename }"}, headers=headers)
    assert "query" in assert_request_error(resp, 400)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("query", {"obj": "ect"}),
        ("query", 0),
        ("query", ["array"]),
        ("operationName", False),
        ("operationName", {"obj": "ect"}),
        ("variables", "string"),
        ("variables", ["array"]),
        ("extensions", 0),
        ("extensions", "string"),
    ],
)
def test_parameter_of_the_wrong_type_is_400(client: TestClient, parameter: str, value: Any) -> None:
    body = {"query": "{ __typename }", parameter: value}
    resp = client.post("/graphql", json=body)
    assert f"`{parameter}`" in assert_request_error(resp, 400)


@pytest.mark.parametrize("parameter", ["variables", "operationName", "extensions"])
def test_null_optional_parameter_is_accepted(client: TestClient, parameter: str) -> None:
    resp = client.post("/graphql", json={"query": "{ __typename }", parameter: None}, headers=GQLR)
    assert resp.status_code == 200
    assert answer(resp) == {"data": {"__typename": "Query"}}


def test_unknown_operation_name_is_400(client: TestClient) -> None:
    body = {"query": "query A { __typename }", "operationName": "B"}
    resp = client.post("/graphql", json=body, headers=GQLR)
    assert '"B"' in assert_request_error(resp, 400)


# The graphql-http audit suite against the real server


def _capahub_command() -> list[str]:
    script = Path(sys.executable).with_name("capahub")
    if script.exists():
        return [str(script)]
    found = shutil.which("capahub")
    if found is None:
        pytest.skip("the `capahub` command is not installed (pip install -e .)")
    return [found]


@pytest.fixture
def served_url(tmp_path: Path) -> Iterator[str]:
    """The /graphql URL of `capahub serve` (the installed command) on a free local port."""
    database = f"sqlite:///{tmp_path / 'c.db'}"
    with capahub_serve(tmp_path, "--database", database, command=_capahub_command()) as srv:
        yield f"{srv.base}/graphql"


def test_graphql_http_audit_reports_no_errors_or_warnings(served_url: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not installed (.ci/run installs nodejs)")
    if not (ROOT / "node_modules" / "graphql-http" / "package.json").exists():
        pytest.skip("node_modules/graphql-http is missing (run `npm ci`)")
    run = subprocess.run(
        [node, str(AUDIT_SCRIPT), served_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert len(results) >= 60  # the whole suite ran (61 audits in graphql-http 1.23)
    failed = [r for r in results if r["status"] in ("error", "warn")]
    assert failed == []
    # The optional (MAY) audits pass too: a notice would mean a behaviour regressed.
    assert [r for r in results if r["status"] != "ok"] == []


def test_a_client_that_hangs_up_mid_body_is_not_an_error(served_url: str, tmp_path: Path) -> None:
    """A request whose body never fully arrives ends quietly: no traceback in the log."""
    host, port = served_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"query": "{ __typ'
        )
    time.sleep(0.5)
    resp = httpx.post(served_url, json={"query": "{ __typename }"}, timeout=10)
    assert answer(resp) == {"data": {"__typename": "Query"}}
    log = (tmp_path / "serve.log").read_text()
    assert "Exception in ASGI application" not in log and "ClientDisconnect" not in log
