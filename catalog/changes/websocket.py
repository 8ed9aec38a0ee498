"""Subscriptions' WebSocket edge: strawberry's ``graphql-transport-ws`` handler with the hub's
authentication and bounds.

- Who calls is established at ``connection_init``: the payload's ``Authorization`` (what a
  browser client can send), else the upgrade request's header, through the same
  ``Authenticator`` as HTTP. A credential that fails is closed with 4401, a caller the
  permission table refuses with 4403, each with the reason. The credential is checked again
  while the connection lives (every ``recheck`` seconds): a revoked or expired token closes
  it with 4401.
- Only subscriptions run over the socket (queries and mutations go to HTTP, where the request
  limits apply); at most ``max_per_connection`` at a time, refused with a coded error past it.
- The server pings every ``ping_interval`` seconds and closes (4408) a client whose pong does
  not come within the next interval; a client that takes no message for ``send_timeout``
  seconds is closed (4499) with how to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from graphql import GraphQLError, OperationDefinitionNode, parse
from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
    Message,
    PongMessage,
    SubscribeMessage,
)
from strawberry.utils.aio import aclosing

from catalog.access.permissions import check
from catalog.access.principal import Principal
from metadata.errors import CatalogError, NotAllowedError, UnauthenticatedError

log = logging.getLogger("capahub.changes")

#: The permission a connection needs at all (the field checks it again per subscription).
COORDINATE = "Subscription.catalogChanged"
#: Who a connection is before ``connection_init``: nobody, refused by every rule.
NOBODY = Principal(actor="anonymous", role=None)
#: Close codes (graphql-ws's where it has one).
UNAUTHORIZED, FORBIDDEN, TIMED_OUT, FELL_BEHIND, TOO_BIG = 4401, 4403, 4408, 4499, 1009


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """Bounds of one subscription connection (docs/subscriptions.md)."""

    max_per_connection: int = 20
    init_timeout: float = 10.0
    ping_interval: float = 15.0
    send_timeout: float = 30.0
    max_message_bytes: int = 1_000_000
    #: Seconds between checks that the connection's credential is still valid.
    recheck: float = 1.0


def close_reason(text: str) -> str:
    """A close frame's reason: at most 123 bytes of UTF-8 (RFC 6455, 5.5)."""
    data = text.encode("utf-8")
    if len(data) <= 123:
        return text
    return data[:120].decode("utf-8", "ignore") + "..."


