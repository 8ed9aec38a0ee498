"""The search index: query parsing, documents, and keeping the index in step with every write."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from catalog.cli import app
from catalog.search import SearchPage
from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import RelationSpec, parse_document
from metadata.errors import InvalidInputError
from metadata.model import Kind, Lifecycle, RelationType
from metadata.search import (
    MAX_QUERY_LENGTH,
    MAX_QUERY_TERMS,
    Term,
    fts5_match,
    parse_query,
    pg_tsquery,
    words,
)

LANDSCAPE = """
nodes:
  - {id: domain:sales, name: Sales}
  - {id: domain:service, name: Service}
  - {id: team:crm-team, name: CRM Team}
  - {id: system:zeta, name: Zeta Platform, owner: team:crm-team, tags: [core]}
  - {id: capability:care, name: Customer Care}
  - {id: capability:care.cases, name: Case Handling}
  - id: capability:care.cases.open-case
    name: Open Case
    description: Open a service case for a customer.
    tags: [L3]
    owner: team:crm-team
  - id: entity:customer
    name: Customer
    attributes:
      - {name: email, classification: PII}
      - {name: loyaltyTier}
relations:
  - {from: capability:care, type: PART_OF, to: domain:sales}
  - {from: capability:care.cases, type: PART_OF, to: capability:care}
  - {from: capability:care.cases.open-case, type: PART_OF, to: capability:care.cases}
  - {from: system:zeta, type: PROVIDES, to: capability:care.cases.open-case}
