"""What the hub does with the repository: registration, discovery, settings, app and CLI."""

from catalog.registry import ApplyReport, Registry
from catalog.services import Services
from catalog.settings import Settings

__all__ = ["ApplyReport", "Registry", "Services", "Settings"]
