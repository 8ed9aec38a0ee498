"""Harvesting mutations: ``registerSource`` and ``harvest`` (a diff, or a dry run)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from catalog.harvest import HarvestReport as HarvestResult
from catalog.harvest import SourceSpec
from catalog.harvest import SourceType as _SourceType
from resolvers._fields import mutation
from resolvers.context import CatalogInfo
from resolvers.diff import WriteDiff
from resolvers.types import Source

# strawberry.enum puts the definition on the catalog's enum and returns it: one class.
strawberry.enum(
    _SourceType, name="SourceType", description="The formats a source can be harvested from."
)
SourceType = _SourceType


@strawberry.input(description="A source of metadata for one system.")
class SourceInput:
    key: str = strawberry.field(description="The source's key; its id is source:KEY.")
    name: str
    type: SourceType
    location: str = strawberry.field(
        description="A file path (under CAPAHUB_HARVEST_FILE_ROOTS), an http(s) URL, or an "
        "SQLAlchemy URL (without password)."
    )
    system: strawberry.ID = strawberry.field(description="The system the source describes.")
    credentials_env: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Name of the environment variable holding the credentials (through the "
        "API it must start with CAPAHUB_CRED_); the value is never stored.",
    )


@strawberry.type(description="What a harvest changed (or, on a dry run, would change).")
class HarvestReport(WriteDiff):
    added: list[strawberry.ID]
    updated: list[strawberry.ID]
    retired: list[strawberry.ID]
    unchanged: int
    warnings: list[str]
    relations_added: int
    relations_updated: int
    relations_removed: int
    dry_run: bool

    @classmethod
    def from_model(cls, report: HarvestResult) -> HarvestReport:
        """Map the harvest service's report to the GraphQL type."""
        return cls(
            added=[strawberry.ID(i) for i in report.added],
            updated=[strawberry.ID(i) for i in report.updated],
            retired=[strawberry.ID(i) for i in report.retired],
            unchanged=len(report.unchanged),
            warnings=report.warnings,
            relations_added=report.relations_added,
            relations_updated=report.relations_updated,
            relations_removed=report.relations_removed,
            dry_run=report.dry_run,
            report=report,
        )


def _source_data(value: SourceInput) -> dict[str, Any]:
    return {
        "key": value.key,
        "name": value.name,
        "type": value.type,
        "location": value.location,
        "system": str(value.system),
        "credentialsEnv": value.credentials_env or None,
    }


@strawberry.type
class HarvestMutation:
    """Register sources and harvest them into the catalog."""

    @mutation(description="Register (or redefine) a source of a system's metadata.")
    async def register_source(self, info: CatalogInfo, input: SourceInput) -> Source:
        spec = SourceSpec.build(_source_data(input), "input")
        ctx = info.context
        rec = await ctx.services.harvest.register_source(
            spec, actor=ctx.principal.actor, request_id=ctx.request_id
        )
        return Source(rec=rec)

    @mutation(
        description="Harvest a registered source as a diff: added, updated, retired nodes. "
        "A failed harvest writes nothing."
    )
    async def harvest(
        self,
        info: CatalogInfo,
        # Not called `source` in Python: strawberry's field extensions take `source` (the
        # parent value) positionally, and a keyword of that name would collide with it.
        source_id: Annotated[strawberry.ID, strawberry.argument(name="source")],
        dry_run: bool | None = False,
    ) -> HarvestReport:
        ctx = info.context
        report = await ctx.services.harvest.harvest_source(
            str(source_id),
            dry_run=bool(dry_run),
            actor=ctx.principal.actor,
            request_id=ctx.request_id,
        )
        return HarvestReport.from_model(report)


__all__ = ["HarvestMutation", "HarvestReport", "SourceInput", "SourceType"]
