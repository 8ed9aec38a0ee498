"""Every refusal is coded: arbitrary values in every input field of the write mutations.

Each case runs one mutation through the schema on a real SQLite catalog; any error must carry
a code other than INTERNAL, and a refused write must leave the change log where it was.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document
from resolvers import build_schema, make_context

SEED = """
nodes:
  - {id: team:t, name: T}
  - {id: team:u, name: U}
  - {id: domain:d, name: D, owner: team:t}
  - {id: system:crm, name: CRM, owner: team:t}
  - {id: system:erp, name: ERP}
  - {id: capability:a, name: A}
  - {id: capability:a.b, name: AB}
  - {id: entity:customer, name: Customer, attributes: [{name: email}, {name: phone}]}
  - {id: entity:crm.contact, name: Contact, attributes: [{name: email}]}
  - {id: source:crm-db, name: CRM db, properties: {type: SQL, location: 'sqlite:///nowhere.db'}}
  - {id: journey:j, name: J}
  - {id: step:s, name: S, properties: {order: 1}}
  - {id: touchpoint:p, name: P}
relations:
  - {from: source:crm-db, type: PART_OF, to: system:crm}
  - {from: system:crm, type: STORES, to: entity:crm.contact}
"""
EXISTING = [
    "team:t",
    "team:u",
    "domain:d",
    "system:crm",
    "system:erp",
    "capability:a",
    "capability:a.b",
    "entity:customer",
    "entity:crm.contact",
    "source:crm-db",
    "journey:j",
    "step:s",
    "touchpoint:p",
]
PREFIXES = ["team", "domain", "system", "capability", "entity", "source", "journey", "step"]
RELATION_TYPES = [
    "PART_OF",
    "PROVIDES",
    "DEPENDS_ON",
    "READS",
    "WRITES",
    "MASTERS",
    "STORES",
    "OWNS",
    "STEWARDS",
    "REPRESENTS",
    "HARVESTED_FROM",
    "OCCURS_AT",
    "LIKES",
    "part_of",
]
#: Lengths at and around every limit (keys 128, ids 200, tags 100, names 500, text 10,000).
LIMITS = [0, 1, 99, 100, 101, 127, 128, 129, 189, 190, 199, 200, 201, 499, 500, 501, 10_001]
#: Drawn from pools where that finds the same bugs: hypothesis spends far less per case on a
#: ``sampled_from`` than on building text or nested values character by character.
ODD_TEXT = [
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\u200b",
    "e\u0301",
    "crm",
    "A name",
    "system:crm",
    "capability:a",
    "capability:",
    ":crm",
    "team:t ",
    " team:t",
    "TEAM:T",
    "source:crm-db",
    "source:ghost",
    "entity:ghost",
    *(c * n for c in ("a", " ", "é", "\x00") for n in LIMITS),
]
_RNG = random.Random(20261202)
_ALPHABETS = ["abz09.-_", "ABZ:/ \t", "é漢\u200b\x7f", "a\x00\ud800"]
#: Short random texts and keys, made once: drawn as one choice each.
RANDOM_TEXT = [
    "".join(_RNG.choice(_ALPHABETS[i % 4]) for _ in range(_RNG.randint(1, 12))) for i in range(120)
]
TEXT = st.sampled_from(ODD_TEXT + RANDOM_TEXT) | st.text(max_size=6)
KEY = st.sampled_from(RANDOM_TEXT[::4] + ["k" * 128, "k" * 129, "0", "-a", "a..b"]) | TEXT
ID = (
    st.sampled_from(
        EXISTING
        + [f"{p}:{k}" for p in [*PREFIXES, "foo", "", "System"] for k in RANDOM_TEXT[:16]]
        + [f"{p}:{'k' * n}" for p in ("system", "capability", "") for n in LIMITS]
    )
    | st.sampled_from(EXISTING)
    | TEXT
)
INT = st.integers(-(2**31), 2**31 - 1) | st.sampled_from(
    [-1, 0, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 2**70, -(2**70)]
)
FLOAT = st.sampled_from([0.5, -0.0, 1e308, 1e-308, float("nan"), float("inf"), -float("inf")])
SCALAR = st.none() | st.booleans() | INT | FLOAT | TEXT


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


_GONE = object()
ANY = (
    SCALAR
    | st.lists(SCALAR, max_size=3)
    | st.dictionaries(TEXT, SCALAR, max_size=3)
    | st.sampled_from([_nested(d) for d in (2, 31, 32, 33, 100)] + [[[]], {"": {}}])
)
#: A JSON object of the kind the catalog keeps in ``properties`` (a REPRESENTS map among them).
PROPERTIES = (
    st.dictionaries(TEXT, ANY, max_size=3)
    | st.fixed_dictionaries(
        {},
        optional={
            "matchKey": st.just("email") | TEXT | ANY,
            "fields": st.just({"email": "email"}) | st.dictionaries(TEXT, TEXT, max_size=3) | ANY,
            "source": st.sampled_from(["source:crm-db", "source:ghost"]) | ID | ANY,
            "order": INT | ANY,
        },
    )
    | ANY
)


def some(values: st.SearchStrategy[Any], *sizes: int) -> st.SearchStrategy[Any]:
    """A list of ``values``: short, or at and past a limit of ``sizes`` (tags: 64)."""
    sizes = sizes or (63, 64, 65)
    return (
        st.lists(values, max_size=4)
        | st.builds(lambda v, n: [v] * n, values, st.sampled_from(sizes))
        | st.builds(lambda n: [f"t{i}" for i in range(n)], st.sampled_from(sizes))
    )


def typed(values: st.SearchStrategy[Any], *good: Any) -> st.SearchStrategy[Any]:
    """A value of the field's type, as often as not one of ``good`` (which the catalog has)."""
    return st.sampled_from(good) | values if good else values


