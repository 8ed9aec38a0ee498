"""Settings of the hub, read once at start from env (``CAPAHUB_*``), ``.env`` and defaults."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the hub can be configured with; each field is documented in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="CAPAHUB_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./capahub.db",
        description="SQLAlchemy URL of the catalog database (SQLite file or PostgreSQL).",
    )
    host: str = Field(default="127.0.0.1", description="Interface `capahub serve` listens on.")
    port: int = Field(default=8000, description="TCP port `capahub serve` listens on.")
    workers: int = Field(
        default=1,
        ge=1,
        description="Processes `capahub serve` runs; each keeps its own projections and "
        "follows the change log, as replicas do.",
    )
    max_query_depth: int = Field(
        default=12, description="Deepest GraphQL selection accepted (deeper ones are refused)."
    )
    max_page_size: int = Field(
        default=500, description="Largest `first` a connection or list query accepts."
    )
    sync_interval: float = Field(
        default=1.0,
        description=(
            "Seconds between checks for changes other processes wrote to the database "
            "(keeps in-memory projections in step)."
        ),
    )
    read_sync_interval: float = Field(
        default=0.1,
        description=(
            "Seconds a request may trust the in-memory projections without checking the change "
            "log for other processes' writes first."
        ),
    )
    graph_time_budget: float = Field(
        default=5.0,
        description="Seconds a graph question (impact, path, gaps...) may run before refusal.",
    )
    source_timeout: float = Field(
        default=5.0,
        description="Seconds a source system may take to answer a live-records query.",
    )
    demo_data_dir: str = Field(
        default="",
        description=(
            "Where `--demo` writes its generated source databases (default: beside a SQLite "
            "catalog file, else ./capahub-demo-data)."
        ),
    )
    graphql_ide: bool = Field(
        default=True, description="Serve the GraphiQL playground on a browser GET of /graphql."
    )
    search_cache_mb: float = Field(
        default=32.0,
        ge=0,
        description="Memory for the search index's answers to recent queries, in MB (0: off). "
        "Any write to the index, from any process, makes the next search ask the index again.",
    )
    log_level: str = Field(default="info", description="Log level of the server.")
    access_log: bool = Field(
        default=True,
        description="Log one line per HTTP request, in uvicorn's access-log format, to "
        "standard output; lines are written in batches, at most 0.5 s late "
        "(catalog/access_log.py).",
    )
    harvest_allowed_hosts: str = Field(
        default="",
        description=(
            "Comma-separated hosts a harvest through the API may reach even though they resolve "
            "to loopback, private or link-local addresses."
        ),
    )
    harvest_file_roots: str = Field(
        default="",
        description=(
            "Comma-separated directories a harvest through the API may read files from "
            "(default: none)."
        ),
    )


__all__ = ["Settings"]
