"""SQL databases -> data entities (tables and views) and REFERENCES (foreign keys).

Any database SQLAlchemy can reflect: the default schema's tables and views become entities
with typed attributes (primary key in ``properties.primaryKey``), the system STORES them, and
foreign keys become REFERENCES between entities with the columns in the relation's
properties (several foreign keys between the same two tables make one relation listing all).
Reflection runs with a synchronous engine in a worker thread, read-only where the database
allows it. The password, if any, comes from the variable ``credentialsEnv`` names.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.engine.reflection import ObjectKind
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from catalog.harvest._naming import classify
from catalog.harvest.base import BatchBuilder, HarvestBatch, HarvestContext, SourceType
from catalog.harvest.fetch import check_database_query
from metadata.errors import BadSourceDataError, InvalidInputError, SourceUnavailableError
from metadata.model import Kind, RelationType

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


@dataclass
class Table:
    """A reflected table or view."""

    name: str
    kind: str  # "table" | "view"
    columns: list[dict[str, Any]]
    primary_key: list[str]
    foreign_keys: list[dict[str, Any]]
    comment: str | None = None


@dataclass
class Database:
    """What reflection found in one schema."""

    schema: str | None
    dialect: str
    tables: dict[str, Table] = field(default_factory=dict)


def sync_url(url: URL) -> URL:
    """The URL with a synchronous driver (the hub's own async drivers map back)."""
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite" and driver != "pysqlite":
        return url.set(drivername="sqlite")
    if backend == "postgresql" and driver in ("asyncpg", "psycopg2"):
        # plain postgresql:// means psycopg2; use psycopg 3 when only that one is installed.
        for module in ("psycopg2", "psycopg"):
            if importlib.util.find_spec(module) is not None:
                return url.set(drivername=f"postgresql+{module}")
        raise SourceUnavailableError(
            "no PostgreSQL driver for reflection is installed; pip install 'psycopg[binary]'",
            field="location",
        )
    if driver in ("aiomysql", "asyncmy"):
        return url.set(drivername=f"{backend}+pymysql")
    return url


def _type_name(col_type: Any, dialect: Dialect) -> str:
    try:
        return str(col_type.compile(dialect=dialect))
    except Exception:  # some types cannot be compiled outside their dialect
        name = type(col_type).__name__
        return "any" if name == "NullType" else name


def reflect(url: URL, timeout: float) -> Database:
    """Reflect the default schema of the database at ``url`` (blocking; run in a thread)."""
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, int(timeout))
    elif url.get_backend_name() == "sqlite":
        connect_args["timeout"] = timeout
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            schema = insp.default_schema_name
            db = Database(schema, engine.dialect.name)
            kinds = {name: "table" for name in insp.get_table_names()}
            kinds.update({name: "view" for name in insp.get_view_names()})
            if not kinds:
                return db
            columns = insp.get_multi_columns(kind=ObjectKind.ANY)
            pks = insp.get_multi_pk_constraint(kind=ObjectKind.ANY)
            fks = insp.get_multi_foreign_keys(kind=ObjectKind.ANY)
            try:
                comments = insp.get_multi_table_comment(kind=ObjectKind.ANY)
            except NotImplementedError:
                comments = {}
            for (_, name), cols in sorted(columns.items(), key=lambda kv: kv[0][1]):
                if name not in kinds:
                    continue
                key = (None, name)  # the default schema is keyed as None
                pk: dict[str, Any] = dict(pks.get(key) or {})
                comment: dict[str, Any] = dict(comments.get(key) or {})
                db.tables[name] = Table(
                    name=name,
                    kind=kinds[name],
                    columns=[
                        {
                            "name": c["name"],
                            "type": _type_name(c["type"], engine.dialect),
                            "comment": c.get("comment"),
                            "nullable": c.get("nullable", True),
                        }
                        for c in cols
                    ],
                    primary_key=list(pk.get("constrained_columns") or ()),
                    foreign_keys=[dict(fk) for fk in fks.get(key) or ()],
                    comment=comment.get("text"),
                )
            return db
    finally:
        engine.dispose()