CAPABILITY = st.fixed_dictionaries(
    {"key": typed(KEY), "name": typed(TEXT, "Name", " ", "")},
    optional={
        "description": typed(TEXT),
        "parent": typed(ID, "capability:a", "capability:a.b", "capability:ghost"),
        "domain": typed(ID, "domain:d", "domain:ghost"),
        "owner": typed(ID, "team:t", "team:u", "system:crm"),
        "providedBy": some(typed(ID, "system:crm", "system:erp")),
        "reads": some(typed(ID, "entity:customer", "entity:crm.contact")),
        "writes": some(typed(ID, "entity:customer")),
        "tags": some(typed(TEXT, "a", "b", "", " ")),
        "properties": PROPERTIES,
    },
)
NODE = st.fixed_dictionaries(
    {"id": typed(ID, *EXISTING, "system:new", "entity:new"), "name": typed(TEXT, "Name", " ")},
    optional={
        "description": typed(TEXT),
        "tags": some(typed(TEXT, "a", "b", "", " ")),
        "lifecycle": st.sampled_from(["ACTIVE", "RETIRED", "PLANNED", "DEPRECATED"]),
        "owner": typed(ID, "team:t", "team:u", "system:crm"),
        "properties": PROPERTIES,
        "attributes": some(
            st.fixed_dictionaries(
                {"name": typed(TEXT)},
                optional={"type": typed(TEXT), "classification": typed(TEXT, "PII", "pii")},
            ),
            2,
            3,
        ),
        "expectedVersion": INT,
    },
)
RELATION = st.fixed_dictionaries(
    {
        "from": typed(ID, *EXISTING),
        "type": st.sampled_from(RELATION_TYPES),
        "to": typed(ID, *EXISTING),
    },
    optional={"properties": PROPERTIES},
)
#: One case in five puts anything at all in one field (an unknown one among them) or leaves a
#: required field out; the others are well typed, so most reach the registry's own checks.
FIELDS = ["key", "name", "id", "from", "type", "to", "tags", "owner", "properties", "bogus"]
WILD = (
    st.none()
    | st.none()
    | st.none()
    | st.none()
    | st.tuples(st.sampled_from(FIELDS), ANY | st.just(_GONE))
)

REGISTER = "mutation($i: CapabilityInput!) { registerCapability(input: $i) { id version } }"
UPSERT = "mutation($i: NodeInput!) { upsertNode(input: $i) { id version } }"
RELATE = "mutation($i: RelationInput!) { relate(input: $i) { type } }"
UNRELATE = "mutation($i: RelationInput!) { unrelate(input: $i) }"
RETIRE = "mutation($i: ID!) { retire(id: $i) { id } }"

