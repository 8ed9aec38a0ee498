"""The GraphQL-over-HTTP endpoint: strawberry's ASGI view with the hub's context and JSON.

Follows the GraphQL-over-HTTP draft (https://graphql.github.io/graphql-over-http/draft/):
responses use ``application/graphql-response+json`` when the client accepts it, and then a
request that fails before execution (unparsable, invalid, bad variables) is a 400 without a
``data`` entry; ``application/json`` clients get such results with 200, as the spec asks for
legacy clients. Requests refused before GraphQL sees them (bad JSON, wrong media type, GET
mutations) answer with a 4xx status and a GraphQL-shaped JSON error body.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from catalog.budget import BODY_BYTES, CALLER, BudgetRefusal, CostBudget
from catalog.changes.websocket import (
    CatalogTransportWS,
    SocketLimits,
    close_reason,
    operation_type,
)
from catalog.operations import operation_name as metrics_operation
from catalog.playground import playground_html
from catalog.specs import MAX_NESTING, json_too_deep
from metadata.errors import UnauthenticatedError

JSON = "application/json"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
_CODES_BY_STATUS = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}
#: 19 digits in a row: a number orjson might read differently from the full path's json.loads.
#: Found by mapping every digit to "0" and everything else to a space, then one substring
#: search: both C loops, 7x faster than the regular expression ``\d{19}`` on a large body.
_LONG_NUMBER = b"0" * 19
_DIGITS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
#: A body refused before it is read is let in (and skipped) up to this size, keeping the
#: connection; past it the connection is closed (uvicorn pauses reading at 64 kB).
_UNREAD_BODY = 65_536
#: The time budget of the request being served (``asyncio.timeout``): a mutation lifts it.
_deadline: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "capahub_deadline", default=None
)


@dataclass(frozen=True)
class RequestLimits:
    """What one request may take: its body, its answer and its time (docs/limits.md)."""

    max_body_bytes: int = 2_000_000
    max_response_bytes: int = 20_000_000
    timeout: float = 30.0


class GraphQLHTTPError(HTTPException):
    """A request refused before execution, answered with ``status_code`` and extra headers;
    ``extensions`` (a ``code`` among them, else one from the status) go into the error."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ):
        super().__init__(status_code, reason)
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})


def body_too_large(limit: int) -> GraphQLHTTPError:
    """The 413 for a body over ``limit`` bytes; the connection is closed after it, so the rest
    of the body is never read."""
    return GraphQLHTTPError(
        413,
        f"The request body is larger than {limit:,} bytes (CAPAHUB_MAX_BODY_BYTES): send less, "
        "e.g. a catalog document in parts.",
        {"Connection": "close"},
        {"code": "BAD_USER_INPUT", "maxBodyBytes": limit},
    )


def rate_limited(refusal: BudgetRefusal, headers: Mapping[str, str]) -> GraphQLHTTPError:
    """The 429 of a caller out of points, refused before its body was read."""
    return GraphQLHTTPError(429, refusal.message, headers, refusal.extensions)


