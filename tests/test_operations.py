"""Operations: /readyz, /metrics, ``extensions.catalogVersion`` and read-your-writes across
replicas with ``X-Capahub-Catalog-Version`` (docs/deployment.md)."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog.operations import MAX_OPERATION_LABELS
from tests.conftest import AUTH_ON, PG_URL, GraphQLClient, _fresh_pg_database
from tests.serving import capahub_serve

UPSERT = """mutation Up($id: ID!, $name: String!) {
  upsertNode(input: {id: $id, name: $name}) { id }
}"""
NODE = "query One($id: ID!) { node(id: $id) { id name } }"


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a Prometheus text exposition, by sample name."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_readyz_says_ready_with_the_version_it_is_at(gql: GraphQLClient) -> None:
    gql.data(UPSERT, {"id": "system:crm", "name": "CRM"})
    resp = gql.http.get("/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready"
    assert body["behind"] == 0
    assert body["version"] == body["committed"] >= 1


def test_readyz_waits_for_the_cost_statistics_and_the_findings_are_primed(
    app_factory: Callable[..., GraphQLClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 1,000,000 nodes the cost limit's statistics are a pass of seconds: a replica that said
    # ready before them made its first request work them out on the event loop (16 s).
    from resolvers import cost

    real = cost.catalog_statistics
    release = threading.Event()

    def slow(graph: object) -> object:
        release.wait(10)
        return real(graph)  # type: ignore[arg-type]

    monkeypatch.setattr(cost, "catalog_statistics", slow)
    gql = app_factory()
    resp = gql.http.get("/readyz")
    assert resp.status_code == 503 and resp.json()["status"] == "warming up"
    assert gql.http.get("/healthz").status_code == 200  # alive meanwhile
    release.set()
    deadline = time.monotonic() + 10
    while gql.http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gql.http.get("/readyz").json()["status"] == "ready"
    # Then the gaps and redundancies were worked out in the background (catalog/findings.py).
    analysis = gql.http.app.state.services.analysis  # type: ignore[attr-defined]
    while analysis._gaps._index is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert analysis._gaps._index is not None and analysis._redundancies._index is not None


def test_answers_state_the_catalog_version_and_a_write_states_its_own(
    gql: GraphQLClient,
) -> None:
    before = gql.post(NODE, {"id": "system:crm"})["extensions"]["catalogVersion"]
    written = gql.post(UPSERT, {"id": "system:crm", "name": "CRM"})
    after_write = written["extensions"]["catalogVersion"]
    assert after_write > before
    health = gql.http.get("/healthz").json()
    assert after_write == health["change"]  # the id of the change it committed
    # A repeated query takes the prepared lane (resolvers/prepared.py): the version is there too.
    for _ in range(3):
        again = gql.post(NODE, {"id": "system:crm"})
        assert again["data"]["node"]["name"] == "CRM"
        assert again["extensions"]["catalogVersion"] >= after_write


@pytest.mark.parametrize(
    ("value", "code", "status"),
    [
        ("abc", "BAD_USER_INPUT", 400),
        ("-1", "BAD_USER_INPUT", 400),
        ("1" * 30, "BAD_USER_INPUT", 400),
    ],
)
def test_a_malformed_version_header_is_refused_naming_it(
    gql: GraphQLClient, value: str, code: str, status: int
) -> None:
    resp = gql.http.post(
        "/graphql",
        json={"query": NODE, "variables": {"id": "system:x"}},
        headers={"X-Capahub-Catalog-Version": value},
    )
    assert resp.status_code == status
    error = resp.json()["errors"][0]
    assert error["extensions"]["code"] == code
    assert "X-Capahub-Catalog-Version" in error["message"]


def test_a_version_ahead_of_anything_committed_waits_boundedly_then_is_unavailable(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    gql = app_factory(version_wait=0.3)
    gql.data(UPSERT, {"id": "system:crm", "name": "CRM"})
    reached = gql.http.post(
        "/graphql",
        json={"query": NODE, "variables": {"id": "system:crm"}},
        headers={"X-Capahub-Catalog-Version": "1"},
    )
    assert reached.status_code == 200 and reached.json()["data"]["node"]["name"] == "CRM"
    started = time.monotonic()
    resp = gql.http.post(
        "/graphql",
        json={"query": NODE, "variables": {"id": "system:crm"}},
        headers={"X-Capahub-Catalog-Version": "1000000"},
    )
    waited = time.monotonic() - started
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"
    error = resp.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert "ahead of anything committed" in error["message"]
    assert 0.25 <= waited < 5


def test_metrics_count_requests_by_operation_and_describe_the_catalog(
    gql: GraphQLClient,
) -> None:
    gql.data(UPSERT, {"id": "system:crm", "name": "CRM"})
    for _ in range(3):
        gql.data(NODE, {"id": "system:crm"})
    resp = gql.http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    got = samples(resp.text)
    counts = {
        (labels["route"], labels["operation"], labels["status"]): value
        for labels, value in got["capahub_request_duration_seconds_count"]
    }
    assert counts[("/graphql", "One", "200")] == 3
    assert counts[("/graphql", "Up", "200")] == 1
    assert got["capahub_projection_nodes"] == [({}, 1.0)]
    [(_, version)] = got["capahub_catalog_version"]
    assert version >= 1
    assert got["capahub_replica_lag_changes"] == [({}, 0.0)]


def test_operation_names_get_a_bounded_number_of_series(gql: GraphQLClient) -> None:
    for i in range(MAX_OPERATION_LABELS + 40):
        gql.post(f"query Op{i} {{ __typename }}")
    gql.post("query { __typename }")
    names = {
        labels["operation"]
        for labels, _ in samples(gql.http.get("/metrics").text)[
            "capahub_request_duration_seconds_count"
        ]
    }
    assert "other" in names
    assert len(names - {"other", ""}) <= MAX_OPERATION_LABELS


def test_unknown_paths_share_one_route_series(gql: GraphQLClient) -> None:
    for i in range(20):
        gql.http.get(f"/scan-{i}")
    routes = {
        labels["route"]
        for labels, _ in samples(gql.http.get("/metrics").text)[
            "capahub_request_duration_seconds_count"
        ]
    }
    assert "other" in routes
    assert not any(r.startswith("/scan") for r in routes)


def test_with_auth_on_metrics_need_a_valid_token(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    gql = app_factory(auth="on")
    refused = gql.http.get("/metrics", headers={"Authorization": ""})
    if not AUTH_ON:
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    bad = gql.http.get("/metrics", headers={"Authorization": "Bearer chub_nonsense"})
    assert bad.status_code == 401
    services = gql.http.app.state.services  # type: ignore[attr-defined]
    _, token = gql.http.portal.call(  # type: ignore[union-attr]
        functools.partial(services.tokens.create, "scraper", "viewer", created_by="tests")
    )
    ok = gql.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert "capahub_request_duration_seconds" in ok.text


def test_metrics_can_be_turned_off(app_factory: Callable[..., GraphQLClient]) -> None:
    gql = app_factory(metrics=False)
    assert gql.http.get("/metrics").status_code == 404


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="CAPAHUB_TEST_DATABASE_URL is not set")
def test_read_your_writes_across_two_replicas_on_postgresql(tmp_path: Path) -> None:
    """A write through one real ``serve``, then a read through the other with the version the
    write stated: the other replica answers from that version, though it polls the change log
    only every 30 s."""
    url = _fresh_pg_database()
    env = {
        **os.environ,
        "CAPAHUB_DATABASE_URL": url,
        "CAPAHUB_AUTH": "off",
        "CAPAHUB_SYNC_INTERVAL": "30",
        "CAPAHUB_READ_SYNC_INTERVAL": "30",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        capahub_serve(tmp_path / "a", env=env) as a,
        capahub_serve(tmp_path / "b", env=env) as b,
        httpx.Client(trust_env=False, timeout=10) as http,
    ):
        # b reads once, so its next read would trust its projections for 30 s
        first = http.post(
            f"{b.base}/graphql", json={"query": NODE, "variables": {"id": "system:crm"}}
        )
        assert first.json()["data"]["node"] is None
        wrote = http.post(
            f"{a.base}/graphql",
            json={"query": UPSERT, "variables": {"id": "system:crm", "name": "CRM"}},
        ).json()
        version = wrote["extensions"]["catalogVersion"]
        fresh = http.post(
            f"{b.base}/graphql",
            json={"query": "{ systems(first: 5) { totalCount } }"},
            headers={"X-Capahub-Catalog-Version": str(version)},
        ).json()
        assert fresh["data"]["systems"]["totalCount"] == 1
        assert fresh["extensions"]["catalogVersion"] >= version
        ready = http.get(f"{b.base}/readyz")
        assert ready.status_code == 200 and ready.json()["behind"] == 0


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="CAPAHUB_TEST_DATABASE_URL is not set")
def test_readers_never_see_half_of_a_transaction_across_replicas(tmp_path: Path) -> None:
    """One replica commits 300 relations in one transaction while another is polled: every
    answer holds none of them or all of them."""
    url = _fresh_pg_database()
    # The poller is one caller asking as fast as it can for a list that grows to 300: with
    # the default cost budget it was refused (RATE_LIMITED) within the 1.5 s on a fast run.
    env = {
        **os.environ,
        "CAPAHUB_DATABASE_URL": url,
        "CAPAHUB_AUTH": "off",
        "CAPAHUB_COST_PER_MINUTE": "0",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    systems = [{"id": f"system:s{i}", "name": f"S{i}"} for i in range(301)]
    apply = """mutation A($doc: String!) { applyCatalog(document: $doc) { added } }"""
    import json

    with (
        capahub_serve(tmp_path / "a", env=env) as a,
        capahub_serve(tmp_path / "b", env=env) as b,
        httpx.Client(trust_env=False, timeout=30) as http,
    ):
        nodes_doc = json.dumps({"nodes": systems})
        assert (
            not http.post(
                f"{a.base}/graphql", json={"query": apply, "variables": {"doc": nodes_doc}}
            )
            .json()
            .get("errors")
        )
        rels = [
            {"from": "system:s0", "type": "DEPENDS_ON", "to": f"system:s{i}"} for i in range(1, 301)
        ]
        seen: list[int] = []
        stop = threading.Event()

        def poll() -> None:
            query = '{ node(id: "system:s0") { ... on System { dependsOn { id } } } }'
            with httpx.Client(trust_env=False, timeout=30) as reader:
                while not stop.is_set():
                    body = reader.post(f"{b.base}/graphql", json={"query": query}).json()
                    assert "errors" not in body, body
                    seen.append(len(body["data"]["node"]["dependsOn"]))

        reader = threading.Thread(target=poll)
        reader.start()
        try:
            time.sleep(0.3)
            doc = json.dumps({"nodes": systems, "relations": rels})
            body = http.post(
                f"{a.base}/graphql", json={"query": apply, "variables": {"doc": doc}}
            ).json()
            assert not body.get("errors"), body
            time.sleep(1.5)
        finally:
            stop.set()
            reader.join()
    assert seen and set(seen) <= {0, 300}, sorted(set(seen))
    assert seen[-1] == 300