#: Hypothesis examples per test; 10,000 in all.
CASES = {"register": 4000, "relate": 3000, "upsert": 2000, "unrelate_retire": 1000}


@dataclass
class Hub:
    """A catalog on a SQLite file, its schema and the loop that runs them."""

    loop: asyncio.AbstractEventLoop
    services: Services
    schema: Any
    outcomes: Counter[str]

    def run(self, query: str, value: Any) -> list[str]:
        """Run one mutation; return its error codes after checking them."""
        before = self.services.store.last_change_id_now()
        result = self.loop.run_until_complete(
            self.schema.execute(
                query, variable_values={"i": value}, context_value=make_context(self.services)
            )
        )
        codes = [str((e.extensions or {}).get("code")) for e in result.errors or []]
        assert "INTERNAL" not in codes, (query, value, result.errors)
        assert all(c != "None" for c in codes), (query, value, result.errors)
        if codes:
            assert self.services.store.last_change_id_now() == before, (query, value)
        self.outcomes.update(codes or ["ok"])
        return codes


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    path: Path = tmp_path_factory.mktemp("inputs") / "c.db"
    loop = asyncio.new_event_loop()
    settings_ = Settings(database_url=f"sqlite:///{path}", _env_file=None)  # type: ignore[call-arg]

    async def start() -> Services:
        services = await Services.start(settings_)
        await services.registry.apply_document(parse_document(SEED))
        return services

    services = loop.run_until_complete(start())
    try:
        yield Hub(loop, services, build_schema(), Counter())
    finally:
        loop.run_until_complete(services.close())
        loop.close()


def cases(n: int) -> settings:
    """Hypothesis settings for ``n`` examples against the module's catalog."""
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def wild(value: dict[str, Any], change: tuple[str, Any] | None) -> dict[str, Any]:
    """``value`` with one field set to anything, or left out (``_GONE``)."""
    if change is None:
        return value
    name, new = change
    out = {k: v for k, v in value.items() if k != name}
    if new is not _GONE:
        out[name] = new
    return out


def test_register_capability_refuses_every_bad_input_with_a_code(hub: Hub) -> None:
    hub.outcomes.clear()

    @cases(CASES["register"])
    @given(value=CAPABILITY, change=WILD)
    def check(value: dict[str, Any], change: tuple[str, Any] | None) -> None:
        hub.run(REGISTER, wild(value, change))

    check()
    assert hub.outcomes["ok"] and hub.outcomes["BAD_USER_INPUT"], hub.outcomes


def test_relate_refuses_every_bad_input_with_a_code(hub: Hub) -> None:
    hub.outcomes.clear()

    @cases(CASES["relate"])
    @given(value=RELATION, change=WILD)
    def check(value: dict[str, Any], change: tuple[str, Any] | None) -> None:
        hub.run(RELATE, wild(value, change))

    check()
    assert hub.outcomes["ok"] and hub.outcomes["BAD_USER_INPUT"], hub.outcomes


def test_upsert_node_refuses_every_bad_input_with_a_code(hub: Hub) -> None:
    hub.outcomes.clear()

    @cases(CASES["upsert"])
    @given(value=NODE, change=WILD)
    def check(value: dict[str, Any], change: tuple[str, Any] | None) -> None:
        hub.run(UPSERT, wild(value, change))

    check()
    assert hub.outcomes["ok"] and hub.outcomes["BAD_USER_INPUT"], hub.outcomes


def test_unrelate_and_retire_refuse_every_bad_input_with_a_code(hub: Hub) -> None:
    hub.outcomes.clear()

    @cases(CASES["unrelate_retire"])
    @given(
        value=RELATION,
        change=WILD,
        node_id=typed(ID, *EXISTING) | ANY | st.just(_GONE),
        retire=st.booleans(),
    )
    def check(
        value: dict[str, Any], change: tuple[str, Any] | None, node_id: Any, retire: bool
    ) -> None:
        if retire:
            hub.run(RETIRE, None if node_id is _GONE else node_id)
        else:
            hub.run(UNRELATE, wild(value, change))

    check()
    assert hub.outcomes["BAD_USER_INPUT"], hub.outcomes


def test_the_cases_add_up_to_ten_thousand() -> None:
    assert sum(CASES.values()) >= 10_000
