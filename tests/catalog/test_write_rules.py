"""Rules of the write path: existing capabilities, self-relations (issue 16)."""

from __future__ import annotations

import pytest

from catalog.services import Services
from catalog.specs import CapabilitySpec
from metadata.errors import ConflictError


async def test_registering_an_existing_capability_says_it_exists_and_how_to_update(
    services: Services,
) -> None:
    spec = CapabilitySpec.model_validate({"key": "order.change", "name": "Change order"})
    await services.registry.register_capability(spec)
    with pytest.raises(ConflictError) as exc:
        await services.registry.register_capability(spec)
    message = exc.value.message
    assert exc.value.field == "input.key"
    assert "capability:order.change already exists" in message
    assert "upsertNode" in message and "applyCatalog" in message
    assert "expectedVersion: 1" in message  # how to update it, not a version the caller sent
    assert not message.startswith("input.expectedVersion")


async def test_a_writer_waiting_for_the_lock_leaves_the_garbage_collector_on(
    services: Services,
) -> None:
    import asyncio
    import gc

    from catalog.specs import parse_document

    assert gc.isenabled()
    doc = parse_document("nodes: [{id: system:a, name: A}]")
    async with services.store.transaction():  # holds the write lock
        waiting = asyncio.create_task(services.registry.apply_document(doc))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        # Another writer waits for the lock: the whole server must keep collecting.
        assert gc.isenabled()
    await waiting
    assert gc.isenabled()