"""


def ids(page: SearchPage) -> list[str]:
    return [h.node.id for h in page.hits]


async def load(services: Services, doc: str = LANDSCAPE) -> None:
    await services.registry.apply_document(parse_document(doc))


# -- parsing ------------------------------------------------------------------------------------


def test_parse_makes_the_last_word_a_prefix() -> None:
    q = parse_query("Change ORD")
    assert q.terms == (Term(("change",)), Term(("ord",), prefix=True))
    assert fts5_match(q) == '"change" "ord"*'
    assert pg_tsquery(q) == "'change' & 'ord':*"


def test_parse_reads_phrases_and_explicit_prefixes() -> None:
    q = parse_query('"order capture" cust* "change')
    assert q.terms == (
        Term(("order", "capture")),
        Term(("cust",), prefix=True),
        Term(("change",)),
    )
    assert fts5_match(q) == '"order capture" "cust"* "change"'
    assert pg_tsquery(q) == "('order' <-> 'capture') & 'cust':* & 'change'"


def test_parse_treats_operators_and_symbols_as_words_or_separators() -> None:
    q = parse_query('a AND (b OR c) NEAR/3 -d ^e:f "" 🎉 ')
    assert [t.words for t in q.terms] == [
        ("a",), ("and",), ("b",), ("or",), ("c",), ("near",), ("3",), ("d",), ("e",), ("f",)
    ]  # fmt: skip
    assert parse_query("🎉 !!! ***").empty


def test_parse_folds_case_and_diacritics() -> None:
    assert words("Café Müller_ID straße") == ["cafe", "muller", "id", "strasse"]


def test_parse_refuses_overlong_queries_naming_the_field() -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_query("x" * (MAX_QUERY_LENGTH + 1))
    assert err.value.field == "query" and "at most 500 characters" in err.value.message
    with pytest.raises(InvalidInputError) as err:
        parse_query(" ".join(["w"] * (MAX_QUERY_TERMS + 1)))
    assert err.value.field == "query"


@given(st.text(max_size=600))
def test_any_text_is_a_valid_fts5_query_or_refused(value: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE t USING fts5(a, tokenize='porter unicode61 remove_diacritics 2')"
    )
    db.execute("INSERT INTO t VALUES ('customer order change')")
    try:
        q = parse_query(value)
    except InvalidInputError as err:
        assert err.field == "query"
        return
    if not q.empty:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (fts5_match(q),)).fetchall()
        lexeme = r"'[^\W_]+'"
        term = rf"(?:{lexeme}(?::\*)?|\({lexeme}(?: <-> {lexeme})+\))"
        assert re.fullmatch(rf"{term}(?: & {term})*", pg_tsquery(q))


# -- ranking and facets -------------------------------------------------------------------------


async def test_exact_name_ranks_before_prefix_and_description(services: Services) -> None:
    await load(services)
    page = await services.search.search("customer")
    assert ids(page)[:2] == ["entity:customer", "capability:care"]
    assert "capability:care.cases.open-case" in ids(page)  # in the description only
    assert page.hits[0].score > page.hits[1].score > page.hits[-1].score


async def test_capability_is_found_by_its_providers_name(services: Services) -> None:
    await load(services)
    page = await services.search.search("zeta")
    assert ids(page) == ["system:zeta", "capability:care.cases.open-case"]
    assert page.hits[1].highlight == "Related: Case Handling; <mark>Zeta</mark> Platform"


async def test_attribute_names_and_classifications_are_indexed(services: Services) -> None:
    await load(services)
    assert ids(await services.search.search("pii")) == ["entity:customer"]
    assert ids(await services.search.search("loyalty tier")) == ["entity:customer"]


async def test_domain_filter_follows_the_capability_hierarchy(services: Services) -> None:
    await load(services)
    page = await services.search.search("case", domain="domain:sales")
    assert ids(page) == ["capability:care.cases", "capability:care.cases.open-case"]
    assert page.facets["domain"] == [("domain:sales", 2)]
    with pytest.raises(InvalidInputError) as err:
        await services.search.search("case", domain="system:zeta")
    assert err.value.field == "domain"


async def test_facets_count_the_whole_result_not_the_page(services: Services) -> None:
    await load(services)
    page = await services.search.search("c", first=1)
    assert len(page.hits) == 1 and page.total == 6 and page.has_next
    assert page.facets["kind"] == [("capability", 3), ("entity", 1), ("system", 1), ("team", 1)]
    assert page.facets["owner"] == [("team:crm-team", 2)]
    assert page.facets["lifecycle"] == [("ACTIVE", 6)]
    assert page.facets["domain"] == [("domain:sales", 3)]
    assert page.facets["tag"] == [("L3", 1), ("core", 1)]


async def test_filters_narrow_hits_and_facets(services: Services) -> None:
    await load(services)
    page = await services.search.search("c", kinds=[Kind.DATA_ENTITY])
    assert ids(page) == ["entity:customer"] and page.facets["kind"] == [("entity", 1)]
    page = await services.search.search("c", tags=["L3"], lifecycle=[Lifecycle.ACTIVE])
    assert ids(page) == ["capability:care.cases.open-case"]
    assert page.total == 1 and page.facets["owner"] == [("team:crm-team", 1)]
    page = await services.search.search("c", kinds=[Kind.SYSTEM, Kind.TEAM])
    assert page.facets["owner"] == [("team:crm-team", 1)]
    assert page.facets["tag"] == [("core", 1)]


async def test_cursors_page_through_every_hit_once(services: Services) -> None:
    await load(services)
    seen: list[str] = []
    after = None
    while True:
        page = await services.search.search("c", first=1, after=after)
        seen.extend(ids(page))
        if not page.has_next:
            break
        after = page.cursor(len(page.hits) - 1)
    assert seen == ids(await services.search.search("c"))
    assert len(seen) == len(set(seen)) == 6


# -- in step with writes ------------------------------------------------------------------------


async def test_relation_changes_reindex_both_ends(services: Services) -> None:
    await load(services)
    spec = RelationSpec.model_validate(
        {"from": "system:zeta", "type": "PROVIDES", "to": "capability:care"}
    )
    await services.registry.relate(spec)
    assert "capability:care" in ids(await services.search.search("zeta"))
    await services.registry.unrelate(spec)
    assert "capability:care" not in ids(await services.search.search("zeta"))


async def test_rename_reindexes_the_nodes_that_carry_the_name(services: Services) -> None:
    await load(services)
    await load(services, "nodes: [{id: system:zeta, name: Omega Platform}]")
    assert ids(await services.search.search("omega")) == [
        "system:zeta",
        "capability:care.cases.open-case",
    ]
    assert ids(await services.search.search("zeta")) == ["system:zeta"]  # the key stays


async def test_moving_a_subtree_moves_its_domain(services: Services) -> None:
    await load(services)
    await services.registry.unrelate(
        RelationSpec.model_validate(
            {"from": "capability:care", "type": "PART_OF", "to": "domain:sales"}
        )
    )
    await services.registry.relate(
        RelationSpec.model_validate(
            {"from": "capability:care", "type": RelationType.PART_OF, "to": "domain:service"}
        )
    )
    assert ids(await services.search.search("open", domain="domain:sales")) == []
    page = await services.search.search("open", domain="domain:service")
    assert ids(page) == ["capability:care.cases.open-case"]


async def test_retired_nodes_rank_after_all_others(services: Services) -> None:
    await load(services)
    await services.registry.retire("entity:customer")
    page = await services.search.search("customer")
    assert ids(page)[-1] == "entity:customer"
    assert page.hits[-1].score < 1 <= min(h.score for h in page.hits[:-1])
    page = await services.search.search("customer", lifecycle=[Lifecycle.ACTIVE])
    assert "entity:customer" not in ids(page)


async def test_dry_run_leaves_the_index_alone(services: Services) -> None:
    await load(services)
    doc = "nodes: [{id: system:ghost, name: Ghost}]"
    await services.registry.apply_document(parse_document(doc), dry_run=True)
    assert ids(await services.search.search("ghost")) == []


async def test_rebuild_gives_the_same_answers(services: Services) -> None:
    await load(services)
    queries = ["customer", "c", "zeta", "case", "pii"]
    before = [await services.search.search(q) for q in queries]
    assert await services.search.rebuild() == 8
    after = [await services.search.search(q) for q in queries]
    assert [ids(p) for p in after] == [ids(p) for p in before]
    assert [p.facets for p in after] == [p.facets for p in before]
    assert [p.total for p in after] == [p.total for p in before]


async def test_another_process_writes_are_seen_with_their_facets(settings: Settings) -> None:
    reader, writer = await Services.start(settings), await Services.start(settings)
    try:
        await load(writer)
        assert (await reader.search.search("zeta")).facets["kind"] == [
            ("capability", 1),
            ("system", 1),
        ]
        await load(writer, "nodes: [{id: system:zeta, name: Zeta Platform, lifecycle: RETIRED}]")
        page = await reader.search.search("zeta")
        assert ids(page) == ["capability:care.cases.open-case", "system:zeta"]
        assert page.facets["lifecycle"] == [("ACTIVE", 1), ("RETIRED", 1)]
    finally:
        await reader.close()
        await writer.close()


async def test_start_rebuilds_an_incomplete_index(settings: Settings) -> None:
    services = await Services.start(settings)
    try:
        await load(services)
        async with services.store.engine.begin() as conn:
            await conn.execute(text("DELETE FROM search_docs"))
        assert ids(await services.search.search("zeta")) == []
    finally:
        await services.close()
    services = await Services.start(settings)
    try:
        assert ids(await services.search.search("zeta"))[0] == "system:zeta"
    finally:
        await services.close()


def test_cli_reindex_rebuilds_with_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    doc = tmp_path / "landscape.yaml"
    doc.write_text(LANDSCAPE, encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["apply", str(doc), "--database", url]).exit_code == 0
    result = runner.invoke(app, ["reindex", "--database", url])
    assert result.exit_code == 0, result.output
    assert "indexed 8 nodes" in result.output
