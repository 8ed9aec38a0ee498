"""Access control through the real app with auth on: tokens, roles, ownership, masking, audit."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from catalog.access.masking import masked_key
from catalog.access.permissions import PERMISSIONS
from catalog.services import Services
from metadata.tables import history, nodes, relations
from tests.conftest import GraphQLClient

ALL_OPS = {c for c in PERMISSIONS if c.startswith(("Query.", "Mutation."))}


class Hub:
    """A hub with auth on and the demo loaded; issues tokens and counts what is stored."""

    def __init__(self, client: GraphQLClient) -> None:
        self.http = client.http
        self.services: Services = self.http.app.state.services  # type: ignore[attr-defined]

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.http.portal.call(functools.partial(fn, *args, **kwargs))  # type: ignore[union-attr]

    def token(
        self, name: str, role: str, teams: tuple[str, ...] = (), rights: tuple[str, ...] = ()
    ) -> str:
        _, text = self.call(
            self.services.tokens.create, name, role, teams=teams, rights=rights, created_by="test"
        )
        return str(text)

    def post(
        self, query: str, token: str | None, variables: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    def body(self, query: str, token: str | None, **variables: Any) -> dict[str, Any]:
        resp = self.post(query, token, variables)
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    def counts(self) -> tuple[int, int, int]:
        async def count() -> tuple[int, int, int]:
            async with self.services.store.read() as r:
                got = []
                for table in (nodes, relations, history):
                    got.append(
                        int(
                            (
                                await r.conn.execute(select(func.count()).select_from(table))
                            ).scalar_one()
                        )
                    )
                return got[0], got[1], got[2]

        result: tuple[int, int, int] = self.call(count)
        return result


@pytest.fixture
def hub(app_factory: Callable[..., GraphQLClient]) -> Hub:
    return Hub(app_factory(demo=True, auth="on"))


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


NODE = '{ node(id: "system:crm") { id name } }'


def test_a_request_without_a_token_is_401_with_a_challenge(hub: Hub) -> None:
    for resp in (
        hub.post(NODE, None),
        hub.http.get("/graphql", params={"query": NODE}, headers={"Accept": "application/json"}),
    ):
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == 'Bearer realm="capahub"'
        err = resp.json()["errors"][0]
        assert err["extensions"]["code"] == "UNAUTHENTICATED"
        assert "Authorization: Bearer" in err["message"]
    # The playground page itself and /healthz need no token.
    page = hub.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert hub.http.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer chub_not-a-real-token-0000000000000000000000000",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer " + "a" * 20_000,
    ],
)
def test_a_bad_token_is_401_and_never_echoed(hub: Hub, header: str) -> None:
    before = hub.counts()
    resp = hub.http.post(
        "/graphql",
        json={"query": 'mutation { retire(id: "system:crm") { id } }'},
        headers={"Authorization": header},
    )
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    secret = header.partition(" ")[2]
    if len(secret) > 8:
        assert secret not in resp.text and secret not in resp.headers["www-authenticate"]
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert hub.counts() == before


def test_the_prepared_lane_checks_the_token_too(hub: Hub) -> None:
    viewer = hub.token("viewer", "viewer")
    for _ in range(3):  # the second time on, the query text is a prepared one
        assert hub.body(NODE, viewer)["data"]["node"]["id"] == "system:crm"
        assert hub.post(NODE, None).status_code == 401
    assert hub.services.graph.version  # sanity: projections loaded
    assert hub.http.app.state.schema.prepared.hits >= 2  # type: ignore[attr-defined]


def test_a_viewer_reads_everything_but_may_not_write(hub: Hub) -> None:
    viewer = hub.token("viewer", "viewer")
    body = hub.body(
        """{ a: node(id: "system:crm") { id }
             impact(id: "system:crm", depth: 1) { affected { node { id } } }
             search(query: "order", first: 1) { totalCount } }""",
        viewer,
    )
    assert not body.get("errors") and body["data"]["a"]["id"] == "system:crm"
    before = hub.counts()
    body = hub.body('mutation { retire(id: "system:crm") { id } }', viewer)
    assert codes(body) == ["FORBIDDEN"]
    assert "needs the editor role" in body["errors"][0]["message"]
    assert hub.counts() == before


def test_an_editor_writes_only_what_their_team_owns(hub: Hub) -> None:
    editor = hub.token("web-editor", "editor", teams=("team:commerce-platform",))
    ok = hub.body(
        'mutation { upsertNode(input: {id: "system:webshop", name: "Webshop", description: "new"}) { id version } }',
        editor,
    )
    assert not ok.get("errors"), ok
    before = hub.counts()
    refused = hub.body(
        'mutation { upsertNode(input: {id: "system:crm", name: "CRM", description: "mine now"}) { id } }',
        editor,
    )
    assert codes(refused) == ["FORBIDDEN"]
    assert refused["errors"][0]["message"] == (
        "input: editor team:commerce-platform may not write system:crm: it is owned by "
        "team:sales-it and is part of domain:sales, which none of their teams owns"
    )
    # A new node must be owned by one of the caller's teams.
    for owner, allowed in (
        ("team:sales-it", False),
        (None, False),
        ("team:commerce-platform", True),
    ):
        owner_field = f', owner: "{owner}"' if owner else ""
        body = hub.body(
            f'mutation {{ upsertNode(input: {{id: "system:pos-{str(allowed).lower()}-{str(owner is None).lower()}", name: "POS"{owner_field}}}) {{ id }} }}',
            editor,
        )
        assert (codes(body) == []) is allowed, body
    after_new = hub.counts()
    assert after_new[0] == before[0] + 1
    # Handing a node to another team is refused; relations follow the from node.
    body = hub.body(
        'mutation { upsertNode(input: {id: "system:webshop", name: "Webshop", owner: "team:sales-it"}) { id } }',
        editor,
    )
    assert (
        codes(body) == ["FORBIDDEN"]
        and "may hand system:webshop only" in body["errors"][0]["message"]
    )
    body = hub.body(
        'mutation { relate(input: {from: "system:crm", type: DEPENDS_ON, to: "system:webshop"}) { type } }',
        editor,
    )
    assert (
        codes(body) == ["FORBIDDEN"]
        and "system:crm is owned by team:sales-it" in body["errors"][0]["message"]
    )
    body = hub.body(
        'mutation { relate(input: {from: "system:webshop", type: DEPENDS_ON, to: "system:crm"}) { type } }',
        editor,
    )
    assert not body.get("errors"), body
    assert hub.counts()[1] == after_new[1] + 1


def test_aliased_and_batched_operations_are_checked_per_field(hub: Hub) -> None:
    editor = hub.token("web-editor", "editor", teams=("team:commerce-platform",))
    before = hub.counts()
    body = hub.body(
        """mutation {
          mine: upsertNode(input: {id: "system:webshop", name: "Webshop", description: "x"}) { id }
          theirs: upsertNode(input: {id: "system:crm", name: "CRM", description: "x"}) { id }
          source: registerSource(input: {key: "s", name: "S", type: OPENAPI, location: "/etc/passwd", system: "system:webshop"}) { id }
        }""",
        editor,
    )
    # Mutation fields are non-null and run in order: the refused one nulls the answer and
    # stops the rest, the allowed one before it was written on its own.
    assert body["data"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["theirs"], "FORBIDDEN")
    ]
    after = hub.counts()
    assert after[0] == before[0] and after[2] == before[2] + 1  # one history row: webshop's
    viewer = hub.token("viewer", "viewer")
    body = hub.body(
        """{ a: node(id: "system:crm") { id }
             b: records(entity: "entity:customer", first: 1) { totalCount } }""",
        viewer,
    )
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [(["b"], "FORBIDDEN")]
    batch = hub.http.post(
        "/graphql",
        json=[{"query": NODE}, {"query": 'mutation { retire(id: "system:crm") { id } }'}],
        headers={"Authorization": f"Bearer {viewer}"},
    )
    if batch.status_code == 200 and isinstance(batch.json(), list):  # batching enabled
        assert codes(batch.json()[1]) == ["FORBIDDEN"]
    assert hub.counts()[2] == after[2]


def test_a_domain_owner_writes_the_nodes_in_the_domain(hub: Hub) -> None:
    admin = hub.token("root", "admin")
    assert not hub.body(
        'mutation { upsertNode(input: {id: "domain:sales", name: "Sales", owner: "team:customer-data-office"}) { id } }',
        admin,
    ).get("errors")
    editor = hub.token("cdo", "editor", teams=("team:customer-data-office",))
    # entity:customer is PART_OF domain:sales and has no owner of its own.
    body = hub.body(
        'mutation { upsertNode(input: {id: "entity:customer", name: "Customer", description: "d"}) { id } }',
        editor,
    )
    assert not body.get("errors"), body


def test_a_steward_edits_attributes_and_mappings_of_stewarded_entities(hub: Hub) -> None:
    steward = hub.token("cdo", "steward", teams=("team:customer-data-office",))
    attrs = '[{name: "email", type: "string", classification: "PII"}, {name: "country", type: "string"}]'
    body = hub.body(
        f'mutation {{ upsertNode(input: {{id: "entity:customer", name: "Customer", attributes: {attrs}}}) {{ id }} }}',
        steward,
    )
    assert not body.get("errors"), body
    before = hub.counts()
    body = hub.body(
        'mutation { upsertNode(input: {id: "entity:customer", name: "Client"}) { id } }', steward
    )
    assert (
        codes(body) == ["FORBIDDEN"]
        and "may change only its attributes" in body["errors"][0]["message"]
    )
    assert hub.counts() == before
    body = hub.body(
        'mutation { unrelate(input: {from: "entity:crm.contact", type: REPRESENTS, to: "entity:customer"}) }',
        steward,
    )
    assert body["data"] == {"unrelate": True}, body
    # An editor of the same team is no steward: the mapping is not theirs to change.
    editor = hub.token("cdo-editor", "editor", teams=("team:customer-data-office",))
    body = hub.body(
        'mutation { relate(input: {from: "entity:crm.contact", type: REPRESENTS, to: "entity:customer", properties: {matchKey: "email"}}) { type } }',
        editor,
    )
    assert codes(body) == ["FORBIDDEN"]


def test_sources_harvests_tokens_and_the_audit_log_are_for_admins(hub: Hub) -> None:
    editor = hub.token("erp", "editor", teams=("team:erp-competence-center",))
    admin = hub.token("root", "admin")
    for op in (
        'mutation { registerSource(input: {key: "x", name: "X", type: OPENAPI, location: "http://example.invalid/x.json", system: "system:erp"}) { id } }',
        'mutation { harvest(source: "source:x") { added } }',
        'mutation { createApiToken(input: {name: "more", role: "admin"}) { token } }',
        'mutation { revokeApiToken(name: "root") { name } }',
        "{ apiTokens { name } }",
        "{ auditLog(first: 1) { edges { node { actor } } } }",
    ):
        body = hub.body(op, editor)
        assert codes(body) == ["FORBIDDEN"], (op, body)
        assert "needs the admin role" in body["errors"][0]["message"]
    created = hub.body(
        'mutation { createApiToken(input: {name: "ci", role: "viewer", expires: "1d"}) { token apiToken { name role status expiresAt } } }',
        admin,
    )["data"]["createApiToken"]
    assert created["apiToken"]["status"] == "active" and created["token"].startswith("chub_")
    assert hub.body(NODE, created["token"])["data"]["node"]
    tokens = hub.body("{ apiTokens { name status } }", admin)["data"]["apiTokens"]
    assert {"name": "ci", "status": "active"} in tokens
    assert created["token"] not in str(tokens)
    revoked = hub.body('mutation { revokeApiToken(name: "ci") { status } }', admin)
    assert revoked["data"]["revokeApiToken"]["status"] == "revoked"
    assert hub.post(NODE, created["token"]).status_code == 401  # at once, despite the cache


def test_history_and_the_audit_log_name_the_actor(hub: Hub) -> None:
    editor = hub.token("shop", "editor", teams=("team:commerce-platform",))
    admin = hub.token("root", "admin")
    resp = hub.http.post(
        "/graphql",
        json={
            "query": 'mutation { upsertNode(input: {id: "system:webshop", name: "Webshop", description: "audited"}) { id } }'
        },
        headers={"Authorization": f"Bearer {editor}", "X-Request-Id": "req-42"},
    )
    assert not resp.json().get("errors")
    hist = hub.body(
        '{ history(id: "system:webshop", first: 1) { actor requestId operation } }', editor
    )
    assert hist["data"]["history"] == [
        {"actor": "token:shop", "requestId": "req-42", "operation": "update"}
    ]
    log = hub.body(
        '{ auditLog(actor: "token:shop", first: 5) { edges { node { targetId actor } } pageInfo { hasNextPage } } }',
        admin,
    )
    assert log["data"]["auditLog"]["edges"] == [
        {"node": {"targetId": "system:webshop", "actor": "token:shop"}}
    ]
    demo = hub.body(
        "{ auditLog(first: 2) { edges { cursor node { actor } } pageInfo { hasNextPage endCursor } } }",
        admin,
    )
    page = demo["data"]["auditLog"]
    assert page["pageInfo"]["hasNextPage"] is True and len(page["edges"]) == 2
    nxt = hub.body(
        "query($a: String) { auditLog(first: 2, after: $a) { edges { cursor } } }",
        admin,
        a=page["pageInfo"]["endCursor"],
    )
    assert nxt["data"]["auditLog"]["edges"][0]["cursor"] not in {e["cursor"] for e in page["edges"]}


RECORDS = """query($where: JSON) { records(entity: "entity:customer", where: $where, first: 500) {
  totalCount errors { source }
  edges { node { key data sources masked conflicts { field } } } } }"""


def test_records_need_the_records_right_and_pii_is_masked_without_pii(hub: Hub) -> None:
    nothing = hub.token("viewer", "viewer")
    records = hub.token("records", "viewer", rights=("records",))
    pii = hub.token("pii", "viewer", rights=("records", "pii"))
    body = hub.body(RECORDS, nothing)
    assert (
        codes(body) == ["FORBIDDEN"] and "needs the records right" in body["errors"][0]["message"]
    )
    nested = hub.body(
        '{ node(id: "entity:customer") { ... on DataEntity { records(first: 1) { totalCount } } } }',
        nothing,
    )
    assert codes(nested) == ["FORBIDDEN"]

    full = hub.body(RECORDS, pii)["data"]["records"]
    masked = hub.body(RECORDS, records)["data"]["records"]
    assert full["totalCount"] == masked["totalCount"] > 0
    pii_fields = {"email", "first_name", "last_name", "phone", "birthdate"}
    # The app runs in this process: its stand-ins for the keys (the e-mail addresses) can be
    # computed here, which pairs the two answers; the masked one is ordered by them.
    hidden_by_key = {e["node"]["key"]: e["node"] for e in masked["edges"]}
    assert [e["node"]["key"] for e in masked["edges"]] == sorted(hidden_by_key)
    for plain in full["edges"]:
        p, h = plain["node"], hidden_by_key[masked_key(plain["node"]["key"])]
        assert p["masked"] == []
        assert set(h["masked"]) == pii_fields & set(p["data"])
        assert h["key"] != p["key"] and h["key"].startswith("masked:")  # the key is the e-mail
        for field, value in p["data"].items():
            assert h["data"][field] == (None if field in pii_fields else value)
        assert h["sources"] == p["sources"]
        assert [c for c in p["conflicts"] if c["field"] not in pii_fields] == h["conflicts"]
        assert not any(
            str(p["data"].get(f)) in str(h) for f in ("email", "phone") if p["data"].get(f)
        )
    # Filtering on personal data would reveal it: refused without pii, fine with it.
    where = {"email": full["edges"][0]["node"]["data"]["email"]}
    assert codes(hub.body(RECORDS, records, where=where)) == ["FORBIDDEN"]
    assert hub.body(RECORDS, pii, where=where)["data"]["records"]["totalCount"] >= 1
    # The metadata about PII stays readable.
    attrs = hub.body(
        '{ node(id: "entity:customer") { ... on DataEntity { attributes { name classification } } } }',
        nothing,
    )
    assert {"name": "email", "classification": "PII"} in attrs["data"]["node"]["attributes"]


def test_the_anonymous_role_lets_requests_without_a_token_read(
    app_factory: Callable[..., GraphQLClient],
) -> None:
    client = app_factory(demo=True, auth="on", auth_anonymous_role="viewer")
    assert client.data(NODE)["node"]["id"] == "system:crm"
    err = client.error('mutation { retire(id: "system:crm") { id } }')
    assert err["extensions"]["code"] == "FORBIDDEN" and "viewer anonymous" in err["message"]


def test_every_root_field_has_a_rule_and_every_rule_a_field(hub: Hub) -> None:
    schema = hub.http.app.state.schema  # type: ignore[attr-defined]
    fields = {
        f"{t.name}.{name}"
        for t in (schema._schema.query_type, schema._schema.mutation_type)
        for name in t.fields
    }
    assert fields == ALL_OPS
    assert "DataEntity.records" in PERMISSIONS


def test_federation_entry_points_obey_the_table(hub: Hub) -> None:
    viewer = hub.token("viewer", "viewer")
    q = '{ _entities(representations: [{__typename: "System", id: "system:crm"}]) { ... on System { id name } } }'
    assert hub.body(q, viewer)["data"]["_entities"] == [{"id": "system:crm", "name": "CRM"}]
    assert hub.post(q, None).status_code == 401
    assert hub.body("{ _service { sdl } }", viewer)["data"]["_service"]["sdl"]


@pytest.fixture(scope="module")
def idp() -> Iterator[tuple[str, Any]]:
    """A real JWKS over HTTP on 127.0.0.1 and the RSA key that signs the tokens."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_identity_providers_jwt_gets_its_roles_teams_and_rights(
    app_factory: Callable[..., GraphQLClient], idp: tuple[str, Any]
) -> None:
    url, key = idp
    client = app_factory(
        demo=True,
        auth="on",
        auth_jwks_url=url,
        auth_issuer="https://idp.example",
        auth_audience="capahub",
    )
    now = int(time.time())

    def token(**claims: Any) -> str:
        base = {
            "iss": "https://idp.example",
            "aud": "capahub",
            "sub": "ada",
            "exp": now + 300,
            "roles": ["editor"],
            "groups": ["team:commerce-platform", "not-a-team"],
            "scope": "openid records",
        }
        return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})

    def post(query: str, bearer: str) -> httpx.Response:
        return client.http.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {bearer}"}
        )

    good = token()
    write = 'mutation { upsertNode(input: {id: "system:webshop", name: "Webshop", description: "by ada"}) { id } }'
    assert not post(write, good).json().get("errors")
    hist = post('{ history(id: "system:webshop", first: 1) { actor } }', good).json()
    assert hist["data"]["history"] == [{"actor": "user:ada"}]
    refused = post('mutation { retire(id: "system:crm") { id } }', good).json()
    assert codes(refused) == ["FORBIDDEN"]
    masked = post(
        '{ records(entity: "entity:customer", first: 1) { edges { node { masked } } } }', good
    )
    assert "email" in masked.json()["data"]["records"]["edges"][0]["node"]["masked"]
    for bad in (
        token(exp=now - 3600),
        token(aud="someone-else"),
        token(iss="https://evil.example"),
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
    ):
        resp = post(NODE, bad)
        assert resp.status_code == 401, resp.text
        assert resp.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert bad not in resp.text
    no_role = post(NODE, token(roles=["astronaut"])).json()
    assert codes(no_role) == ["FORBIDDEN"] and "(no role)" in no_role["errors"][0]["message"]