@functools.lru_cache(maxsize=256)  # clients send the same few headers again and again
def negotiate_media_type(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header, or None when none is acceptable.

    A missing header, ``*/*`` and ``application/*`` mean ``application/json`` (legacy clients);
    ``application/graphql-response+json`` wins when named explicitly with the same quality.
    """
    if not accept or not accept.strip():
        return JSON
    ranges = [_parse_media_range(part) for part in accept.split(",") if part.strip()]
    best: tuple[float, int, bool] = (0.0, -1, False)
    chosen = None
    for candidate in (JSON, GRAPHQL_RESPONSE_JSON):
        quality, specificity = _quality(ranges, candidate)
        # On a tie, an explicit mention prefers the GraphQL media type, a wildcard plain JSON.
        preferred = candidate == (GRAPHQL_RESPONSE_JSON if specificity == 2 else JSON)
        key = (quality, specificity, preferred)
        if quality > 0 and key > best:
            best, chosen = key, candidate
    return chosen


def _parse_media_range(part: str) -> tuple[str, float]:
    media_range, *params = (p.strip() for p in part.split(";"))
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = min(max(float(value), 0.0), 1.0)
            except ValueError:
                quality = 0.0
    return media_range.lower(), quality


def _quality(ranges: list[tuple[str, float]], media_type: str) -> tuple[float, int]:
    """The quality of the most specific range matching ``media_type`` (RFC 9110, 12.5.1)."""
    main = media_type.split("/")[0]
    found: tuple[float, int] = (0.0, -1)
    for media_range, quality in ranges:
        specificity = {media_type: 2, f"{main}/*": 1, "*/*": 0}.get(media_range, -1)
        if specificity > found[1]:
            found = (quality, specificity)
    return found


@functools.lru_cache(maxsize=256)
def _content_type(header: str) -> tuple[str, dict[str, str]]:
    """``parse_content_type``, remembered (it goes through the email package each time)."""
    return parse_content_type(header)


def failed_before_execution(result: ExecutionResult) -> bool:
    """True for a result whose request never executed: parse, validation or variable errors.

    Field errors always carry a ``path``; errors raised before execution never do.
    """
    errors = result.errors or []
    return result.data is None and bool(errors) and all(e.path is None for e in errors)


def _error_code(status_code: int) -> str:
    if status_code >= 500:
        return "INTERNAL"
    return _CODES_BY_STATUS.get(status_code, "BAD_USER_INPUT")


class SubResponse(Response):
    """What a request's resolvers may shape (headers, status, background tasks): empty and
    without a status until they do, as strawberry's own; ``media_type`` is the negotiated one.
    """

    def __init__(self, media_type: str | None) -> None:  # no rendering, no default headers
        self.status_code = None  # type: ignore[assignment]
        self.background = None
        self.body = b""
        self.raw_headers = []
        self.media_type = media_type


class CatalogGraphQL(GraphQL[Any, None]):
    """``/graphql``: POST and GET per GraphQL-over-HTTP, per-request dataloaders, orjson, and
    the request limits: body size (413), answer size and time budget (docs/limits.md); and
    subscriptions over WebSocket (``catalog.changes.websocket``)."""

    graphql_transport_ws_handler_class = CatalogTransportWS

    def __init__(
        self,
        schema: Any,
        context_factory: Callable[[Any, Any], Any],
        *,
        limits: RequestLimits | None = None,
        socket_limits: SocketLimits | None = None,
        **kw: Any,
    ) -> None:
        self.socket_limits = socket_limits or SocketLimits()
        # Subscriptions over WebSocket: graphql-transport-ws only (docs/subscriptions.md).
        kw.setdefault("subscription_protocols", (GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        kw.setdefault(
            "connection_init_wait_timeout", timedelta(seconds=self.socket_limits.init_timeout)
        )
        super().__init__(schema, **kw)
        self._context_factory = context_factory
        self.limits = limits or RequestLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection; refused HTTP requests get a GraphQL-shaped JSON error."""
        if scope["type"] == "websocket":
            receive = _bounded_messages(receive, send, self.socket_limits.max_message_bytes)
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)  # for error responses: the headers
        if (
            scope["method"] == "GET"
            and self.graphql_ide
            and self.should_render_graphql_ide(self.request_adapter_class(request))
        ):
            # The page needs no token (strawberry would build the context, and so
            # authenticate, before it looks at what is asked for); its queries do.
            await (await self.render_graphql_ide(request))(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self.create_error_response(request, body_too_large(limit))(scope, receive, send)
            return
        refused = self._out_of_points(scope, request, declared)
        if refused is not None:
            await self.create_error_response(request, refused)(scope, receive, send)
            return
        if declared is None:  # the server frames a declared length: only others are counted
            receive = _limited(receive, limit, scope)
        else:
            scope.setdefault("state", {})[BODY_BYTES] = declared
        # The budget covers reading the body and running the operation, not sending the answer
        # (a slow reader of a big answer is not the hub's work).
        response: Response | _Prepared | None
        timeout = asyncio.timeout(self.limits.timeout)
        token = _deadline.set(timeout)
        try:
            async with timeout:
                response = await self._answer(scope, receive)
        except HTTPException as error:
            response = self.create_error_response(request, error)
        except ClientDisconnect:
            return  # the client hung up before its body arrived: nobody to answer
        except TimeoutError:
            if not timeout.expired():
                raise
            response = self.create_error_response(request, self._timed_out())
        finally:
            _deadline.reset(token)
        if response is not None:
            await response(scope, receive, send)

    def _out_of_points(
        self, scope: Scope, request: Request, declared: int | None
    ) -> GraphQLHTTPError | None:
        """The 429 of a caller whose bucket cannot pay even for this request's body (or the
        point any request costs), decided before the body is read (``catalog.budget``)."""
        budget: CostBudget | None = getattr(getattr(self.schema, "costs", None), "budget", None)
        if budget is None:
            return None
        client = scope.get("client")
        caller = budget.known_caller(
            request.headers.get("authorization"), client[0] if client else None
        )
        refusal = budget.early_refusal(caller, declared or 0)
        if refusal is None:
            return None
        scope.setdefault("state", {})[CALLER] = caller
        headers = {"Retry-After": str(refusal.retry_after)}
        if scope["method"] not in ("GET", "HEAD") and (declared is None or declared > _UNREAD_BODY):
            # The body is never read: uvicorn buffers (and then skips) a small one, so the
            # connection may serve the next request; a larger one is not worth receiving.
            headers["Connection"] = "close"
        return rate_limited(refusal, headers)

    async def _answer(self, scope: Scope, receive: Receive) -> Response | _Prepared | None:
        """The response to a request (None when its client left): the prepared lane's, or the
        full path's, which then reads the body the lane replays."""
        if scope["method"] == "POST":
            prepared = await self._serve_prepared(scope, receive)
            if prepared is None or isinstance(prepared, Response | _Prepared):
                return prepared
            receive = prepared
        return await self.run(Request(scope=scope, receive=receive))

    def _timed_out(self) -> GraphQLHTTPError:
        seconds = self.limits.timeout
        return GraphQLHTTPError(
            503,
            f"The request took longer than {seconds:g} s (CAPAHUB_REQUEST_TIMEOUT) and was "
            "stopped: ask for less (a smaller `first`, fewer fields), or try again when the hub "
            "is less busy.",
            {"Connection": "close"},  # the body may not have been read to its end
            {"code": "UNAVAILABLE", "timeoutSeconds": seconds},
        )

    async def _serve_prepared(self, scope: Scope, receive: Receive) -> Any:
        """The response to a POST of a query the schema has prepared (``resolvers.prepared``).

        Returns a response to send, None when the client left, else the ``receive`` for the
        full path, which replays the body read here. Only a plain JSON body with a known query
        text takes this lane. The answer's body comes from the same ``process_result``, its
        status from the same rule, and its headers are those ``create_response`` would build
        (``tests/http/test_prepared.py`` compares them).
        """
        prepared = getattr(self.schema, "prepared", None)
        if prepared is None or not prepared.enabled:
            return receive
        content_type = accept = None
        for key, value in scope["headers"]:  # the first occurrence wins, as in Starlette
            if key == b"content-type" and content_type is None:
                content_type = value
            elif key == b"accept" and accept is None:
                accept = value
        media_type = self._plain_json(content_type, accept)
        if media_type is None:
            return receive
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the client hung up before its body arrived: nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replay = _replaying(body, receive)
        if _LONG_NUMBER in body.translate(_DIGITS) or json_too_deep(body):
            # orjson reads integers beyond 64 bits as floats, json as integers; a body nested
            # too deeply is refused by the full path (orjson would read it to 1,024 levels)
            return replay
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:  # json.loads may accept it (NaN, lone surrogates)
            return replay
        if not isinstance(data, dict):
            return replay
        query, operation_name = data.get("query"), data.get("operationName")
        if (
            not isinstance(query, str)
            or data.get("extensions") is not None
            or _misshapen_field(data) is not None
            or not prepared.known(query, operation_name)
        ):
            return replay
        variables = data.get("variables")
        scope.setdefault("state", {})["graphql_operation"] = metrics_operation(
            query, operation_name
        )
        request = Request(scope=scope, receive=replay)
        sub_response = SubResponse(media_type)
        try:
            context = await self.get_context(request, sub_response)
        except HTTPException as error:  # refused before GraphQL: no token, a bad token
            return self.create_error_response(request, error)
        result = await prepared.execute(query, operation_name, variables, context)
        if result is None:  # dropped from the table meanwhile: nothing ran, take the full path
            return replay
        response_data = await self.process_result(request, result)
        if sub_response.raw_headers or sub_response.background or sub_response.status_code:
            # a resolver shaped the response: let the full path's ``create_response`` build it
            return self.create_response(response_data, sub_response)
        # What ``create_response`` builds for an untouched sub-response, header for header.
        sent, body = self._encode_bounded(response_data)
        return _Prepared(_status_code(sent, media_type), media_type, body, _retry_after(sent))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one view per app; few distinct headers
    def _plain_json(self, content_type: bytes | None, accept: bytes | None) -> str | None:
        """The response media type for a JSON body in UTF-8 and an ``Accept`` the hub answers
        in one JSON body; None for anything else."""
        if content_type is None:
            return None
        body_type, params = _content_type(content_type.decode("latin-1"))
        if body_type != JSON or params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
            return None
        accept_text = accept.decode("latin-1") if accept is not None else None
        if self._get_stream_transport_from_headers({"accept": accept_text or ""}) is not None:
            return None
        return negotiate_media_type(accept_text)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Any:
        """A fresh context, with fresh dataloaders, for every request.

        Raises:
            GraphQLHTTPError: 401 with ``WWW-Authenticate`` (RFC 6750) when the context factory
                cannot establish who calls.
        """
        try:
            context = self._context_factory(request, response)
            return await context if inspect.isawaitable(context) else context
        except UnauthenticatedError as error:
            raise GraphQLHTTPError(
                401, error.message, {"WWW-Authenticate": www_authenticate(request, error)}
            ) from None

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """The response under construction; its ``media_type`` records the negotiated type."""
        return SubResponse(negotiate_media_type(request.headers.get("accept")))

    async def render_graphql_ide(self, request: Request) -> Response:
        """The playground page (served from the hub itself, no CDN)."""
        return HTMLResponse(playground_html(self.graphql_ide_html))

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Read the GraphQL request from the query string (GET) or the JSON body (POST).

        Raises:
            GraphQLHTTPError: 406 for an unacceptable ``Accept``, 415 for a body that is not
                UTF-8 JSON, 400 for a body or parameter of the wrong shape.
        """
        transport = self._get_stream_transport_from_headers(request.headers)
        protocol: GraphQLRequestProtocol = transport.protocol if transport else "http"
        if transport is None and negotiate_media_type(request.headers.get("accept")) is None:
            raise GraphQLHTTPError(
                406, f"Not acceptable: send `Accept: {GRAPHQL_RESPONSE_JSON}` or `{JSON}`."
            )
        if request.method == "GET":
            params = {k: v for k, v in request.query_params.items() if v != ""}
            data: Any = self.parse_query_params(params)
        else:
            data = await self._parse_post_body(request)
        if isinstance(data, list):
            self._validate_batch_request(data, protocol=protocol)
            return [self._request_data(item, protocol) for item in data]
        return self._request_data(data, protocol)

    async def _parse_post_body(self, request: AsyncHTTPRequestAdapter) -> Any:
        media_type, params = _content_type(request.content_type or "")
        if self.multipart_uploads_enabled and media_type == "multipart/form-data":
            return await self.parse_multipart(request)
        if media_type != JSON or params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
            raise GraphQLHTTPError(
                415, f"Unsupported media type: send the request as `Content-Type: {JSON}`."
            )
        body = await request.get_body()
        if not body.strip():
            raise GraphQLHTTPError(400, "The request body is empty: send a JSON object.")
        data = self.parse_json(body)
        if not isinstance(data, (dict, list)):
            raise GraphQLHTTPError(400, "The request body must be a JSON object.")
        return data

    def _request_data(self, data: Any, protocol: GraphQLRequestProtocol) -> GraphQLRequestData:
        if not isinstance(data, dict):
            raise GraphQLHTTPError(400, "Each operation in a batch must be a JSON object.")
        # A missing query is left to strawberry (an extension may supply it, e.g. persisted
        # queries); it becomes a 400 when nothing does.
        wrong = _misshapen_field(data)
        if wrong is not None:
            shape = "a string" if _REQUEST_FIELDS[wrong] is str else "an object"
            raise GraphQLHTTPError(400, f"`{wrong}` must be {shape} or null, if provided.")
        return GraphQLRequestData(
            query=data.get("query"),
            variables=data.get("variables"),
            operation_name=data.get("operationName"),
            extensions=data.get("extensions"),
            protocol=protocol,
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Any,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Execute one operation; a mutation sent with GET is a 405 that points to POST.

        A mutation is not stopped by the time budget: cut at its commit, its caller could not
        know whether it was written. Its waits are bounded on their own (the database's write
        wait, the document limits, the sources' timeout).
        """
        request.scope.setdefault("state", {})["graphql_operation"] = metrics_operation(
            request_data.query, request_data.operation_name
        )
        query = request_data.query
        if (
            isinstance(query, str)
            and "subscription" in query
            and operation_type(query, request_data.operation_name) == "subscription"
        ):
            raise GraphQLHTTPError(
                400,
                "Subscriptions run over WebSocket: open ws://.../graphql with the "
                "graphql-transport-ws protocol (docs/subscriptions.md).",
                extensions={"code": "BAD_USER_INPUT", "field": "query"},
            )
        deadline = _deadline.get()
        if deadline is not None and _is_mutation(request_data.query, request_data.operation_name):
            deadline.reschedule(None)
        try:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        except HTTPException as error:
            if request_adapter.method == "GET" and isinstance(
                error.__cause__, InvalidOperationTypeError
            ):
                raise GraphQLHTTPError(
                    405, f"{error.reason}: send them with POST.", {"Allow": "POST"}
                ) from error
            raise

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """The response body; a request that failed before execution has no ``data`` entry."""
        response = await super().process_result(request, result)
        if failed_before_execution(result):
            response.pop("data", None)
        state = request.scope.get("state")
        if state is not None and "catalog_version" in state:
            # The version read, or the newest this request committed (docs/deployment.md).
            version = max([state["catalog_version"], *state.get("committed", ())])
            response["extensions"] = {
                **(response.get("extensions") or {}),
                "catalogVersion": version,
            }
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """The HTTP response for a GraphQL result, in the negotiated media type.

        With ``application/graphql-response+json`` a result without ``data`` (a request error)
        is a 400, or a 500 when the failure was internal; ``application/json`` is always 200.
        """
        media_type = sub_response.media_type or JSON
        response_data, body = self._encode_bounded(response_data)
        response = Response(
            body, status_code=_status_code(response_data, media_type), media_type=media_type
        )
        response.headers.raw.extend(sub_response.headers.raw)
        response.headers.add_vary_header("Accept")
        retry_after = _retry_after(response_data)
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    def create_error_response(self, request: Request, error: HTTPException) -> Response:
        """A GraphQL-shaped JSON body for a request refused before execution."""
        media_type = negotiate_media_type(request.headers.get("accept")) or JSON
        headers = dict(getattr(error, "headers", {}))
        if error.status_code == 405:
            headers.setdefault("Allow", "GET, POST")
        headers["Vary"] = "Accept"
        extensions = {"code": _error_code(error.status_code), **getattr(error, "extensions", {})}
        body = {"errors": [{"message": error.reason, "extensions": extensions}]}
        return Response(
            self.encode_json(body),
            status_code=error.status_code,
            media_type=media_type,
            headers=headers,
        )

    def encode_json(self, data: object) -> bytes:
        """Encode responses with orjson (several times faster than the standard library)."""
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        """Read a JSON body or parameter: UTF-8, at most ``MAX_NESTING`` levels deep (judged
        before ``json.loads``, which recurses per level), integers of at most 4,300 digits.

        Raises:
            GraphQLHTTPError: 400 for anything else, with what is wrong.
        """
        encoded = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        if json_too_deep(encoded):
            raise GraphQLHTTPError(
                400, f"The request is nested deeper than {MAX_NESTING} levels: send flatter JSON."
            )
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8-sig")  # a BOM, as json.loads(bytes) allowed
            except UnicodeDecodeError as err:
                raise GraphQLHTTPError(
                    400,
                    f"The request body is not UTF-8 (byte {err.start} is not part of a UTF-8 "
                    "character): send JSON in UTF-8.",
                ) from None
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            raise
        except ValueError:  # an integer of more digits than int() reads
            raise GraphQLHTTPError(
                400, "The request holds an integer of more than 4,300 digits: send it as a string."
            ) from None

    def _encode_bounded(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]
    ) -> tuple[GraphQLHTTPResponse | list[GraphQLHTTPResponse], bytes]:
        """The encoded answer, or a coded error in its place when it is over
        ``max_response_bytes``; returns what was encoded and its bytes."""
        body = self.encode_json(response_data)
        limit = self.limits.max_response_bytes
        if len(body) <= limit:
            return response_data, body
        # ``data: null`` says the operation ran: a mutation's changes were made all the same.
        replaced: GraphQLHTTPResponse = {
            "data": None,
            "errors": [
                {
                    "message": f"The answer is {len(body):,} bytes, more than the {limit:,} the "
                    "hub sends (CAPAHUB_MAX_RESPONSE_BYTES): ask for less (a smaller `first`, "
                    "fewer fields or aliases). A mutation's changes were made all the same.",
                    "extensions": {
                        "code": "BAD_USER_INPUT",
                        "responseBytes": len(body),
                        "maxResponseBytes": limit,
                    },
                }
            ],
        }
        if isinstance(response_data, dict) and response_data.get("extensions"):
            replaced["extensions"] = response_data["extensions"]
        return replaced, self.encode_json(replaced)


def www_authenticate(request: Request | WebSocket, error: UnauthenticatedError) -> str:
    """The ``WWW-Authenticate`` challenge of a 401 (RFC 6750, section 3)."""
    if not request.headers.get("authorization"):
        return 'Bearer realm="capahub"'
    # error_description: printable ASCII without quotes or backslashes (RFC 6750, 3).
    description = "".join(c for c in error.message if " " <= c <= "~" and c not in '"\\')
    return f'Bearer realm="capahub", error="invalid_token", error_description="{description}"'


#: The members of a GraphQL-over-HTTP request object and the type each has when not null.
_REQUEST_FIELDS = {"query": str, "operationName": str, "variables": dict, "extensions": dict}


def _misshapen_field(data: dict[str, Any]) -> str | None:
    """The first request member that is neither null nor of its type, or None."""
    for name, kind in _REQUEST_FIELDS.items():
        value = data.get(name)
        if value is not None and not isinstance(value, kind):
            return name
    return None


class _Prepared:
    """The prepared lane's answer: what ``create_response`` builds for an untouched
    sub-response, header for header, sent as two ASGI messages."""

    __slots__ = ("body", "media_type", "retry_after", "status")

    def __init__(
        self, status: int, media_type: str, body: bytes, retry_after: str | None = None
    ) -> None:
        self.status, self.media_type, self.body = status, media_type, body
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-length", str(len(self.body)).encode()),
            (b"content-type", self.media_type.encode()),
            (b"vary", b"Accept"),
        ]
        if self.retry_after is not None:
            headers.append((b"retry-after", self.retry_after.encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def _bounded_messages(receive: Receive, send: Send, limit: int) -> Receive:
    """A WebSocket ``receive`` that closes the connection (1009) on a message over ``limit``
    bytes and reports it to the handler as a disconnect."""

    async def bounded() -> Any:
        message = await receive()
        if message["type"] == "websocket.receive":
            size = len(message.get("text") or "") + len(message.get("bytes") or b"")
            if size > limit:
                reason = close_reason(f"message of {size} bytes; the limit is {limit}")
                await send({"type": "websocket.close", "code": 1009, "reason": reason})
                return {"type": "websocket.disconnect", "code": 1009}
        return message

    return bounded


def _declared_length(scope: Scope) -> int | None:
    """The ``Content-Length`` that frames a request's body, which the server then never
    exceeds; None for a chunked body (or one that also says ``Transfer-Encoding``)."""
    length = None
    for key, value in scope["headers"]:
        if key == b"content-length" and length is None and value.isdigit():
            length = int(value)
        elif key == b"transfer-encoding":
            return None
    return length


def _limited(receive: Receive, limit: int, scope: Scope) -> Receive:
    """A ``receive`` that refuses (413) a body as soon as more than ``limit`` bytes came, and
    notes how many came (the cost budget charges for them)."""
    received = 0
    state = scope.setdefault("state", {})

    async def limited() -> Any:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            state[BODY_BYTES] = received
            if received > limit:
                raise body_too_large(limit)
        return message

    return limited


#: What ``_is_mutation`` needs of a GraphQL document, as graphql-core's lexer reads it: block
#: strings (where only ``\"""`` escapes), strings and comments (skipped), braces and parentheses
#: (depth), names (keywords, operation names) and any quote left over (then it is unsure).
_GRAPHQL_TOKEN = re.compile(
    r'"""(?:\\"""|\\|[^"\\]|"(?!""))*"""|"(?:[^"\\\n\r]|\\.)*"|#[^\n\r]*|[{}()"]'
    r"|[_A-Za-z][_0-9A-Za-z]*"
)


def _is_mutation(query: str | None, operation_name: str | None) -> bool:
    """Whether the operation a request runs is a mutation, read from the document's top level
    (each definition's first word, then its name) without parsing it.

    False whenever it is unsure (a quote outside a string, unbalanced brackets, no or several
    matching operations), so that the time budget applies.
    """
    if not query or "mutation" not in query:
        return False
    operations: list[tuple[str, str | None]] = []
    depth = 0
    expect: str | None = "keyword"  # at the start and after each definition
    for match in _GRAPHQL_TOKEN.finditer(query):
        token = match.group()
        if token == '"':
            return False
        if token[0] in '"#':
            continue
        if token in "{(":
            if depth == 0 and expect == "keyword":  # ``{ ... }`` alone: an anonymous query
                operations.append(("query", None))
            if depth == 0:
                expect = None
            depth += 1
        elif token in "})":
            depth -= 1
            if depth < 0:
                return False
            if depth == 0 and token == "}":
                expect = "keyword"
        elif depth == 0 and expect == "keyword":
            operations.append((token, None))
            expect = "name"
        elif depth == 0 and expect == "name":
            operations[-1] = (operations[-1][0], token)
            expect = None
    chosen = [
        kind
        for kind, name in operations
        if kind in ("query", "mutation", "subscription")
        and (operation_name is None or name == operation_name)
    ]
    return depth == 0 and chosen == ["mutation"]


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` first, then whatever the client sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay


def _status_code(
    response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], media_type: str
) -> int:
    """200, except for a result without ``data`` sent as ``application/graphql-response+json``:
    400 for a request error, 500 when the failure was internal; and 429 for a caller out of
    points whatever the media type (a refusal of the transport's, as 413 and 503 are)."""
    if _retry_after(response_data) is not None:
        return 429
    if (
        media_type == GRAPHQL_RESPONSE_JSON
        and isinstance(response_data, dict)
        and "data" not in response_data
    ):
        return 500 if _has_internal_error(response_data) else 400
    return 200


def _retry_after(response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> str | None:
    """The ``Retry-After`` of a request refused by the cost budget (no ``data``), else None."""
    if not isinstance(response_data, dict) or "data" in response_data:
        return None
    for error in response_data.get("errors") or []:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(extensions, dict) and extensions.get("code") == "RATE_LIMITED":
            return str(extensions.get("retryAfter", 1))
    return None


def _has_internal_error(response_data: GraphQLHTTPResponse) -> bool:
    for error in response_data.get("errors") or []:
        if isinstance(error, dict) and (error.get("extensions") or {}).get("code") == "INTERNAL":
            return True
    return False


__all__ = [
    "CatalogGraphQL",
    "GraphQLHTTPError",
    "RequestLimits",
    "body_too_large",
    "negotiate_media_type",
    "rate_limited",
    "www_authenticate",
]
