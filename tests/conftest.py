"""Shared fixtures: real SQLite files (and PostgreSQL when configured), the real ASGI app."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from catalog.app import create_app
from catalog.services import Services
from catalog.settings import Settings

PG_URL = os.environ.get("CAPAHUB_TEST_DATABASE_URL")
#: ``CAPAHUB_TEST_AUTH=on``: every app the fixtures start has access control on, and its client
#: sends an admin hub token (scripts/test runs the API tests once more so).
AUTH_ON = os.environ.get("CAPAHUB_TEST_AUTH") == "on"
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
#: Starlette's TestClient sends ``Host: testserver``; the hub answers only the host names it is
#: configured for (loopback ones by default), so the apps the tests build allow that one too.
TEST_HOSTS = "localhost,127.0.0.1,::1,testserver"


@pytest.fixture(autouse=True, scope="session")
def _test_client_host() -> Iterator[None]:
    """``CAPAHUB_ALLOWED_HOSTS`` for the tests that build their own ``Settings``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPAHUB_ALLOWED_HOSTS", TEST_HOSTS)
        yield


def _fresh_pg_database() -> str:
    """Create an empty database on the test PostgreSQL server and return its URL."""
    assert PG_URL is not None
    base = make_url(PG_URL).set(drivername="postgresql+psycopg")
    name = f"capahub_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_URL).set(database=name, drivername="postgresql").render_as_string(False)


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty catalog database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip("CAPAHUB_TEST_DATABASE_URL is not set (.ci/run starts a PostgreSQL)")
        return _fresh_pg_database()
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL to an empty SQLite catalog file."""
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings pointing at the test database, without the cost budget per caller: one test
    client is one caller, and a hypothesis test sends it hundreds of operations in seconds.
    tests/http/test_budget.py tests the default budget (apps built with it, and served)."""
    return Settings(
        database_url=db_url, allowed_hosts=TEST_HOSTS, cost_per_minute=0, _env_file=None
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Started catalog services on the test database."""
    svc = await Services.start(settings)
    try:
        yield svc
    finally:
        await svc.close()


class GraphQLClient:
    """Sends GraphQL through the real Starlette app over the ASGI interface."""

    def __init__(self, client: TestClient) -> None:
        self.http = client

    def post(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a query; returns the decoded JSON body."""
        resp = self.http.post("/graphql", json={"query": query, "variables": variables or {}})
        body: dict[str, Any] = resp.json()
        return body

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a query that must succeed; returns ``data``."""
        body = self.post(query, variables)
        assert not body.get("errors"), body.get("errors")
        data: dict[str, Any] = body["data"]
        return data

    def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a query that must fail; returns its first error."""
        body = self.post(query, variables)
        assert body.get("errors"), body
        err: dict[str, Any] = body["errors"][0]
        return err


@pytest.fixture
def app_factory(settings: Settings) -> Iterator[Callable[..., GraphQLClient]]:
    """Start the app (optionally with the demo) and return a GraphQL client on it."""
    clients: list[TestClient] = []

    def make(*, demo: bool = False, **overrides: Any) -> GraphQLClient:
        admin_token = AUTH_ON and "auth" not in overrides
        if admin_token:
            overrides["auth"] = "on"
        s = settings.model_copy(update=overrides) if overrides else settings
        client = TestClient(create_app(s, demo=demo))
        client.__enter__()
        clients.append(client)
        if admin_token:
            tokens = client.app.state.services.tokens  # type: ignore[attr-defined]
            _, text = client.portal.call(  # type: ignore[union-attr]
                functools.partial(
                    tokens.create, f"test-admin-{len(clients)}", "admin", created_by="tests"
                )
            )
            client.headers["Authorization"] = f"Bearer {text}"
        return GraphQLClient(client)

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def gql(app_factory: Callable[..., GraphQLClient]) -> GraphQLClient:
    """A GraphQL client on an app over an empty catalog."""
    return app_factory()


@pytest.fixture
def demo_gql(app_factory: Callable[..., GraphQLClient]) -> GraphQLClient:
    """A GraphQL client on an app with the demo landscape loaded."""
    return app_factory(demo=True)


class StatementCounter:
    """Counts SQL statements sent by an engine."""

    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            self.count += 1
            self.statements.append(statement)


@pytest.fixture
def count_statements() -> Callable[[Any], StatementCounter]:
    """Attach a statement counter to an async engine."""

    def attach(engine: Any) -> StatementCounter:
        counter = StatementCounter()
        event.listen(engine.sync_engine, "before_cursor_execute", counter)
        return counter

    return attach
