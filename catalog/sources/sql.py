"""SQL connector: any database SQLAlchemy reaches, queried with bound parameters only."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import column, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchTableError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import ColumnClause

from catalog.harvest.fetch import Fetcher, FetchPolicy, check_database_query
from catalog.locations import resolve_location
from catalog.sources.base import Query, SourceRef, Target, check_credentials_env
from metadata.errors import BadSourceDataError, SourceUnavailableError
from metadata.store import normalize_url


@dataclass
class _Connection:
    """An engine for one source, and what it was built from (checked before every use)."""

    engine: AsyncEngine
    #: The source node's location and credentials variable, and the secret's value.
    definition: tuple[str, str | None, str | None]
    #: A SQLite source's file and what it was when the engine was built (``_identity``).
    file: str | None = None
    identity: tuple[int, ...] | None = None


def _identity(path: str) -> tuple[int, ...] | None:
    """What tells one file from another at ``path`` (links followed): device and inode (a file
    moved in its place), size and modification time (one copied over it); None: no file."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SqlConnector:
    """Reads tables through a small, bounded async engine per source.

    An engine is kept while its source stays as it was: a source node whose location or
    credentials changed gets a new one (checked again against the policy), and a SQLite
    source's file is looked at before every query, so a deleted file is an error and a
    replaced one is opened afresh, never answered from the old file's open connections.
    """

    def __init__(
        self, *, timeout: float = 5.0, pool_size: int = 5, policy: FetchPolicy | None = None
    ) -> None:
        self.timeout = timeout
        self.pool_size = pool_size
        # Without a policy (trusted tools) any database is reachable; the server passes the
        # API's policy: SQLite files only under the allowed roots, hosts checked like harvests.
        self.policy = policy
        self._connections: dict[str, _Connection] = {}
        self._lock = asyncio.Lock()

    async def _engine(self, source: SourceRef) -> AsyncEngine:
        secret = check_credentials_env(source, trusted=self.policy is None)
        definition = (source.location, source.credentials_env, secret)
        async with self._lock:
            known = self._connections.get(source.id)
            if known is not None:
                if known.definition == definition and known.file is None:
                    return known.engine
                if known.definition == definition and known.file is not None:
                    current = _identity(known.file)
                    if current is not None and current == known.identity:
                        return known.engine
                # The source node changed, or its file was deleted or replaced: the open
                # connections belong to what the source was.
                del self._connections[source.id]
                await known.engine.dispose()
            conn = await self._connect(source, secret)
            self._connections[source.id] = conn
            return conn.engine

    async def _connect(self, source: SourceRef, secret: str | None) -> _Connection:
        try:
            demo = self.policy.demo_data_dir if self.policy is not None else None
            url = make_url(normalize_url(resolve_location(source.location, demo)))
        except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
            raise BadSourceDataError(
                f"{source.id}: location is not an SQLAlchemy URL", source=source.id
            ) from None
        sqlite = url.get_backend_name() == "sqlite"
        file = str(url.database or "") if sqlite else None
        if file is not None and (not file or file.startswith(":")):
            raise BadSourceDataError(
                f"{source.id}: location names no database file (an in-memory SQLite database "
                "holds no records)",
                source=source.id,
            )
        if self.policy is not None:
            fetcher = Fetcher(self.policy)
            if file is not None:
                fetcher.check_file(file)
            else:
                check_database_query(url.query, source.id)
                await fetcher.check_host(url.host or "localhost", url.port or 5432)
        if secret and not sqlite:  # a SQLite file has no password (its URL may hold none)
            url = url.set(password=secret)
        kwargs: dict[str, Any] = {}
        identity = None
        if not sqlite:
            # pre_ping: a pooled connection is checked before use (a restarted or moved
            # database gets a new one, not an error on the first query after it).
            kwargs.update(
                pool_size=self.pool_size,
                max_overflow=0,
                pool_timeout=self.timeout,
                pool_pre_ping=True,
            )
        elif file:
            identity = _identity(file)
            if identity is None:
                raise SourceUnavailableError(
                    f"{source.id}: the database file {file} does not exist (deleted or moved); "
                    "correct the source's location or restore the file",
                    source=source.id,
                )
            # Read-only: the hub never writes to a source system.
            url = url.set(query={**url.query, "mode": "ro", "uri": "true"})
            url = url.set(database=f"file:{url.database}")
        try:
            engine = create_async_engine(url, **kwargs)
        except ArgumentError as err:  # e.g. a driver that is not installed
            raise BadSourceDataError(
                f"{source.id}: location cannot be used ({_first_line(err)})", source=source.id
            ) from None
        return _Connection(
            engine, (source.location, source.credentials_env, secret), file, identity
        )

    async def fetch(self, target: Target, query: Query) -> list[dict[str, Any]]:
        """SELECT the wanted columns WHERE col = :value ... [AND key IN (...)] LIMIT n."""
        cols: list[ColumnClause[Any]] = [column(c) for c in target.columns]
        tbl = table(target.container, *cols)
        stmt = select(*cols)
        for name, value in query.equals.items():
            stmt = stmt.where(column(name) == value)
        if query.key_column is not None:
            stmt = stmt.where(column(query.key_column).in_(list(query.keys)))
        stmt = stmt.select_from(tbl).limit(query.limit)
        try:
            async with asyncio.timeout(self.timeout):
                engine = await self._engine(target.source)
                async with engine.connect() as conn:
                    result = await conn.execute(stmt)
                    return [dict(row._mapping) for row in result]
        except ArgumentError as err:  # a URL the dialect or driver refuses when it connects
            raise BadSourceDataError(
                f"{target.source.id}: location cannot be used ({_first_line(err)})",
                source=target.source.id,
            ) from None
        except TimeoutError:
            raise SourceUnavailableError(
                f"{target.source.id}: no answer within {self.timeout:g} s", source=target.source.id
            ) from None
        except (NoSuchTableError, ProgrammingError) as err:
            raise BadSourceDataError(
                f"{target.source.id}: table {target.container!r} cannot be read as catalogued "
                f"({_first_line(err)})",
                source=target.source.id,
            ) from None
        except (OperationalError, DBAPIError, OSError) as err:
            message = _first_line(err)
            if "no such table" in message or "no such column" in message:
                raise BadSourceDataError(
                    f"{target.source.id}: {message}", source=target.source.id
                ) from None
            raise SourceUnavailableError(
                f"{target.source.id}: cannot query the database ({message})",
                source=target.source.id,
            ) from None

    async def close(self) -> None:
        """Dispose of every engine."""
        for conn in self._connections.values():
            await conn.engine.dispose()
        self._connections.clear()


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err)
    return text.splitlines()[0][:200] if text else type(err).__name__


__all__ = ["SqlConnector"]
