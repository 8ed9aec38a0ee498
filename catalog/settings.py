"""Settings of the hub, read once at start from env (``CAPAHUB_*``), ``.env`` and defaults."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The cost budget of a hub that other machines can reach (``Settings.cost_per_minute``).
DEFAULT_COST_PER_MINUTE = 100_000


def is_loopback(host: str) -> bool:
    """Whether a listen address is loopback only (a host name other than localhost: no)."""
    if host.strip("[]").lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


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
            "catalog file, else ./capahub-demo-data); `{demo_data_dir}` in a source location "
            "stands for it (exports write the demo's locations so)."
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
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How `capahub serve` logs: `text` (uvicorn's lines) or `json` (one JSON "
        "object per line on standard output: time, level, logger, message, an exception's "
        "traceback as `exception`; access lines add the request's fields; catalog/logs.py).",
    )
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
    auth: Literal["off", "on"] = Field(
        default="off",
        description="Access control: `on` makes every GraphQL request prove who it is with "
        "`Authorization: Bearer TOKEN` (a hub token or an OpenID Connect JWT) and obey the "
        "permission table of docs/security.md; `off` lets every caller do everything, and "
        "`capahub serve` then listens only on loopback unless given --insecure-no-auth.",
    )
    auth_jwks_url: str = Field(
        default="",
        description="Where the identity provider's JSON Web Key Set is: an http(s) URL or a "
        "file path (empty: JWTs are not accepted, only hub tokens).",
    )
    auth_issuer: str = Field(
        default="", description="The `iss` every JWT must carry (empty: not checked)."
    )
    auth_audience: str = Field(
        default="",
        description="The `aud` every JWT must name (comma-separated for several accepted "
        "audiences; empty: a JWT that names an audience is refused).",
    )
    auth_algorithms: str = Field(
        default="RS256,ES256",
        description="Comma-separated signature algorithms a JWT may use (asymmetric only: "
        "RS*, PS*, ES*, EdDSA; `none` and HS* are never accepted).",
    )
    auth_leeway: float = Field(
        default=30.0, ge=0, le=300, description="Seconds of clock skew allowed on exp and nbf."
    )
    auth_user_claim: str = Field(
        default="sub", description="The JWT claim that names the user (actor `user:VALUE`)."
    )
    auth_roles_claim: str = Field(
        default="roles",
        description="The JWT claim listing the user's roles (viewer, editor, steward, admin; "
        "the highest one counts).",
    )
    auth_teams_claim: str = Field(
        default="groups",
        description="The JWT claim listing the user's teams, as team ids (`team:web`).",
    )
    auth_anonymous_role: str = Field(
        default="",
        description="Role of a GraphQL request without a token when auth is on (empty: such "
        "a request is refused with UNAUTHENTICATED).",
    )
    auth_jwks_refresh: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a fetched JWKS is trusted before it is fetched again (an unknown "
        "`kid` fetches it at once, at most every 10 s).",
    )

    # ----- Limits (issue 12: no request may stall the hub) -----
    max_query_cost: int = Field(
        default=50_000,
        ge=1,
        description="Largest static cost of an operation (docs/limits.md: each object of the "
        "answer counts 1, lists multiply by their `first` or a default size, graph questions add "
        "a price that grows with their depth, aliases add up); costlier operations are refused "
        "before anything runs, with the cost and the limit in the error.",
    )
    cost_per_minute: int | None = Field(
        default=None,
        ge=0,
        description="Query-cost points each caller (its token or user; without one, its "
        "address) may spend a minute, as a token bucket holding a minute's points and refilled "
        "continuously; a request is charged its static cost (at least 1, and 1 per 1,000 body "
        "bytes) before it runs, and one the bucket cannot pay is refused with RATE_LIMITED "
        "(HTTP 429) and retryAfter seconds (docs/limits.md). Unset: 100,000 when other "
        "machines can reach the hub (CAPAHUB_AUTH=on, or a listen address that is not "
        "loopback), none when it serves this machine alone (auth off on loopback: every "
        "caller is a local process). 0: no budget.",
    )

    @property
    def exposed(self) -> bool:
        """Whether other machines may reach the hub: access control on (it is meant to be
        reached), or a listen address that is not loopback."""
        return self.auth == "on" or not is_loopback(self.host)

    @property
    def effective_cost_per_minute(self) -> int:
        """``cost_per_minute``, or its default for this hub when unset (0: no budget)."""
        if self.cost_per_minute is not None:
            return self.cost_per_minute
        return DEFAULT_COST_PER_MINUTE if self.exposed else 0

    max_response_bytes: int = Field(
        default=20_000_000,
        ge=1_000,
        description="Largest response body, in bytes; a bigger answer is replaced by a "
        "BAD_USER_INPUT error stating its size and the limit (docs/limits.md).",
    )
    request_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a GraphQL request may take to send its body and run its query "
        "before its work is cancelled and it is answered 503 UNAVAILABLE; mutations are not cut "
        "(their waits are bounded on their own).",
    )
    max_body_bytes: int = Field(
        default=2_000_000,
        ge=1_000,
        description="Largest request body, in bytes, enforced while reading (HTTP 413 past it); "
        "the default admits any GraphQL document and a catalog document of about 2,000 nodes "
        "(larger ones: `capahub apply`, or raise it).",
    )
    max_document_items: int = Field(
        default=1_000_000,
        ge=1,
        description="Most items (every mapping, list and value: nodes, relations and their "
        "fields) a catalog document may expand to, a YAML alias counted each time it is used; "
        "a bigger document is refused before anything is built from it.",
    )
    allowed_hosts: str = Field(
        default="localhost,127.0.0.1,::1",
        description="Comma-separated host names the hub answers (the Host header; `*.example.com` "
        "for subdomains); the listen host and the IP address a connection came to are answered "
        "too, others get 400. `*` answers any (behind a proxy that checks it).",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins (or `*`) allowed to call the API from a browser "
        "(CORS: GET and POST with Authorization, Content-Type and X-Request-Id); empty: no CORS "
        "permission is sent.",
    )
    write_wait: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a write waits for a busy database (another writer) before it is "
        "answered UNAVAILABLE with a retry hint.",
    )
    graph_workers: int = Field(
        default=2,
        ge=1,
        description="Threads that answer graph questions off the event loop (the questions of "
        "one request take turns on one); while all are busy, 4 questions per thread may wait "
        "and further ones are refused with UNAVAILABLE.",
    )
    query_cache_mb: float = Field(
        default=32.0,
        ge=0,
        description="Memory for parsed, validated and prepared query documents, the fast "
        "path's plans and compiled costs together, in MB (bounded by their estimated size, not "
        "by count).",
    )
    metrics: bool = Field(
        default=True,
        description="Serve Prometheus metrics at /metrics (with auth on, to a caller with a "
        "valid token, any role).",
    )
    ready_max_lag: int = Field(
        default=0,
        ge=0,
        description="Committed changes a replica may not have applied yet and still answer "
        "ready at /readyz.",
    )
    version_wait: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="Seconds a request carrying `X-Capahub-Catalog-Version` waits for this "
        "replica to reach that catalog version before it is answered UNAVAILABLE.",
    )
    asof_cache_size: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Past catalogs (graphs and whole states) kept in memory for `asOf` "
        "questions, keyed by the change id an instant resolves to (least recently used "
        "dropped).",
    )
    snapshot_every: int = Field(
        default=10_000,
        ge=0,
        description="Write a snapshot of the whole catalog (history_snapshots) once the change "
        "log has grown by this many changes, and by at least as many as the catalog has nodes, "
        "since the last one; past states are rebuilt from the nearest. 0: never.",
    )

    # ----- Replica start (docs/architecture.md, "Replica start") -----
    projection_snapshot_dir: str = Field(
        default="",
        description="Directory of the projections' snapshot files (the graph's and the "
        "search projection's), which let `serve` start without reading every row or "
        "rebuilding the search ranking: empty: a directory beside a SQLite catalog file "
        "(`<name>-projections`), none for other databases; `off`: never.",
    )
    projection_snapshot_interval: float = Field(
        default=600.0,
        ge=0,
        description="Seconds between snapshots of the projections (graph and search) while "
        "serving, "
        "written only when the catalog changed since the last one (and once more at "
        "shutdown); 0: only at start (when none was usable) and at shutdown.",
    )

    # ----- Subscriptions (docs/subscriptions.md) -----
    subscriptions_max: int = Field(
        default=1_000,
        ge=1,
        description="Subscriptions one hub process serves at most; past it `catalogChanged` "
        "is refused with UNAVAILABLE.",
    )
    subscriptions_per_connection: int = Field(
        default=20,
        ge=1,
        description="Subscriptions one WebSocket connection may run at a time.",
    )
    subscription_queue: int = Field(
        default=1_000,
        ge=1,
        description="Changes waiting for one subscriber at most; past it the subscriber reads "
        "the change log at its own pace instead (nothing is lost).",
    )
    subscription_max_message_bytes: int = Field(
        default=1_000_000,
        ge=1_000,
        description="Largest WebSocket message a client may send (larger: closed with 1009), "
        "and largest before/after a change event carries (larger: `truncated`).",
    )
    subscription_init_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a WebSocket client has to send `connection_init` (else closed "
        "with 4408).",
    )
    subscription_ping_interval: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between the server's pings on a subscription connection; a "
        "client whose pong does not come within the next interval is closed with 4408.",
    )
    subscription_send_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a subscription client may take no message before it is closed "
        "with 4499 (it resumes with `after`).",
    )
    subscription_poll_interval: float = Field(
        default=0.05,
        gt=0,
        description="Seconds between looks at the change log for other processes' changes "
        "while someone subscribes and the database sends no notifications (SQLite, or "
        "PostgreSQL while its LISTEN connection is down).",
    )

    # ----- Webhooks (issue 14: docs/webhooks.md) -----
    webhook_timeout: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Seconds one webhook delivery attempt may take (connect, send, answer) "
        "before it counts as failed and is retried.",
    )
    webhook_concurrency: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Webhook deliveries one serve process sends at a time (each webhook sends "
        "one at a time, in change order).",
    )
    webhook_retry_base: float = Field(
        default=5.0,
        gt=0,
        description="Seconds before a failed webhook delivery's first retry; each further "
        "retry waits twice as long (with jitter), up to webhook_retry_max_delay.",
    )
    webhook_retry_max_delay: float = Field(
        default=3600.0,
        gt=0,
        description="Longest wait, in seconds, between two attempts of a webhook delivery.",
    )
    webhook_retry_window: float = Field(
        default=86400.0,
        gt=0,
        description="Seconds a webhook delivery is retried after its first attempt (default "
        "24 h); the first attempt that fails after that marks it failed and the webhook goes on "
        "with its next event.",
    )
    webhook_poll_interval: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="Seconds between the delivery worker's looks at the change log and the "
        "queue (changes this process commits wake it at once).",
    )
    webhook_max_count: int = Field(
        default=100, ge=1, le=10_000, description="Most webhooks the hub keeps registered."
    )
    webhook_max_queue: int = Field(
        default=10_000,
        ge=1,
        description="Most undelivered events queued per webhook; further changes wait in the "
        "change log (nothing is dropped) and are queued as the backlog drains.",
    )
    webhook_max_body_bytes: int = Field(
        default=256_000,
        ge=4_096,
        description="Largest webhook body, in bytes; an event whose before/after images are "
        "larger is sent without them (`data.truncated: true`; read the node through the API).",
    )
    webhook_log_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Days delivered and failed webhook deliveries stay in the delivery log.",
    )
    webhook_secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Passphrase that encrypts webhook secrets in the database (empty: stored "
        "as given; the database is then as sensitive as the secrets).",
    )


__all__ = ["DEFAULT_COST_PER_MINUTE", "Settings", "is_loopback"]
