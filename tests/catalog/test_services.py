"""Services: catching up with what other processes wrote, cheaply when nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catalog.services import Services
from catalog.settings import Settings
from catalog.specs import parse_document
from tests.conftest import StatementCounter


async def test_catch_up_sees_another_writer_and_costs_no_sql_when_nothing_changed(
    settings: Settings, count_statements: Callable[[Any], StatementCounter]
) -> None:
    settings = settings.model_copy(update={"read_sync_interval": 0.0})
    services = await Services.start(settings)
    other = await Services.start(settings, projections=False)  # another process, in effect
    try:
        await services.catch_up()
        counter = count_statements(services.store.engine)
        await services.catch_up()
        # SQLite files answer "anything new?" synchronously; PostgreSQL asks the change log.
        assert counter.count == (0 if services.store.dialect == "sqlite" else 1)
        await other.registry.apply_document(parse_document("nodes: [{id: system:x, name: X}]"))
        assert not services.graph.has("system:x")
        await services.catch_up()
        assert services.graph.has("system:x")
        assert services.graph.last_change == services.store.last_change_id_now() or (
            services.store.dialect != "sqlite"
        )
    finally:
        await other.close()
        await services.close()
