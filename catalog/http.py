"""The GraphQL-over-HTTP endpoint: strawberry's ASGI view with the hub's context and JSON.

Follows the GraphQL-over-HTTP draft (https://graphql.github.io/graphql-over-http/draft/):
responses use ``application/graphql-response+json`` when the client accepts it, and then a
request that fails before execution (unparsable, invalid, bad variables) is a 400 without a
``data`` entry; ``application/json`` clients get such results with 200, as the spec asks for
legacy clients. Requests refused before GraphQL sees them (bad JSON, wrong media type, GET
mutations) answer with a 4xx status and a GraphQL-shaped JSON error body.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
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
from strawberry.types import ExecutionResult

from catalog.playground import playground_html
from metadata.errors import UnauthenticatedError

JSON = "application/json"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
_CODES_BY_STATUS = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}
#: 19 digits in a row: a number orjson might read differently from the full path's json.loads.
_LONG_NUMBER = re.compile(rb"\d{19}")


class GraphQLHTTPError(HTTPException):
    """A request refused before execution, answered with ``status_code`` and extra headers."""

    def __init__(self, status_code: int, reason: str, headers: Mapping[str, str] | None = None):
        super().__init__(status_code, reason)
        self.headers = dict(headers or {})


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
    """``/graphql``: POST and GET per GraphQL-over-HTTP, per-request dataloaders, orjson."""

    def __init__(self, schema: Any, context_factory: Callable[[Any, Any], Any], **kw: Any) -> None:
        super().__init__(schema, **kw)
        self._context_factory = context_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection; refused HTTP requests get a GraphQL-shaped JSON error."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if scope["method"] == "POST":
            replay = await self._serve_prepared(scope, receive, send)
            if replay is None:
                return
            receive = replay
        request = Request(scope=scope, receive=receive)
        if scope["method"] == "GET" and self.graphql_ide and self.should_render_graphql_ide(
            self.request_adapter_class(request)
        ):
            # The page needs no token (strawberry would build the context, and so
            # authenticate, before it looks at what is asked for); its queries do.
            await (await self.render_graphql_ide(request))(scope, receive, send)
            return
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = self.create_error_response(request, error)
        except ClientDisconnect:
            return  # the client hung up before its body arrived: nobody to answer
        await response(scope, receive, send)

    async def _serve_prepared(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer a POST of a query the schema has prepared (``resolvers.prepared``).

        Returns None when the request was answered (or its client left), else the ``receive``
        for the full path, which replays the body read here. Only a plain JSON body with a
        known query text takes this lane. The answer's body comes from the same
        ``process_result``, its status from the same rule, and its headers are those
        ``create_response`` would build (``tests/http/test_prepared.py`` compares them).
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
        if _LONG_NUMBER.search(body):
            return replay  # orjson reads integers beyond 64 bits as floats, json as integers
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
        request = Request(scope=scope, receive=replay)
        sub_response = SubResponse(media_type)
        try:
            context = await self.get_context(request, sub_response)
        except HTTPException as error:  # refused before GraphQL: no token, a bad token
            await self.create_error_response(request, error)(scope, replay, send)
            return None
        result = await prepared.execute(query, operation_name, variables, context)
        if result is None:  # dropped from the table meanwhile: nothing ran, take the full path
            return replay
        response_data = await self.process_result(request, result)
        if sub_response.raw_headers or sub_response.background or sub_response.status_code:
            # a resolver shaped the response: let the full path's ``create_response`` build it
            response = self.create_response(response_data, sub_response)
            await response(scope, replay, send)
            return None
        # What ``create_response`` builds for an untouched sub-response, header for header.
        body = self.encode_json(response_data)
        await send(
            {
                "type": "http.response.start",
                "status": _status_code(response_data, media_type),
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", media_type.encode()),
                    (b"vary", b"Accept"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return None

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
        """Execute one operation; a mutation sent with GET is a 405 that points to POST."""
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
        response = Response(
            self.encode_json(response_data),
            status_code=_status_code(response_data, media_type),
            media_type=media_type,
        )
        response.headers.raw.extend(sub_response.headers.raw)
        response.headers.add_vary_header("Accept")
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
        body = {
            "errors": [
                {"message": error.reason, "extensions": {"code": _error_code(error.status_code)}}
            ]
        }
        return Response(
            self.encode_json(body),
            status_code=error.status_code,
            media_type=media_type,
            headers=headers,
        )

    def encode_json(self, data: object) -> bytes:
        """Encode responses with orjson (several times faster than the standard library)."""
        return orjson.dumps(data)


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
    400 for a request error, 500 when the failure was internal."""
    if (
        media_type == GRAPHQL_RESPONSE_JSON
        and isinstance(response_data, dict)
        and "data" not in response_data
    ):
        return 500 if _has_internal_error(response_data) else 400
    return 200


def _has_internal_error(response_data: GraphQLHTTPResponse) -> bool:
    for error in response_data.get("errors") or []:
        if isinstance(error, dict) and (error.get("extensions") or {}).get("code") == "INTERNAL":
            return True
    return False


__all__ = ["CatalogGraphQL", "GraphQLHTTPError", "negotiate_media_type", "www_authenticate"]
