"""The demo landscape shipped with the package: a customer-experience stack of a retailer."""

from __future__ import annotations

from importlib import resources

from catalog.registry import ApplyReport, Registry
from catalog.specs import parse_document


def demo_document() -> str:
    """The demo landscape as a catalog document (YAML)."""
    return resources.files(__package__).joinpath("landscape.yaml").read_text(encoding="utf-8")


async def load_demo(registry: Registry) -> ApplyReport:
    """Apply the demo landscape (idempotent: a second load changes nothing)."""
    return await registry.apply_document(parse_document(demo_document()))


__all__ = ["demo_document", "load_demo"]
