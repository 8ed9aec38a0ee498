"""The ``search`` query: ranked hits with highlights, facets over the whole result, cursors."""

from __future__ import annotations

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from catalog.search import FACETS, SearchPage
from metadata import model
from resolvers._fields import field
from resolvers.connections import PageInfo
from resolvers.context import CatalogInfo
from resolvers.enums import Kind, Lifecycle
from resolvers.timetravel import UNSET, AsOf, enter_past
from resolvers.types import CatalogNode, as_node


@strawberry.type(description="One value of a facet and how many hits have it.")
class FacetValue:
    value: str
    count: int


@strawberry.type(
    description=(
        "Counts over the whole result (not just the page), most frequent first, at most 50 "
        "values each. kind and lifecycle values are enum names; domain and owner are node ids."
    )
)
class Facets:
    kind: list[FacetValue]
    tag: list[FacetValue]
    domain: list[FacetValue]
    lifecycle: list[FacetValue]
    owner: list[FacetValue]


@strawberry.type(description="A node found by a search.")
class SearchHit:
    node: CatalogNode
    score: float = strawberry.field(
        description="Higher is better: exact name or key, name prefix, all words in the name, "
        "other matches; retired nodes score below every other node."
    )
    highlight: str | None = strawberry.field(
        description="HTML-escaped excerpt with <mark> around the words that matched."
    )


@strawberry.type(description="A page of search hits, the total and the facets.")
class SearchResult:
    total_count: int
    hits: list[SearchHit]
    facets: Facets
    page_info: PageInfo

    @classmethod
    def from_model(cls, page: SearchPage, after: str | None) -> SearchResult:
        """Map a page of the search service to the GraphQL result."""
        facets = {
            name: [FacetValue(value=_facet_value(name, v), count=c) for v, c in values]
            for name, values in ((f, page.facets.get(f, [])) for f in FACETS)
        }
        hits = page.hits
        return cls(
            total_count=page.total,
            hits=[
                SearchHit(node=as_node(h.node), score=h.score, highlight=h.highlight) for h in hits
            ],
            facets=Facets(**facets),
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.offset > 0,
                start_cursor=page.cursor(0) if hits else None,
                end_cursor=page.cursor(len(hits) - 1) if hits else None,
            ),
        )


def _requested_facets(info: CatalogInfo) -> set[str]:
    """The facets the query selects (so the others are not counted), through fragments too."""
    found: set[str] = set()

    def walk(selections: list[Selection], inside: bool) -> None:
        for sel in selections:
            if not isinstance(sel, SelectedField):
                walk(sel.selections, inside)
            elif inside:
                found.add(sel.name)
            elif sel.name == "facets":
                walk(sel.selections, True)

    for selected in info.selected_fields:
        walk(selected.selections, False)
    return found


def _facet_value(facet: str, value: str) -> str:
    """Kinds by their GraphQL enum names (``DATA_ENTITY``): a value can go back into ``kinds``."""
    return model.Kind(value).name if facet == "kind" else value


@strawberry.type
class SearchQuery:
    """Full-text discovery of the catalog."""

    @field(
        description=(
            "Find nodes by words in their name, key, description, tags, attribute names and "
            'the names of related nodes. Every word must match; "quoted phrases" match in '
            "order; the last word also matches as a prefix. Retired nodes come last."
        )
    )
    async def search(
        self,
        info: CatalogInfo,
        query: str,
        kinds: list[Kind] | None = None,
        tags: list[str] | None = None,
        domain: strawberry.ID | None = None,
        lifecycle: list[Lifecycle] | None = None,
        first: int | None = 20,
        after: str | None = None,
        as_of: AsOf = UNSET,
    ) -> SearchResult:
        if as_of:
            await enter_past(info, as_of, graph=True)
        page = await info.context.services.search.search(
            query,
            kinds=kinds or (),
            tags=tags or (),
            domain=str(domain) if domain is not None else None,
            lifecycle=lifecycle or (),
            first=first,
            after=after,
            facets=_requested_facets(info),
        )
        info.context.loaders.node.prime_many({h.node.id: h.node for h in page.hits})
        return SearchResult.from_model(page, after)


__all__ = ["FacetValue", "Facets", "SearchHit", "SearchQuery", "SearchResult"]
