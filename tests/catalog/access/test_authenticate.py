"""The Authenticator: headers remembered for one interval, never past a revocation or expiry,
and one verification at a time per header."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog.access.authenticate import Authenticator
from catalog.access.tokens import HubTokens
from catalog.settings import Settings
from metadata.errors import UnauthenticatedError
from metadata.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        yield s
    finally:
        await s.close()


def _auth(store: Store, **settings: Any) -> tuple[Authenticator, HubTokens]:
    cfg = Settings(auth="on", _env_file=None, **settings)  # type: ignore[call-arg]
    tokens = HubTokens(store, cache_ttl=cfg.sync_interval)
    return Authenticator(cfg, tokens), tokens


class Counting(HubTokens):
    """Counts the verifications that reach the token service."""

    calls = 0

    async def verify(self, token: str) -> Any:
        type(self).calls += 1
        await asyncio.sleep(0.01)  # a database round trip under load
        return await super().verify(token)


async def test_a_revocation_here_takes_effect_at_once(store: Store) -> None:
    auth, tokens = _auth(store, sync_interval=60.0)
    _, text = await tokens.create("ci", "viewer", created_by="t")
    header = f"Bearer {text}"
    assert (await auth.authenticate(header)).actor == "token:ci"
    assert (await auth.authenticate(header)).actor == "token:ci"  # remembered
    await tokens.revoke("ci")
    with pytest.raises(UnauthenticatedError, match="revoked"):
        await auth.authenticate(header)


async def test_a_revocation_by_another_process_takes_effect_within_the_interval(
    store: Store, tmp_path: Path
) -> None:
    auth, tokens = _auth(store, sync_interval=0.2)
    _, text = await tokens.create("ci", "viewer", created_by="t")
    header = f"Bearer {text}"
    await auth.authenticate(header)
    other = await Store.open(f"sqlite:///{tmp_path / 'c.db'}")  # as the CLI would
    try:
        await HubTokens(other).revoke("ci")
    finally:
        await other.close()
    await auth.authenticate(header)  # still remembered: at most one interval
    await asyncio.sleep(0.25)
    with pytest.raises(UnauthenticatedError, match="revoked"):
        await auth.authenticate(header)


async def test_a_remembered_header_is_never_used_past_its_expiry(store: Store) -> None:
    auth, tokens = _auth(store, sync_interval=60.0)
    _, text = await tokens.create("short", "viewer", expires=timedelta(seconds=1), created_by="t")
    header = f"Bearer {text}"
    principal = await auth.authenticate(header)
    assert principal.expires is not None
    await asyncio.sleep(max(0.0, principal.expires - time.time()) + 0.05)
    with pytest.raises(UnauthenticatedError, match="expired"):
        await auth.authenticate(header)


async def test_concurrent_first_requests_share_one_verification(store: Store) -> None:
    cfg = Settings(auth="on", _env_file=None)  # type: ignore[call-arg]
    tokens = Counting(store, cache_ttl=60.0)
    auth = Authenticator(cfg, tokens)
    _, text = await tokens.create("ci", "viewer", created_by="t")
    Counting.calls = 0
    got = await asyncio.gather(*(auth.authenticate(f"Bearer {text}") for _ in range(50)))
    assert {p.actor for p in got} == {"token:ci"}
    assert Counting.calls == 1
    # A bad token is refused for every waiter, and not remembered.
    results = await asyncio.gather(
        *(auth.authenticate("Bearer chub_" + "x" * 43) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, UnauthenticatedError) for r in results)
    assert Counting.calls == 2
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate("Bearer chub_" + "x" * 43)
    assert Counting.calls == 3


async def test_a_cancelled_verification_lets_the_waiters_verify(store: Store) -> None:
    cfg = Settings(auth="on", _env_file=None)  # type: ignore[call-arg]
    tokens = Counting(store, cache_ttl=60.0)
    auth = Authenticator(cfg, tokens)
    _, text = await tokens.create("ci", "viewer", created_by="t")
    first = asyncio.create_task(auth.authenticate(f"Bearer {text}"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(auth.authenticate(f"Bearer {text}"))
    await asyncio.sleep(0)
    first.cancel()
    assert (await waiter).actor == "token:ci"
    with pytest.raises(asyncio.CancelledError):
        await first
