"""Access administration: hub tokens and the audit log (admin only, docs/security.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from catalog.discovery import change_cursor
from metadata.tokens import TokenRecord
from resolvers._fields import field, mutation
from resolvers.context import CatalogInfo
from resolvers.history import ChangeConnection, ChangeEdge, ChangeRecord
from resolvers.paging import PageInfo


@strawberry.type(description="A hub-issued API token (its text is shown once, at creation).")
class ApiToken:
    name: str
    role: str
    teams: list[strawberry.ID]
    rights: list[str]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="When a request last used it (written at most once a minute)."
    )
    status: str = strawberry.field(description="`active`, `expired` or `revoked`.")

    @classmethod
    def from_model(cls, rec: TokenRecord) -> ApiToken:
        """Map a stored token."""
        return cls(
            name=rec.name,
            role=rec.role,
            teams=[strawberry.ID(t) for t in rec.teams],
            rights=list(rec.rights),
            created_at=rec.created_at,
            created_by=rec.created_by,
            expires_at=rec.expires_at,
            revoked_at=rec.revoked_at,
            last_used_at=rec.last_used_at,
            status=rec.status(datetime.now(UTC)),
        )


@strawberry.type(description="A new token: `token` is its text, shown this once only.")
class CreatedApiToken:
    token: str
    api_token: ApiToken


@strawberry.input(description="A hub token to issue.")
class ApiTokenInput:
    name: str
    role: str = strawberry.field(description="viewer, editor, steward or admin.")
    teams: list[strawberry.ID] | None = None
    rights: list[str] | None = strawberry.field(
        default=None, description="`records` (live data), `pii` (personal data in it)."
    )
    expires: str | None = strawberry.field(
        default="90d", description="Lifetime: `90d`, `12h`, `30m`, `2w`, or `never`."
    )


@strawberry.type
class AccessQuery:
    """Who may do what, and who did what."""

    @field(description="Every hub token, revoked and expired ones too, by name.")
    async def api_tokens(self, info: CatalogInfo) -> list[ApiToken]:
        return [ApiToken.from_model(r) for r in await info.context.services.tokens.list()]

    @field(description="Recorded changes, newest first, by actor and time.")
    async def audit_log(
        self,
        info: CatalogInfo,
        actor: str | None = None,
        since: datetime | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> ChangeConnection:
        changes, more = await info.context.services.discovery.audit(
            actor=actor, since=since, first=50 if first is None else first, after=after
        )
        edges = [
            ChangeEdge(cursor=change_cursor(c), node=ChangeRecord.from_model(c)) for c in changes
        ]
        return ChangeConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=more,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class AccessMutation:
    """Issue and revoke hub tokens."""

    @mutation(description="Issue a hub token; its text is in the answer, once.")
    async def create_api_token(self, info: CatalogInfo, input: ApiTokenInput) -> CreatedApiToken:
        tokens = info.context.services.tokens
        expires = tokens.parse_expiry(input.expires or "never")
        rec, text = await tokens.create(
            input.name,
            input.role,
            teams=[str(t) for t in input.teams or ()],
            rights=input.rights or (),
            expires=expires,
            created_by=info.context.principal.actor,
        )
        return CreatedApiToken(token=text, api_token=ApiToken.from_model(rec))

    @mutation(
        description="Revoke a hub token; it stops working at once here, and "
        "within the sync interval on every replica."
    )
    async def revoke_api_token(self, info: CatalogInfo, name: str) -> ApiToken:
        return ApiToken.from_model(await info.context.services.tokens.revoke(name))


__all__ = ["AccessMutation", "AccessQuery", "ApiToken"]
