"""The demo landscape shipped with the package: a customer-experience stack of a retailer."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy.engine import make_url

from catalog.demo.sources import demo_sources_document, generate_demo_sources
from catalog.registry import ApplyReport, Registry
from catalog.settings import Settings
from catalog.specs import CatalogDocument, parse_document


def demo_document() -> str:
    """The demo landscape as a catalog document (YAML)."""
    return resources.files(__package__).joinpath("landscape.yaml").read_text(encoding="utf-8")


def demo_data_dir(settings: Settings) -> Path:
    """Where the demo's generated source databases live."""
    if settings.demo_data_dir:
        return Path(settings.demo_data_dir)
    url = make_url(settings.database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        db = Path(url.database)
        return db.parent / f"{db.stem}-demo-data"
    return Path("capahub-demo-data")


async def load_demo(registry: Registry, data_dir: Path | None = None) -> ApplyReport:
    """Apply the demo landscape (idempotent); with ``data_dir``, also its live demo sources."""
    doc = parse_document(demo_document())
    if data_dir is not None:
        sources = parse_document(demo_sources_document(generate_demo_sources(data_dir)))
        doc = CatalogDocument(
            nodes=doc.nodes + sources.nodes, relations=doc.relations + sources.relations
        )
    return await registry.apply_document(doc)


__all__ = ["demo_data_dir", "demo_document", "load_demo"]
