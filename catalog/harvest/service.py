"""Registering sources and harvesting them: read outside the transaction, write one diff."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from catalog.changeset import ChangeReport, ChangeSet, Entry, commit, revise
from catalog.harvest._diff import DiffResult, plan_harvest, preview_harvest, write_harvest
from catalog.harvest._naming import slugify
from catalog.harvest.base import (
    HarvestBatch,
    HarvestContext,
    Harvester,
    SourceSpec,
    SourceType,
)
from catalog.harvest.fetch import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    Fetcher,
    FetchPolicy,
    check_database_query,
    check_scheme,
    is_url,
)
from catalog.settings import Settings
from metadata.errors import (
    BadSourceDataError,
    CatalogError,
    ConflictError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    SourceUnavailableError,
)
from metadata.model import Kind, Lifecycle, NodeRecord, RelationRecord, RelationType, parse_id
from metadata.store import Reader, Writer

log = logging.getLogger("capahub.harvest")

#: Through the API, ``credentialsEnv`` must name a variable with this prefix: otherwise anyone
#: who may register a source could have the hub send any of its environment variables (its
#: own database password, cloud keys) to a host of their choosing.
API_CREDENTIALS_PREFIX = "CAPAHUB_CRED_"
#: How many warnings a source keeps in its properties.
MAX_STORED_WARNINGS = 100

Progress = Callable[[str], None]


@dataclass
class HarvestReport(ChangeReport):
    """What a harvest did (or would do, on a dry run): the write path's report
    (``ChangeReport``: ids, counts, the diff) with the source, the nodes it retired (listed
    apart from ``updated``) and its warnings."""

    source: str = ""
    retired: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, source: str, diff: DiffResult, *, dry_run: bool) -> HarvestReport:
        """The report of a planned diff: its ids and warnings; ``write_harvest`` or
        ``preview_harvest`` add the diff and the counts."""
        return cls(
            source=source,
            added=list(diff.added),
            updated=list(diff.updated),
            retired=list(diff.retired),
            unchanged=list(diff.unchanged),
            warnings=list(diff.warnings),
            dry_run=dry_run,
        )


def default_harvesters() -> list[Harvester]:
    """The harvesters capahub ships: OpenAPI/Swagger, GraphQL, SQL databases, Backstage."""
    from catalog.harvest.backstage import BackstageHarvester
    from catalog.harvest.graphql import GraphQLHarvester
    from catalog.harvest.openapi import OpenAPIHarvester
    from catalog.harvest.sql import SQLHarvester

    return [OpenAPIHarvester(), GraphQLHarvester(), SQLHarvester(), BackstageHarvester()]


def source_key_for(location: str) -> str:
    """A source key derived from a location: file stem, URL host and path, or database name."""
    text = location
    try:
        url = make_url(location) if "://" in location and not is_url_http(location) else None
    except (ArgumentError, ValueError):
        url = None
    if url is not None:
        text = Path(url.database).stem if url.database else (url.host or url.drivername)
    elif is_url_http(location):
        rest = location.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
        host, _, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1].split(":", 1)[0]
        stem = Path(path).stem if path else ""
        text = f"{host}-{stem}" if stem else host
    else:
        text = Path(location).stem or location
    slug = slugify(text)
    return slug[:128].rstrip("-._") or "source"


def is_url_http(location: str) -> bool:
    """Whether ``location`` is an http(s) URL."""
    return re.match(r"https?://", location, re.IGNORECASE) is not None


class HarvestService:
    """Registers sources and turns what they describe into catalog nodes, as a diff."""

    def __init__(
        self,
        store: Any,
        settings: Settings,
        harvesters: Iterable[Harvester] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.settings = settings
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._harvesters: dict[SourceType, Harvester] = {}
        for harvester in default_harvesters() if harvesters is None else harvesters:
            self.register_harvester(harvester)

    def register_harvester(self, harvester: Harvester) -> None:
        """Use ``harvester`` for sources of its type (replacing the default one)."""
        self._harvesters[harvester.type] = harvester

    def policy(self, *, trusted: bool) -> FetchPolicy:
        """What a harvest may read: the API's policy, or the CLI's (``trusted``: any file)."""
        base = FetchPolicy.from_settings(self.settings, trusted=trusted)
        return replace(base, timeout=self.timeout, max_bytes=self.max_bytes)

    async def register_source(
        self,
        spec: SourceSpec,
        *,
        trusted: bool = False,
        actor: str | None = None,
        request_id: str | None = None,
    ) -> NodeRecord:
        """Create or update the source node ``source:<key>`` (PART_OF its system).

        ``actor`` and ``request_id`` are recorded in history, as for every harvest below.
        """
        self._check_definition(spec, trusted=trusted)
        async with self.store.transaction(actor=actor, request_id=request_id) as tx:
            return await self._upsert_source(tx, spec)

    async def harvest_source(
        self,
        source_id: str,
        *,
        dry_run: bool = False,
        trusted: bool = False,
        progress: Progress | None = None,
        actor: str | None = None,
        request_id: str | None = None,
    ) -> HarvestReport:
        """Harvest a registered source as a diff: add, update, retire; all or nothing."""
        kind, _ = parse_id(source_id, field="source")
        if kind is not Kind.SOURCE:
            raise InvalidInputError(
                f"source: {source_id!r} is not a source id (source:...)", field="source"
            )
        async with self.store.read() as r:
            spec = await _load_source(r, source_id)
        # The source's node may have been edited since registration (applyCatalog, upsertNode):
        # its credentials variable and location must pass the same checks again.
        self._check_definition(spec, trusted=trusted)
        return await self._harvest(
            spec,
            register=False,
            dry_run=dry_run,
            trusted=trusted,
            progress=progress,
            actor=actor,
            request_id=request_id,
        )

    async def harvest_location(
        self,
        spec: SourceSpec,
        *,
        dry_run: bool = False,
        trusted: bool = True,
        progress: Progress | None = None,
        actor: str | None = None,
        request_id: str | None = None,
        create_system: str | None = None,
    ) -> HarvestReport:
        """Register the source if new (or update its definition) and harvest it, in one go.

        ``create_system``: a name for ``spec.system`` should it not exist; it is then created
        in the same transaction (ACTIVE, owned by nobody) and reported first in ``added``."""
        self._check_definition(spec, trusted=trusted)
        return await self._harvest(
            spec,
            register=True,
            dry_run=dry_run,
            trusted=trusted,
            progress=progress,
            actor=actor,
            request_id=request_id,
            create_system=create_system,
        )

    def _check_definition(self, spec: SourceSpec, *, trusted: bool) -> None:
        env = spec.credentials_env
        if env and not trusted and not env.startswith(API_CREDENTIALS_PREFIX):
            raise NotAllowedError(
                f"input.credentialsEnv: through the API a source may only name variables "
                f"starting with {API_CREDENTIALS_PREFIX} (got {env}); ask the operator to "
                f"provide the secret as {API_CREDENTIALS_PREFIX}{env}",
                field="input.credentialsEnv",
            )
        location = spec.location
        if spec.type is SourceType.SQL:
            try:
                url = make_url(location)
            except (ArgumentError, ValueError):  # ValueError: e.g. an unclosed IPv6 host
                raise InvalidInputError(
                    f"input.location: {location!r} is not an SQLAlchemy URL "
                    "(e.g. postgresql://host/db or sqlite:///path/shop.db)",
                    field="input.location",
                ) from None
            try:
                check_database_query(url.query, location)
            except CatalogError as err:
                raise type(err)(f"input.{err.message}", field="input.location") from None
            if url.password:
                raise InvalidInputError(
                    "input.location: the URL contains a password; credentials are never stored "
                    "- put it in an environment variable and name it in credentialsEnv",
                    field="input.location",
                )
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                Fetcher(self.policy(trusted=trusted)).check_file(str(url.database))
            return
        try:
            check_scheme(location)
        except NotAllowedError as err:
            raise NotAllowedError(f"input.{err.message}", field="input.location") from None
        if is_url(location):
            userinfo = location.split("://", 1)[1].split("/", 1)[0]
            if "@" in userinfo and ":" in userinfo.rsplit("@", 1)[0]:
                raise InvalidInputError(
                    "input.location: the URL contains a password; credentials are never stored "
                    "- put them in an environment variable and name it in credentialsEnv",
                    field="input.location",
                )
        else:
            try:
                Fetcher(self.policy(trusted=trusted)).check_file(location)
            except NotAllowedError as err:
                raise NotAllowedError(f"input.{err.message}", field="input.location") from None

    def _credentials(self, spec: SourceSpec) -> str | None:
        if not spec.credentials_env:
            return None
        value = os.environ.get(spec.credentials_env)
        if not value:
            raise SourceUnavailableError(
                f"{spec.id}: the environment variable {spec.credentials_env} (credentialsEnv) "
                "is not set in the hub's environment",
                field="credentialsEnv",
                source=spec.id,
            )
        return value

    async def _harvest(
        self,
        spec: SourceSpec,
        *,
        register: bool,
        dry_run: bool,
        trusted: bool,
        progress: Progress | None,
        actor: str | None = None,
        request_id: str | None = None,
        create_system: str | None = None,
    ) -> HarvestReport:
        say = progress or (lambda _stage: None)
        harvester = self._harvesters.get(spec.type)
        if harvester is None:
            raise InvalidInputError(
                f"{spec.id}: no harvester for sources of type {spec.type.name}", field="type"
            )
        async with self.store.read() as r:
            missing = await _check_system(
                r, spec, register=register, create=register and create_system is not None
            )
        credentials = self._credentials(spec)
        ctx = HarvestContext(
            source_id=spec.id,
            key=spec.key,
            name=spec.name,
            system=spec.system,
            location=spec.location,
            fetcher=Fetcher(self.policy(trusted=trusted)),
            credentials=credentials,
        )
        say(f"reading {_safe(spec.location)}")
        batch = await self._read(harvester, ctx, credentials)
        say(f"comparing {len(batch.nodes)} nodes with the catalog")
        system: NodeRecord | None = None
        if dry_run and missing and create_system is not None:
            # Planned against the catalog with the new system in it, then rolled back.
            try:
                async with self.store.transaction(actor=actor, request_id=request_id) as tx:
                    system = await _create_system(tx, spec.system, create_system)
                    diff = await plan_harvest(tx, spec.id, batch, tx.now)
                    _refuse_wipe(spec, batch, diff)
                    raise _Planned(diff, system)
            except _Planned as planned:
                diff, system = planned.diff, planned.system
        if dry_run:
            if not missing:
                async with self.store.read() as r:
                    diff = await plan_harvest(r, spec.id, batch, _now())
                    _refuse_wipe(spec, batch, diff)
            report = HarvestReport.of(spec.id, diff, dry_run=True)
            preview_harvest(diff, spec.id, report)
            return _with_system(report, system)
        async with self.store.transaction(actor=actor, request_id=request_id) as tx:
            if register:
                if missing and create_system is not None:
                    system = await _create_system(tx, spec.system, create_system)
                await self._upsert_source(tx, spec)
            diff = await plan_harvest(tx, spec.id, batch, tx.now)
            _refuse_wipe(spec, batch, diff)
            say(f"writing {diff.writes} changes")
            report = HarvestReport.of(spec.id, diff, dry_run=False)
            await write_harvest(tx, diff, spec.id, report)
            await _store_warnings(tx, spec.id, diff.warnings)
        return _with_system(report, system)

    async def _read(
        self, harvester: Harvester, ctx: HarvestContext, credentials: str | None
    ) -> HarvestBatch:
        """Run the harvester; every failure names the source and hides the credentials."""
        where = _safe(ctx.location)
        try:
            return await harvester.harvest(ctx)
        except CatalogError as err:
            message = err.message
            if credentials:
                message = message.replace(credentials, "***")
            if ctx.source_id not in message:
                message = f"{ctx.source_id}: {message}"
            raise type(err)(message, field=err.field, source=ctx.source_id) from None
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
            # A shape the harvester did not expect: the source's data, not the hub, is at fault.
            log.warning("harvest of %s failed on unexpected data", ctx.source_id, exc_info=True)
            raise BadSourceDataError(
                f"{ctx.source_id}: cannot read {where} as {ctx_type(harvester)} "
                f"({type(err).__name__})",
                source=ctx.source_id,
            ) from None

    async def _upsert_source(self, tx: Writer, spec: SourceSpec) -> NodeRecord:
        system = (await tx.get_nodes([spec.system])).get(spec.system)
        if system is None or system.kind is not Kind.SYSTEM:
            raise NotFoundError(
                f"input.system: no system {spec.system!r} in the catalog", field="input.system"
            )
        old = (await tx.get_nodes([spec.id])).get(spec.id)
        if old is not None:
            current = await _system_of(tx, spec.id)
            if current is not None and current != spec.system:
                raise ConflictError(
                    f"input.system: {spec.id} belongs to {current}, not {spec.system}; "
                    "register the other system's source under a new key",
                    field="input.system",
                )
        props = spec.properties()
        if old is not None and isinstance(old.properties, dict) and "warnings" in old.properties:
            props["warnings"] = old.properties["warnings"]
        rec = revise(
            old, spec.id, tx.now, name=spec.name, properties=props, lifecycle=Lifecycle.ACTIVE
        )
        changes = ChangeSet(known={spec.system: system})
        if rec is not old:
            changes.nodes.append((old, rec, Entry("input")))
        link = (spec.id, RelationType.PART_OF.value, spec.system)
        if not await tx.get_relations([link]):
            part_of = RelationRecord(spec.id, RelationType.PART_OF, spec.system, None)
            changes.added.append((part_of, Entry("input.system")))
        await commit(tx, changes)
        return rec


def ctx_type(harvester: Harvester) -> str:
    """The format a harvester reads, for messages (``OPENAPI``)."""
    return harvester.type.name


def _now() -> datetime:
    return datetime.now(UTC)


def _safe(location: str) -> str:
    """A location fit for messages: any password in a URL masked."""
    try:
        if "://" in location and not is_url_http(location):
            return make_url(location).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        pass
    return re.sub(r"(://[^/:@]+:)[^/@]+@", r"\1***@", location)


def _refuse_wipe(spec: SourceSpec, batch: HarvestBatch, diff: DiffResult) -> None:
    """A source that suddenly describes nothing is far more likely broken than empty."""
    if not batch.nodes and diff.retired:
        raise BadSourceDataError(
            f"{spec.id}: the source describes nothing now; refusing to retire its "
            f"{len(diff.retired)} harvested nodes (retire them one by one if that is intended)",
            source=spec.id,
        )


async def _system_of(r: Reader, source_id: str) -> str | None:
    for rel in await r.relations_from([source_id]):
        if rel.type is RelationType.PART_OF:
            return rel.to_id
    return None


async def _check_system(
    r: Reader, spec: SourceSpec, *, register: bool, create: bool = False
) -> bool:
    """Refuse a source of a missing system (unless ``create``: then True) or of another one."""
    system = (await r.get_nodes([spec.system])).get(spec.system)
    missing = system is None and create
    if not missing and (system is None or system.kind is not Kind.SYSTEM):
        raise NotFoundError(f"system: no system {spec.system!r} in the catalog", field="system")
    current = await _system_of(r, spec.id) if register else None
    if current is not None and current != spec.system:
        raise ConflictError(
            f"system: {spec.id} belongs to {current}, not {spec.system}; "
            "register the other system's source under a new key",
            field="system",
        )
    return missing


class _Planned(Exception):
    """Rolls back a dry run's transaction, carrying its plan out."""

    def __init__(self, diff: DiffResult, system: NodeRecord | None) -> None:
        super().__init__("dry run")
        self.diff = diff
        self.system = system


