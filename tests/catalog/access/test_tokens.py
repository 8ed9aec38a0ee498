"""Hub tokens: issuing, verifying, revoking, expiry, the verify cache and last-used times."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog.access.principal import Right, Role
from catalog.access.tokens import HubTokens, looks_like_hub_token, parse_expiry
from metadata.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    UnauthenticatedError,
)
from metadata.model import Kind, Lifecycle, NodeRecord
from metadata.store import Store
from metadata.tokens import list_tokens


def _node(node_id: str) -> NodeRecord:
    now = datetime.now(UTC)
    kind = Kind(node_id.split(":", 1)[0])
    return NodeRecord(
        id=node_id,
        kind=kind,
        key=node_id.split(":", 1)[1],
        name=node_id,
        description=None,
        tags=(),
        lifecycle=Lifecycle.ACTIVE,
        owner=None,
        properties=None,
        attributes=(),
        version=1,
        created_at=now,
        updated_at=now,
    )


async def _add_nodes(store: Store, *ids: str) -> None:
    async with store.transaction() as tx:
        await tx.insert_nodes([_node(i) for i in ids])


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated catalog with two teams and a system."""
    s = await Store.open(db_url)
    try:
        await _add_nodes(s, "team:payments", "team:web", "system:crm")
        yield s
    finally:
        await s.close()


async def test_a_created_token_verifies_as_its_principal(store: Store) -> None:
    tokens = HubTokens(store)
    rec, token = await tokens.create(
        "ci.payments",
        "Editor",
        teams=["team:web", "team:payments", "team:web"],
        rights=["records", Right.PII],
        expires=timedelta(days=90),
        created_by="local:ada",
    )
    assert looks_like_hub_token(token) and HubTokens.looks_like_hub_token(token)
    assert len(token) > 40 and token.count("\n") == 0
    assert rec.role == "editor" and rec.created_by == "local:ada"
    assert rec.teams == ("team:payments", "team:web")
    assert rec.rights == ("pii", "records")
    assert rec.expires_at is not None and rec.expires_at - rec.created_at == timedelta(days=90)
    assert rec.token_hash == hashlib.sha256(token.encode()).hexdigest()
    principal = await tokens.verify(token)
    assert principal.actor == "token:ci.payments"
    assert principal.role is Role.EDITOR
    assert principal.teams == {"team:payments", "team:web"}
    assert principal.rights == {Right.RECORDS, Right.PII}
    assert not principal.unrestricted
    # Another service on the same database verifies it too; tokens are no catalog changes.
    assert (await HubTokens(store).verify(token)).actor == "token:ci.payments"
    async with store.read() as reader:
        assert len(await reader.changes_since(0)) == 3  # the three nodes of the fixture


async def test_tokens_are_random_and_listed_by_name(store: Store) -> None:
    tokens = HubTokens(store)
    _, one = await tokens.create("b", Role.VIEWER, created_by="local:ada")
    a, two = await tokens.create(
        "a", "viewer", teams="team:web", rights="records", created_by="local:ada"
    )
    assert one != two
    assert a.teams == ("team:web",) and a.rights == ("records",)
    assert [t.name for t in await tokens.list()] == ["a", "b"]