class CatalogTransportWS(BaseGraphQLTransportWSHandler[Any, Any]):
    """``graphql-transport-ws`` for the hub: authentication, subscriptions only, bounds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["max_subscriptions_per_connection"] = None  # counted here, with a coded error
        super().__init__(*args, **kwargs)
        self.limits: SocketLimits = getattr(self.view, "socket_limits", SocketLimits())
        self.authorization: str | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._pong_due: float | None = None
        self._closing = False

    # -- lifetime -----------------------------------------------------------------------------

    def on_request_accepted(self) -> None:
        """Start the init timeout, and the pings and credential checks."""
        super().on_request_accepted()
        self._keeper = asyncio.create_task(self._keep())

    async def shutdown(self) -> None:
        """Stop the pings and every operation."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await super().shutdown()

    async def close(self, code: int, reason: str) -> None:
        """Close the connection once, with a reason that fits a close frame."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.websocket.close(code=code, reason=close_reason(reason))

    async def _keep(self) -> None:
        limits = self.limits
        tick = max(0.05, min(limits.ping_interval, limits.recheck))
        next_ping = time.monotonic() + limits.ping_interval
        while not self._closing:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self.connection_acknowledged and not await self._still_allowed():
                return
            if self._pong_due is not None and now > self._pong_due:
                await self.close(
                    TIMED_OUT, f"no pong within {limits.ping_interval:g} s of the server's ping"
                )
                return
            if now >= next_ping:
                next_ping = now + limits.ping_interval
                if self.connection_acknowledged and self._pong_due is None:
                    self._pong_due = now + limits.ping_interval
                    await self.send_message({"type": "ping"})

    async def _still_allowed(self) -> bool:
        principal = cast("Principal", self.context.principal)
        try:
            if principal.expires is not None and time.time() >= principal.expires:
                raise UnauthenticatedError("authorization: the token expired")
            current = await self.context.services.auth.authenticate(self.authorization)
            check(current, COORDINATE)
        except UnauthenticatedError as error:
            await self.close(UNAUTHORIZED, f"{error.message}; connect again with a valid token")
            return False
        except NotAllowedError as error:
            await self.close(FORBIDDEN, error.message)
            return False
        return True

    # -- messages -----------------------------------------------------------------------------

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Authenticate (payload ``Authorization``, else the upgrade header), then ack."""
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload", {})
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            await self.close(4400, "Invalid connection init payload: send a JSON object")
            return
        if self.connection_init_received:
            await self.close(4429, "Too many initialisation requests")
            return
        self.connection_init_received = True
        given = [
            v for k, v in payload.items() if isinstance(k, str) and k.lower() == "authorization"
        ]
        if given and not isinstance(given[0], str):
            await self.close(4400, "connection_init: payload.Authorization must be a string")
            return
        request = self.context.request
        header: str | None = request.headers.get("authorization")
        self.authorization = str(given[0]) if given else header
        try:
            principal = await self.context.services.auth.authenticate(self.authorization)
            check(principal, COORDINATE)
        except UnauthenticatedError as error:
            await self.close(UNAUTHORIZED, error.message)
            return
        except NotAllowedError as error:
            await self.close(FORBIDDEN, error.message)
            return
        self.context.principal = principal
        self.context.connection_params = payload
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True

    async def handle_pong(self, message: PongMessage) -> None:
        """The client answered the last ping."""
        self._pong_due = None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Start an operation, unless the connection has ``max_per_connection`` already."""
        limit = self.limits.max_per_connection
        if self.connection_acknowledged and len(self.operations) >= limit:
            error = GraphQLError(
                f"catalogChanged: this connection has {limit} subscriptions, its limit "
                "(CAPAHUB_SUBSCRIPTIONS_PER_CONNECTION); complete one or open another connection",
                extensions={"code": "BAD_USER_INPUT", "field": "subscribe"},
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        """Run one subscription (strawberry 0.341's ``run_operation`` with subscriptions
        only: a query or mutation sent here is refused with a coded error)."""
        if operation_type(operation.query, operation.operation_name) in ("query", "mutation"):
            error = GraphQLError(
                "Only subscriptions run over the WebSocket: send queries and mutations to "
                "/graphql over HTTP (POST)",
                extensions={"code": "BAD_USER_INPUT", "field": "query"},
            )
            await operation.send_initial_errors([error])
            return
        try:
            result_source = await self.schema.subscribe(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            await operation.send_operation_message(
                CompleteMessage(id=operation.id, type="complete")
            )
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)

    async def _handle_pre_execution_error(
        self, operation: Operation[Any, Any], result: Any
    ) -> None:
        # Coded like every other error (strawberry sends pre-execution errors as they are).
        for error in result.errors or []:
            _code(error)
        await super()._handle_pre_execution_error(operation, result)

    async def send_message(self, message: Message) -> None:
        """Send one message; a client that takes none for ``send_timeout`` s is closed."""
        if self._closing:
            return
        try:
            async with asyncio.timeout(self.limits.send_timeout):
                # Text frames, as the protocol requires (the view's JSON encoder gives bytes,
                # which strawberry would send as binary frames).
                await self.context.request.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
        except TimeoutError:
            await self.close(
                FELL_BEHIND,
                f"fell behind: took no message for {self.limits.send_timeout:g} s; subscribe "
                "again with after = the last version you received",
            )


def operation_type(query: Any, operation_name: Any) -> str | None:
    """The type of the operation a subscribe message runs, or None when that is unclear (a
    syntax error, no such operation: strawberry then answers as the protocol says)."""
    if not isinstance(query, str):
        return None
    try:
        document = parse(query, no_location=True, max_tokens=20_000)
    except GraphQLError:
        return None
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        op
        for op in ops
        if operation_name is None or (op.name is not None and op.name.value == operation_name)
    ]
    return chosen[0].operation.value if len(chosen) == 1 else None


def _code(error: GraphQLError) -> None:
    """``extensions.code`` for a refusal before the stream starts, where strawberry left none."""
    ext = dict(error.extensions or {})
    if "code" in ext:
        return
    original = error.original_error
    ext["code"] = original.code if isinstance(original, CatalogError) else "BAD_USER_INPUT"
    error.extensions = ext


__all__ = ["NOBODY", "CatalogTransportWS", "SocketLimits", "close_reason", "operation_type"]