async def _create_system(tx: Writer, system_id: str, name: str) -> NodeRecord | None:
    """Create the system a harvested source belongs to (ACTIVE, no owner) unless it exists
    by now; the record created, if it was."""
    if (await tx.get_nodes([system_id])).get(system_id) is not None:
        return None
    rec = revise(None, system_id, tx.now, name=name)
    await commit(tx, ChangeSet(nodes=[(None, rec, Entry("system"))]))
    return rec


def _with_system(report: HarvestReport, system: NodeRecord | None) -> HarvestReport:
    """The report with the system created for the source first among the added nodes (and
    in the diff)."""
    if system is not None:
        report.added.insert(0, system.id)
        report.node_writes.insert(0, (None, system))
    return report


async def _load_source(r: Reader, source_id: str) -> SourceSpec:
    rec = (await r.get_nodes([source_id])).get(source_id)
    if rec is None or rec.kind is not Kind.SOURCE:
        raise NotFoundError(f"source: no source {source_id!r} in the catalog", field="source")
    props = rec.properties or {}
    system = await _system_of(r, source_id)
    try:
        source_type = SourceType[str(props.get("type", "")).upper()]
    except KeyError:
        raise InvalidInputError(
            f"{source_id}: properties.type is {props.get('type')!r}; expected one of "
            f"{', '.join(t.name for t in SourceType)} (register the source again)",
            field="source",
        ) from None
    if system is None:
        raise InvalidInputError(
            f"{source_id}: the source is not PART_OF a system (register it again)",
            field="source",
        )
    return SourceSpec.build(
        {
            "key": rec.key,
            "name": rec.name,
            "type": source_type,
            "location": props.get("location") or "",
            "system": system,
            "credentialsEnv": props.get("credentialsEnv"),
        },
        loc=source_id,
    )


async def _store_warnings(tx: Writer, source_id: str, warnings: list[str]) -> None:
    """Keep the latest warnings on the source node (written only when they change)."""
    rec = (await tx.get_nodes([source_id])).get(source_id)
    if rec is None:  # pragma: no cover - the source exists inside the transaction
        return
    props = dict(rec.properties or {})
    kept = warnings[:MAX_STORED_WARNINGS]
    if props.get("warnings", []) == kept:
        return
    if kept:
        props["warnings"] = kept
    else:
        props.pop("warnings", None)
    after = revise(rec, source_id, tx.now, properties=props)
    await commit(tx, ChangeSet(nodes=[(rec, after, Entry(source_id))]))


__all__ = [
    "API_CREDENTIALS_PREFIX",
    "HarvestReport",
    "HarvestService",
    "default_harvesters",
    "source_key_for",
]
