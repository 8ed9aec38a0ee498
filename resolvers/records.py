"""Live records across source systems: ``records`` on Query and ``DataEntity.records``."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from catalog.access.principal import Right
from catalog.sources.records import FieldConflict as FieldConflictModel
from catalog.sources.records import RecordsPage, page_cursor
from metadata.errors import InvalidInputError
from resolvers._fields import field
from resolvers.context import CatalogInfo
from resolvers.paging import PageInfo


@strawberry.type(description="What one system had for a conflicting field.")
class SourceValue:
    system: strawberry.ID
    value: JSON | None


@strawberry.type(description="Systems disagreeing on one field, the value chosen and why.")
class FieldConflict:
    field: str
    values: list[SourceValue]
    chosen: JSON | None
    reason: str

    @classmethod
    def from_model(cls, c: FieldConflictModel) -> FieldConflict:
        """Map a merge conflict."""
        return cls(
            field=c.field,
            values=[SourceValue(system=strawberry.ID(s), value=v) for s, v in c.values],
            chosen=c.chosen,
            reason=c.reason,
        )


@strawberry.type(description="One record as the hub sees it, assembled from every source.")
class Record:
    key: str = strawberry.field(description="The match key value (or a per-source row key).")
    data: JSON = strawberry.field(description="Canonical field -> chosen value.")
    sources: list[strawberry.ID] = strawberry.field(description="Systems that contributed.")
    conflicts: list[FieldConflict]
    masked: list[str] = strawberry.field(
        description="Canonical fields withheld from this caller: personal data (PII) without "
        "the pii right. They are null in data, and their conflicts are left out."
    )


@strawberry.type
class RecordEdge:
    cursor: str
    node: Record


@strawberry.type(description="A source that failed: its data is missing, the rest is there.")
class SourceError:
    source: strawberry.ID
    code: str
    message: str


@strawberry.type(description="A page of live records plus the failures of the sources.")
class RecordConnection:
    edges: list[RecordEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Distinct unified records.")
    errors: list[SourceError]


def to_connection(page: RecordsPage) -> RecordConnection:
    """Map a page of unified records."""
    edges = [
        RecordEdge(
            cursor=page_cursor(page.start + i),
            node=Record(
                key=r.key,
                data=JSON(r.data),
                sources=[strawberry.ID(s) for s in r.sources],
                conflicts=[FieldConflict.from_model(c) for c in r.conflicts],
                masked=r.masked,
            ),
        )
        for i, r in enumerate(page.records)
    ]
    return RecordConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.start > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=page.total,
        errors=[
            SourceError(source=strawberry.ID(e.source), code=e.code, message=e.message)
            for e in page.errors
        ],
    )


async def resolve_records(
    info: CatalogInfo, entity: str, where: Any, first: int | None, after: str | None
) -> RecordConnection:
    """Run a records query through the record service."""
    if where is not None and not isinstance(where, dict):
        raise InvalidInputError("where: an object of canonical attribute -> value", field="where")
    page = await info.context.services.records.records(
        entity,
        where,
        first=50 if first is None else first,
        after=after,
        reveal_pii=info.context.principal.has(Right.PII),
    )
    return to_connection(page)


@strawberry.type
class RecordsQuery:
    """Live data across the source systems."""

    @field(description="Live records of a data entity, unified across the systems that hold it.")
    async def records(
        self,
        info: CatalogInfo,
        entity: strawberry.ID,
        where: JSON | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> RecordConnection:
        return await resolve_records(info, str(entity), where, first, after)


__all__ = ["RecordConnection", "RecordsQuery", "resolve_records"]
