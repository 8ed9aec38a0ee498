"""Live data connectors (SQL, REST, GraphQL) and the unification of records across sources."""

from catalog.sources.base import Query, SourceConnector, SourceRef, Target
from catalog.sources.records import RecordService

__all__ = ["Query", "RecordService", "SourceConnector", "SourceRef", "Target"]