@pytest.mark.parametrize(
    ("kwargs", "error", "field", "message"),
    [
        ({"name": "CI"}, InvalidInputError, "name", "is not a token name"),
        ({"name": ""}, InvalidInputError, "name", "is not a token name"),
        ({"name": "a" * 65}, InvalidInputError, "name", "is not a token name"),
        ({"name": "-ci"}, InvalidInputError, "name", "is not a token name"),
        ({"role": "boss"}, InvalidInputError, "role", "there is no role 'boss'"),
        ({"rights": ["root"]}, InvalidInputError, "right", "there is no right 'root'"),
        ({"teams": ["payments"]}, InvalidInputError, "team", "is not a node id"),
        ({"teams": ["system:crm"]}, InvalidInputError, "team", "is not a team id"),
        ({"teams": ["team:nope"]}, NotFoundError, "team", "no team 'team:nope' in the catalog"),
        ({"expires": timedelta(0)}, InvalidInputError, "expires", "must be positive"),
        ({"expires": timedelta(days=3651)}, InvalidInputError, "expires", "at most 10 years"),
        ({"created_by": " "}, InvalidInputError, "created_by", "1-200 characters"),
    ],
)
async def test_create_refuses_bad_input(
    store: Store, kwargs: dict[str, Any], error: type[Exception], field: str, message: str
) -> None:
    args: dict[str, Any] = {"name": "ci", "role": "editor", "created_by": "local:ada"}
    args.update(kwargs)
    tokens = HubTokens(store)
    with pytest.raises(error) as info:
        await tokens.create(**args)
    assert getattr(info.value, "field", None) == field
    assert message in str(info.value)
    assert await tokens.list() == []


async def test_a_name_is_never_issued_twice(store: Store) -> None:
    tokens = HubTokens(store)
    await tokens.create("ci", "editor", created_by="local:ada")
    with pytest.raises(ConflictError, match="a token named 'ci' exists; pick another name"):
        await tokens.create("ci", "viewer", created_by="local:ada")
    await tokens.revoke("ci")
    # The revoked row stays for the audit trail, so token:ci keeps meaning one token.
    with pytest.raises(ConflictError, match="'ci' was revoked on .* never reused"):
        await tokens.create("ci", "viewer", created_by="local:ada")
    [rec] = await tokens.list()
    assert rec.role == "editor" and rec.revoked_at is not None


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
        (" 7D ", timedelta(days=7)),
        ("3650d", timedelta(days=3650)),
        ("never", None),
        ("Never", None),
    ],
)
def test_parse_expiry_reads_lifetimes(text: str, lifetime: timedelta | None) -> None:
    assert parse_expiry(text) == lifetime
    assert HubTokens.parse_expiry(text) == lifetime


@pytest.mark.parametrize(
    "text", ["", "90", "d", "1y", "-5d", "1.5d", "0d", "3651d", "522w", "9" * 9 + "w", "9" * 40]
)
def test_parse_expiry_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_expiry(text)
    assert info.value.field == "expires"


async def test_unknown_tokens_are_refused_without_being_shown(store: Store) -> None:
    tokens = HubTokens(store, cache_size=10)
    for token in ["chub_" + "x" * 43, "not-even-a-hub-token", "", "chub_\udcff\ud800"]:
        with pytest.raises(UnauthenticatedError) as info:
            await tokens.verify(token)
        assert info.value.field == "authorization"
        assert info.value.message == "the token is not a hub token this hub issued"
    # A flood of unknown tokens leaves nothing behind.
    await asyncio.gather(*(_refused(tokens, f"chub_{i}") for i in range(100)))
    assert len(tokens._cache) == 0


async def _refused(tokens: HubTokens, token: str) -> None:
    with pytest.raises(UnauthenticatedError):
        await tokens.verify(token)


async def test_a_revoke_stops_a_cached_token_at_once(
    store: Store, count_statements: Callable[[Any], Any]
) -> None:
    tokens, other = HubTokens(store, cache_ttl=60), HubTokens(store, cache_ttl=60)
    _, token = await tokens.create("ci", "editor", created_by="local:ada")
    await tokens.verify(token)
    await other.verify(token)
    counter = count_statements(store.engine)
    await tokens.verify(token)
    await other.verify(token)
    assert counter.count == 0  # served from the caches
    rec = await tokens.revoke("ci")
    assert rec.revoked_at is not None
    for service in (tokens, other):  # every service on the store, not only the revoker
        with pytest.raises(UnauthenticatedError) as info:
            await service.verify(token)
        assert info.value.message == "the hub token 'ci' was revoked"
        assert token not in info.value.message
    # Revoking again is fine and keeps the first time.
    again = await tokens.revoke("ci")
    assert again.revoked_at == rec.revoked_at
    assert [t.status(datetime.now(UTC)) for t in await tokens.list()] == ["revoked"]


