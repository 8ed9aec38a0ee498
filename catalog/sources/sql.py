"""SQL connector: any database SQLAlchemy reaches, queried with bound parameters only."""

from __future__ import annotations

import asyncio
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
from catalog.sources.base import Query, SourceRef, Target, check_credentials_env
from metadata.errors import BadSourceDataError, SourceUnavailableError
from metadata.store import normalize_url


class SqlConnector:
    """Reads tables through a small, bounded async engine per source URL."""

    def __init__(
        self, *, timeout: float = 5.0, pool_size: int = 5, policy: FetchPolicy | None = None
    ) -> None:
        self.timeout = timeout
        self.pool_size = pool_size
        # Without a policy (trusted tools) any database is reachable; the server passes the
        # API's policy: SQLite files only under the allowed roots, hosts checked like harvests.
        self.policy = policy
        self._engines: dict[str, AsyncEngine] = {}

    async def _engine(self, source: SourceRef) -> AsyncEngine:
        engine = self._engines.get(source.id)
        if engine is None:
            try:
                url = make_url(normalize_url(source.location))
            except ArgumentError:
                raise BadSourceDataError(
                    f"{source.id}: location is not an SQLAlchemy URL", source=source.id
                ) from None
            if self.policy is not None:
                fetcher = Fetcher(self.policy)
                if url.get_backend_name() == "sqlite":
                    fetcher.check_file(str(url.database or ""))
                else:
                    check_database_query(url.query, source.id)
                    await fetcher.check_host(url.host or "localhost", url.port or 5432)
            secret = check_credentials_env(source, trusted=self.policy is None)
            if secret:
                url = url.set(password=secret)
            kwargs: dict[str, Any] = {}
            if not url.drivername.startswith("sqlite"):
                kwargs.update(pool_size=self.pool_size, max_overflow=0, pool_timeout=self.timeout)
            elif url.database and not url.database.startswith(":"):
                # Read-only: the hub never writes to a source system.
                url = url.set(query={**url.query, "mode": "ro", "uri": "true"})
                url = url.set(database=f"file:{url.database}")
            engine = create_async_engine(url, **kwargs)
            self._engines[source.id] = engine
        return engine

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
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err)
    return text.splitlines()[0][:200] if text else type(err).__name__


__all__ = ["SqlConnector"]
