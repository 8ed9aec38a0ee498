"""The permission table and the ownership rules against an independent model of docs/security.md.

Every case runs a real operation through the schema on a real SQLite catalog, as a caller of a
generated role, teams and rights, on a generated target, and compares the answer with what the
documented rules say; a refused operation must leave the node, relation and history counts as
they were.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from catalog.access.permissions import PERMISSIONS, table_markdown
from catalog.access.principal import Principal, Right, Role
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import RelationSpec, parse_document
from metadata.tables import history, nodes, relations
from resolvers import build_schema, make_context

ROOT = Path(__file__).resolve().parents[3]

LANDSCAPE = """
nodes:
  - {id: team:a, name: A}
  - {id: team:b, name: B}
  - {id: domain:d, name: D, owner: team:a}
  - {id: system:sa, name: SA, owner: team:a}
  - {id: system:sb, name: SB, owner: team:b}
  - {id: system:sd, name: SD}
  - {id: system:so, name: SO}
  - {id: system:sx, name: SX}
  - {id: entity:e, name: E, owner: team:a, attributes: [{name: email, classification: PII}]}
  - {id: entity:f, name: F}
  - {id: entity:p, name: P, owner: team:b}
relations:
  - {from: system:sd, type: PART_OF, to: domain:d}
  - {from: team:b, type: STEWARDS, to: entity:e}
  - {from: team:b, type: OWNS, to: entity:f}
"""
OWNER = {"system:sa": "team:a", "system:sb": "team:b", "entity:e": "team:a", "entity:p": "team:b"}
OWNED_BY_RELATION = {"entity:f": "team:b"}
IN_DOMAIN_OF = {"system:sd": "team:a"}  # PART_OF domain:d, which team:a owns
STEWARDED_BY = {"entity:e": "team:b"}
SYSTEMS = ["system:sa", "system:sb", "system:sd", "system:so"]
ENTITIES = ["entity:e", "entity:f", "entity:p"]
OPS = [
    "read",
    "describe",
    "attributes",
    "retire",
    "relate",
    "map",
    "create",
    "source",
    "records",
    "own",
    "steward",
]


@dataclass(frozen=True)
class Case:
    role: Role | None
    teams: frozenset[str]
    rights: frozenset[Right]
    op: str
    target: str
    owner: str | None  # for "create"


def may_write(case: Case, node: str) -> bool:
    owners = {OWNER.get(node), OWNED_BY_RELATION.get(node), IN_DOMAIN_OF.get(node)} - {None}
    return bool(owners & case.teams)


def stewards(case: Case, node: str) -> bool:
    return (
        case.role in (Role.STEWARD, Role.ADMIN)
        and STEWARDED_BY.get(node) is not None
        and STEWARDED_BY[node] in case.teams
    )


def expected(case: Case) -> bool:
    """What docs/security.md says, written independently of catalog/access."""
    rank = {None: -1, Role.VIEWER: 0, Role.EDITOR: 1, Role.STEWARD: 2, Role.ADMIN: 3}[case.role]
    admin = case.role is Role.ADMIN
    if case.op == "read":
        return rank >= 0
    if case.op == "records":
        return rank >= 0 and (admin or Right.RECORDS in case.rights)
    if case.op == "source":
        return admin
    if rank < 1:
        return False
    if admin:
        return True
    if case.op == "create":
        return case.owner in case.teams
    if case.op in ("describe", "retire", "relate"):
        return may_write(case, case.target)
    if case.op == "attributes":
        return may_write(case, case.target) or stewards(case, case.target)
    if case.op in ("own", "steward"):  # a new team (owned by case.owner) OWNS/STEWARDS target
        return case.owner in case.teams and may_write(case, case.target)
    if case.op == "map":  # REPRESENTS from the target to entity:p (owned by team:b)
        return (
            may_write(case, case.target)
            or stewards(case, case.target)
            or stewards(case, "entity:p")
        )
    raise AssertionError(case.op)


_serial = itertools.count()


def name(node: str) -> str:
    """The node's name in LANDSCAPE: writes keep it, so only the field a case changes changes."""
    return node.partition(":")[2].upper()