async def test_revoking_an_unknown_token_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no token named 'nope'") as info:
        await HubTokens(store).revoke("nope")
    assert info.value.field == "name"


async def test_another_process_sees_a_revoke_within_the_cache_ttl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    here, there = await Store.open(url), await Store.open(url)
    try:
        issuer = HubTokens(here)
        hub = HubTokens(there, cache_ttl=0.3)
        _, token = await issuer.create("harvest", "steward", created_by="local:ada")
        assert (await hub.verify(token)).role is Role.STEWARD
        await issuer.revoke("harvest")
        with pytest.raises(UnauthenticatedError):
            await issuer.verify(token)
        await hub.verify(token)  # still cached on the other hub, for at most cache_ttl
        await asyncio.sleep(0.35)
        with pytest.raises(UnauthenticatedError, match="'harvest' was revoked"):
            await hub.verify(token)
    finally:
        await there.close()
        await here.close()


async def test_a_cached_token_is_never_served_past_its_expiry(store: Store) -> None:
    tokens = HubTokens(store, cache_ttl=60)
    _, token = await tokens.create(
        "short", "viewer", expires=timedelta(milliseconds=400), created_by="local:ada"
    )
    await tokens.verify(token)
    await asyncio.sleep(0.45)
    with pytest.raises(UnauthenticatedError) as info:
        await tokens.verify(token)  # was cached for a minute
    assert info.value.message == "the hub token 'short' has expired"
    with pytest.raises(UnauthenticatedError, match="has expired"):
        await HubTokens(store).verify(token)  # and read from the database
    [rec] = await tokens.list()
    assert rec.status(datetime.now(UTC)) == "expired"


async def test_the_database_holds_the_hash_never_the_token(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    store = await Store.open(f"sqlite:///{path}")
    try:
        rec, token = await HubTokens(store).create("ci", "admin", created_by="local:ada")
        await HubTokens(store).verify(token)
    finally:
        await store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("catalog"))
    assert rec.token_hash.encode() in stored
    assert token.encode() not in stored
    assert token.removeprefix("chub_").encode() not in stored


async def test_last_used_times_are_written_once_per_flush(
    store: Store, count_statements: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = HubTokens(store, cache_ttl=60)
    _, ci = await tokens.create("ci", "editor", created_by="local:ada")
    _, web = await tokens.create("web", "viewer", created_by="local:ada")
    await tokens.create("idle", "viewer", created_by="local:ada")
    before = datetime.now(UTC)
    for _ in range(20):
        await tokens.verify(ci)
        await tokens.verify(web)
    counter = count_statements(store.engine)
    assert await tokens.flush_last_used() == 2
    assert sum(s.lstrip().upper().startswith("UPDATE") for s in counter.statements) == 1
    used = await _last_used(store)
    assert used["idle"] is None
    assert used["ci"] is not None and used["ci"] >= before
    assert used["web"] is not None and used["web"] >= before
    # Nothing new: no statement at all. Used again within the minute: not written yet.
    counter.count = 0
    assert await tokens.flush_last_used() == 0
    await tokens.verify(ci)
    assert await tokens.flush_last_used() == 0
    assert counter.count == 0
    # A minute on (as if), the use that was held back is written.
    monkeypatch.setattr("catalog.access.tokens.LAST_USED_RESOLUTION", timedelta(0))
    assert await tokens.flush_last_used() == 1
    later = await _last_used(store)
    assert later["ci"] is not None and used["ci"] < later["ci"]
    assert later["web"] == used["web"]


async def _last_used(store: Store) -> dict[str, datetime | None]:
    async with store.read() as reader:
        return {t.name: t.last_used_at for t in await list_tokens(reader.conn)}
