"""REST and GraphQL connectors over httpx: timeouts, a bounded pool, garbage reported as such."""

from __future__ import annotations

import re
from typing import Any

import httpx

from catalog.harvest.fetch import FetchPolicy, guarded_transport
from catalog.sources.base import Query, SourceRef, Target, check_credentials_env
from metadata.errors import BadSourceDataError, CatalogError, SourceUnavailableError

MAX_PAGES = 20
_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


class _HttpConnector:
    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_connections: int = 10,
        policy: FetchPolicy | None = None,
    ) -> None:
        self.timeout = timeout
        self.trusted = policy is None
        # With a policy (the server), every connection is checked like a harvest's: no
        # loopback, private or link-local address unless its host is explicitly allowed.
        transport = (
            guarded_transport(policy.allowed_hosts)
            if policy is not None
            else httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=max_connections))
        )
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=transport, follow_redirects=False, trust_env=False
        )

    def _headers(self, source: SourceRef) -> dict[str, str]:
        token = check_credentials_env(source, trusted=self.trusted)
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _send(self, source: SourceRef, request: httpx.Request) -> Any:
        try:
            resp = await self._client.send(request)
        except httpx.TimeoutException:
            raise SourceUnavailableError(
                f"{source.id}: no answer within {self.timeout:g} s", source=source.id
            ) from None
        except CatalogError:
            raise  # refused by the connection guard
        except httpx.HTTPError as err:
            raise SourceUnavailableError(
                f"{source.id}: cannot reach {request.url.host} ({type(err).__name__})",
                source=source.id,
            ) from None
        if resp.status_code >= 500:
            raise SourceUnavailableError(
                f"{source.id}: answered HTTP {resp.status_code}", source=source.id
            )
        if resp.status_code >= 400:
            raise BadSourceDataError(
                f"{source.id}: refused the request with HTTP {resp.status_code}", source=source.id
            )
        try:
            return resp.json()
        except ValueError:
            raise BadSourceDataError(
                f"{source.id}: answered something that is not JSON", source=source.id
            ) from None

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _rows(source: SourceRef, body: Any, key: str | None) -> list[dict[str, Any]]:
    items = body
    if isinstance(body, dict):
        for candidate in ([key] if key else []) + ["items", "data", "results", "records"]:
            if candidate and isinstance(body.get(candidate), list):
                items = body[candidate]
                break
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BadSourceDataError(
            f"{source.id}: expected a list of objects, got {type(items).__name__}",
            source=source.id,
        )
    return items


def _matches(row: dict[str, Any], query: Query) -> bool:
    if any(row.get(k) != v for k, v in query.equals.items()):
        return False
    return query.key_column is None or row.get(query.key_column) in set(query.keys)


class RestConnector(_HttpConnector):
    """GET a collection (``target.container`` is the path), following ``next`` links."""

    async def fetch(self, target: Target, query: Query) -> list[dict[str, Any]]:
        """Rows of the collection filtered by the query (filters also sent as parameters)."""
        source = target.source
        base = (source.base_url or source.location).rstrip("/")
        url: str | None = base + "/" + target.container.lstrip("/")
        params: dict[str, Any] = {k: v for k, v in query.equals.items() if v is not None}
        if query.key_column is not None:
            params[query.key_column] = ",".join(str(k) for k in query.keys)
        out: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None or len(out) >= query.limit:
                break
            request = self._client.build_request(
                "GET", url, params=params, headers=self._headers(source)
            )
            body = await self._send(source, request)
            out.extend(
                r for r in _rows(source, body, target.options.get("itemsKey")) if _matches(r, query)
            )
            nxt = body.get("next") if isinstance(body, dict) else None
            url, params = (nxt, {}) if isinstance(nxt, str) else (None, {})
        return [{c: r.get(c) for c in target.columns} for r in out[: query.limit]]


class GraphQLConnector(_HttpConnector):
    """POST a query generated from the entity's attributes: ``{ <field> { <columns> } }``."""

    async def fetch(self, target: Target, query: Query) -> list[dict[str, Any]]:
        """Rows of the root field, filtered by the query on the hub's side."""
        source = target.source
        for name in (target.container, *target.columns):
            if not _GRAPHQL_NAME.fullmatch(name):
                raise BadSourceDataError(
                    f"{source.id}: {name!r} is not a GraphQL field name", source=source.id
                )
        document = f"query {{ {target.container} {{ {' '.join(target.columns)} }} }}"
        request = self._client.build_request(
            "POST", source.location, json={"query": document}, headers=self._headers(source)
        )
        body = await self._send(source, request)
        if not isinstance(body, dict):
            raise BadSourceDataError(f"{source.id}: not a GraphQL response", source=source.id)
        if body.get("errors") and not body.get("data"):
            message = str(body["errors"][0].get("message", "error"))[:200]
            raise BadSourceDataError(f"{source.id}: {message}", source=source.id)
        data = body.get("data") or {}
        rows = _rows(source, data.get(target.container), None)
        return [{c: r.get(c) for c in target.columns} for r in rows if _matches(r, query)][
            : query.limit
        ]


__all__ = ["GraphQLConnector", "RestConnector"]