def operation(case: Case) -> str:
    n = next(_serial)
    t = case.target
    return {
        "read": f'{{ node(id: "{t}") {{ id }} }}',
        "describe": f'mutation {{ upsertNode(input: {{id: "{t}", name: "{name(t)}", description: "d{n}"}}) {{ id }} }}',
        "attributes": f'mutation {{ upsertNode(input: {{id: "{t}", name: "{name(t)}", attributes: [{{name: "a{n}"}}]}}) {{ id }} }}',
        "retire": f'mutation {{ retire(id: "{t}") {{ id }} }}',
        "relate": f'mutation {{ relate(input: {{from: "{t}", type: DEPENDS_ON, to: "system:sx"}}) {{ type }} }}',
        "map": f'mutation {{ relate(input: {{from: "{t}", type: REPRESENTS, to: "entity:p", properties: {{matchKey: "k{n}"}}}}) {{ type }} }}',
        "create": (
            f'mutation {{ upsertNode(input: {{id: "system:new-{n}", name: "New"'
            + (f', owner: "{case.owner}"' if case.owner else "")
            + "}) { id } }"
        ),
        "source": f'mutation {{ registerSource(input: {{key: "s{n}", name: "S", type: OPENAPI, location: "http://example.invalid/{n}.json", system: "system:sa"}}) {{ id }} }}',
        "records": f'{{ records(entity: "{t}", first: 1) {{ totalCount }} }}',
    }.get(case.op) or handover(case, n)


def handover(case: Case, n: int) -> str:
    """A document making a new team (owned by ``case.owner``) that OWNS/STEWARDS the target."""
    rtype = "OWNS" if case.op == "own" else "STEWARDS"
    owner = f", owner: {case.owner}" if case.owner else ""
    doc = (
        f"nodes: [{{id: 'team:t{n}', name: T{owner}}}]\\n"
        f"relations: [{{from: 'team:t{n}', type: {rtype}, to: '{case.target}'}}]"
    )
    return f'mutation {{ applyCatalog(document: "{doc}") {{ added }} }}'


@st.composite
def cases(draw: st.DrawFn) -> Case:
    op = draw(st.sampled_from(OPS))
    targets = ENTITIES if op in ("attributes", "map", "records", "steward") else SYSTEMS + ENTITIES
    if op == "relate":
        targets = SYSTEMS
    if op == "map":  # entity:p REPRESENTS entity:p breaks the rule no-self-relation
        targets = [e for e in ENTITIES if e != "entity:p"]
    return Case(
        role=draw(st.sampled_from([None, *Role])),
        teams=frozenset(draw(st.sets(st.sampled_from(["team:a", "team:b"])))),
        rights=frozenset(draw(st.sets(st.sampled_from(list(Right))))),
        op=op,
        target=draw(st.sampled_from(targets)),
        owner=draw(st.sampled_from([None, "team:a", "team:b"])),
    )


async def counts(services: Services) -> tuple[int, ...]:
    async with services.store.read() as r:
        return tuple(
            [
                int((await r.conn.execute(select(func.count()).select_from(t))).scalar_one())
                for t in (nodes, relations, history)
            ]
        )


async def run_case(services: Services, schema: Any, case: Case) -> None:
    principal = Principal(actor="token:t", role=case.role, teams=case.teams, rights=case.rights)
    before = await counts(services)
    result = await schema.execute(
        operation(case), context_value=make_context(services, principal=principal)
    )
    codes = [e.extensions.get("code") for e in result.errors or []]
    allowed = expected(case)
    if allowed:
        # Allowed by the rules: any error left is about the data, never a refusal.
        assert "FORBIDDEN" not in codes, (case, result.errors)
        assert "INTERNAL" not in codes, (case, result.errors)
    else:
        assert codes == ["FORBIDDEN"], (case, result.errors)
        assert await counts(services) == before, case
    if allowed and case.op == "relate":  # take it away, so the next relate creates it again
        await services.registry.unrelate(
            RelationSpec.model_validate(
                {"from": case.target, "type": "DEPENDS_ON", "to": "system:sx"}
            )
        )
    if allowed and case.op == "retire":  # put it back, so the next retire changes something
        await services.registry.upsert_node(
            parse_document(
                f"nodes: [{{id: '{case.target}', name: {name(case.target)}, lifecycle: ACTIVE}}]"
            ).nodes[0]
        )