class SQLHarvester:
    """Harvests relational databases through SQLAlchemy reflection."""

    type = SourceType.SQL

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        """Reflect the database at ``ctx.location`` and map it (see the module docstring)."""
        try:
            url = make_url(ctx.location)
        except ArgumentError:
            raise InvalidInputError(
                f"location: {ctx.location!r} is not an SQLAlchemy URL", field="location"
            ) from None
        if ctx.credentials:
            url = url.set(password=ctx.credentials)
        policy = ctx.fetcher.policy
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database in ("", ":memory:"):
                raise InvalidInputError(
                    "location: an in-memory SQLite database has nothing to harvest",
                    field="location",
                )
            path = ctx.fetcher.check_file(database)
            if not Path(path).is_file():
                raise SourceUnavailableError(f"{database}: no such database file", field="location")
            # Read-only, so a typo can never create (or touch) a database file.
            url = URL.create("sqlite", database=f"file:{path}?mode=ro", query={"uri": "true"})
        else:
            check_database_query(url.query, str(url.render_as_string(hide_password=True)))
            port = url.port or _DEFAULT_PORTS.get(url.get_backend_name(), 0)
            await ctx.fetcher.check_host(url.host or "localhost", port)
        url = sync_url(url)
        shown = url.render_as_string(hide_password=True)
        budget = max(60.0, policy.timeout * 10)
        try:
            db = await asyncio.wait_for(
                asyncio.to_thread(reflect, url, policy.timeout), timeout=budget
            )
        except TimeoutError:
            raise SourceUnavailableError(
                f"{shown}: reflection did not finish within {budget:g} s", field="location"
            ) from None
        except NoSuchModuleError as err:
            raise SourceUnavailableError(
                f"{shown}: no SQLAlchemy driver for this URL ({err})", field="location"
            ) from None
        except ModuleNotFoundError as err:
            raise SourceUnavailableError(
                f"{shown}: the database driver is not installed ({err.name})", field="location"
            ) from None
        except DBAPIError as err:
            reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
            raise SourceUnavailableError(
                f"{shown}: cannot read the database ({reason})", field="location"
            ) from None
        except SQLAlchemyError as err:
            raise BadSourceDataError(
                f"{shown}: reflection failed ({str(err).splitlines()[0]})", field="location"
            ) from None
        return _build(db, ctx)


def _build(db: Database, ctx: HarvestContext) -> HarvestBatch:
    b = BatchBuilder(ctx)
    if not db.tables:
        b.warn(f"the database has no tables or views in schema {db.schema or 'main'}")
    ids = {
        name: b.claim(Kind.DATA_ENTITY, name, origin=f"{t.kind} {name}")
        for name, t in db.tables.items()
    }
    for name, t in db.tables.items():
        properties: dict[str, Any] = {
            "table": name,
            "schema": db.schema,
            "tableType": t.kind,
            "dialect": db.dialect,
            "primaryKey": t.primary_key,
            "notNull": [c["name"] for c in t.columns if c["nullable"] is False],
        }
        b.node(
            ids[name],
            name,
            origin=f"{t.kind} {name}",
            description=t.comment,
            properties=properties,
            attributes=[
                {
                    "name": c["name"],
                    "type": c["type"],
                    "description": c["comment"],
                    "classification": classify(c["name"]),
                }
                for c in t.columns
            ],
        )
        b.relate(ctx.system, RelationType.STORES, ids[name])
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for fk in t.foreign_keys:
            target = fk.get("referred_table")
            referred_schema = fk.get("referred_schema")
            if referred_schema not in (None, db.schema) or target not in ids:
                where = f"{referred_schema}.{target}" if referred_schema else str(target)
                b.warn(f"{t.kind} {name}: foreign key to {where}, which is not harvested; left out")
                continue
            entry: dict[str, Any] = {
                "columns": list(fk.get("constrained_columns") or ()),
                "referencedColumns": list(fk.get("referred_columns") or ()),
            }
            if fk.get("name"):
                entry["name"] = fk["name"]
            grouped[target].append(entry)
        for target, keys in grouped.items():
            b.relate(ids[name], RelationType.REFERENCES, ids[target], {"foreignKeys": keys})
    return b.build()


__all__ = ["Database", "SQLHarvester", "Table", "reflect", "sync_url"]