def test_roles_operations_and_ownership_match_the_documented_rules(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    settings_ = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", _env_file=None)  # type: ignore[call-arg]

    async def start() -> Services:
        services = await Services.start(settings_)
        await services.registry.apply_document(parse_document(LANDSCAPE))
        return services

    services = loop.run_until_complete(start())
    schema = build_schema()
    seen: set[tuple[str, bool]] = set()
    try:

        def check(case: Case) -> None:
            seen.add((case.op, expected(case)))
            loop.run_until_complete(run_case(services, schema, case))

        test = given(cases())(check)
        # Every operation at least once allowed (an admin) and once refused (no role), besides
        # what hypothesis draws: the model must not be one-sided, whatever the draw.
        for op in OPS:
            target = "system:sa" if op == "relate" else "entity:e"
            for role in (Role.ADMIN, None):
                case = Case(role, frozenset({"team:a"}), frozenset(), op, target, "team:a")
                test = example(case)(test)
        settings(
            max_examples=400,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )(test)()
        # Every operation was seen both allowed and refused (the model is not one-sided).
        assert {(op, a) for op in OPS for a in (True, False)} <= seen
    finally:
        loop.run_until_complete(services.close())
        loop.close()


@pytest.mark.parametrize(
    ("role", "teams", "op", "target", "owner"),
    [
        (Role.EDITOR, {"team:a"}, "describe", "system:sa", None),  # owner field
        (Role.EDITOR, {"team:b"}, "describe", "entity:f", None),  # OWNS relation
        (Role.EDITOR, {"team:a"}, "describe", "system:sd", None),  # domain owner
        (Role.EDITOR, {"team:b"}, "describe", "system:sa", None),
        (Role.EDITOR, {"team:a"}, "describe", "system:so", None),  # no owner: admins only
        (Role.STEWARD, {"team:b"}, "attributes", "entity:e", None),
        (Role.STEWARD, {"team:b"}, "describe", "entity:e", None),
        (Role.EDITOR, {"team:b"}, "attributes", "entity:e", None),  # stewardship needs the role
        (Role.STEWARD, {"team:b"}, "map", "entity:e", None),
        (Role.EDITOR, {"team:a"}, "create", "", "team:a"),
        (Role.EDITOR, {"team:a"}, "create", "", "team:b"),
        (Role.EDITOR, {"team:a"}, "create", "", None),
        (Role.VIEWER, {"team:a"}, "describe", "system:sa", None),
        (Role.ADMIN, set(), "source", "", None),
        (Role.EDITOR, {"team:a"}, "source", "", None),
        (None, {"team:a"}, "read", "system:sa", None),
        # A team made for the purpose may not be handed someone else's node.
        (Role.EDITOR, {"team:a"}, "own", "system:sb", "team:a"),
        (Role.EDITOR, {"team:a"}, "steward", "entity:p", "team:a"),
        (Role.EDITOR, {"team:a"}, "own", "system:sa", "team:a"),
        (Role.EDITOR, {"team:a"}, "own", "system:sd", "team:a"),
        (Role.STEWARD, {"team:b"}, "steward", "entity:e", "team:b"),  # steward, not owner
    ],
)
def test_table_rows(
    tmp_path: Path, role: Role | None, teams: set[str], op: str, target: str, owner: str | None
) -> None:
    case = Case(role, frozenset(teams), frozenset(), op, target, owner)

    async def run() -> None:
        s = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", _env_file=None)  # type: ignore[call-arg]
        services = await Services.start(s)
        try:
            await services.registry.apply_document(parse_document(LANDSCAPE))
            await run_case(services, build_schema(), case)
        finally:
            await services.close()

    asyncio.run(run())


def test_docs_security_prints_the_table() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    assert table_markdown() in doc, (
        "docs/security.md: paste catalog.access.permissions.table_markdown()"
    )
    for coordinate in PERMISSIONS:
        assert f"`{coordinate}`" in doc
