"""The HTTP access log: one line per request, in uvicorn's format, written in batches.

uvicorn's own access log goes through the ``logging`` module for every request: a LogRecord,
its formatter, a write and a flush of the stream. On a small API call that was a third of the
hub's CPU per request (0.91 against 0.65 ms for a ``node(id)`` lookup, see bench/README.md).
``AccessLog`` writes the same line, with the caller the hub established for the request
(``token:ci``, ``user:ada``, ``anonymous``: ``Principal.actor``, never a credential) where the
Common Log Format has its user, when the request was authenticated (GraphQL, ``/metrics``)::

    INFO:     127.0.0.1:52144 - token:ci "POST /graphql HTTP/1.1" 200 OK
    INFO:     127.0.0.1:52146 - "GET /healthz HTTP/1.1" 200 OK

into a buffer that goes out when it holds ``max_lines`` lines or ``flush_after`` seconds after
its first line, whichever comes first, and when the server shuts down. As with nginx's
``access_log ... buffer= flush=``, a line may thus appear up to ``flush_after`` seconds late.

``capahub serve`` mounts it instead of uvicorn's access log when ``CAPAHUB_ACCESS_LOG`` is on;
with ``CAPAHUB_LOG_FORMAT=json`` its lines are JSON objects (``catalog.logs.json_access_line``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TextIO
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PHRASES = {s.value: s.phrase for s in HTTPStatus}

#: POSIX guarantees writes up to PIPE_BUF (at least 512; 4096 on Linux) to a pipe are atomic.
_ATOMIC_WRITE = 4_000


#: The longest caller name a line shows (a JWT's subject is the identity provider's choice).
MAX_ACTOR = 200


def actor_of(scope: Scope) -> str | None:
    """The caller the hub established for this request (``request.state.actor``: set by the
    GraphQL context and ``/metrics``, ``anonymous`` until a credential verifies), printable and
    without spaces or quotes, so a line stays one record; None for routes that do not ask."""
    state = scope.get("state")
    actor = state.get("actor") if state else None
    if not actor:
        return None
    text = str(actor)[:MAX_ACTOR]
    if text.isprintable() and not any(c in text for c in ' "\\'):
        return text
    return "".join(c if c.isprintable() and c not in ' "\\' else "?" for c in text)


#: Formats one request's line (ending in a newline) from its scope, status and duration (s).
LineFormat = Callable[[Scope, int, float], str]


def access_line(scope: Scope, status: int, seconds: float = 0.0) -> str:
    """The log line for one request, as uvicorn's access log formats it (without colours;
    uvicorn's line has no duration, so ``seconds`` is not shown), with its caller when known
    (``actor_of``)."""
    client = scope.get("client")
    addr = f"{client[0]}:{client[1]}" if client else ""
    path = quote(scope["path"])
    if scope.get("query_string"):
        path = f"{path}?{scope['query_string'].decode('ascii', 'replace')}"
    phrase = _PHRASES.get(status, "")
    actor = actor_of(scope)
    who = f" {actor}" if actor else ""
    request = f"{scope['method']} {path} HTTP/{scope.get('http_version', '1.1')}"
    return f'INFO:     {addr} -{who} "{request}" {status} {phrase}'.rstrip() + "\n"


class AccessLog:
    """ASGI middleware that logs every HTTP request's line to ``stream``, in batches."""

    def __init__(
        self,
        app: ASGIApp,
        stream: TextIO | None = None,
        *,
        flush_after: float = 0.5,
        max_lines: int = 256,
        line: LineFormat = access_line,
    ) -> None:
        self.app = app
        self.line = line
        self.stream = stream if stream is not None else sys.stdout
        self.flush_after = flush_after
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; log its line once it is answered (or has failed)."""
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flushing_on_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers when the app fails before starting a response
        start = time.perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.log(self.line(scope, status, time.perf_counter() - start))

    def log(self, line: str) -> None:
        """Buffer ``line``; write the buffer when full, else schedule its flush."""
        lines = self._lines
        lines.append(line)
        if len(lines) >= self.max_lines:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.flush_after, self.flush)
            except RuntimeError:  # no loop running (called from a thread): write now
                self.flush()

    def flush(self) -> None:
        """Write out every buffered line."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            # Whole lines, at most PIPE_BUF bytes per write: with several workers on one pipe
            # or O_APPEND file, their writes interleave but never split a line.
            chunk: list[str] = []
            size = 0
            for line in lines:
                if chunk and size + len(line) > _ATOMIC_WRITE:
                    self._write("".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            self._write("".join(chunk))
        except (OSError, ValueError):  # a closed or broken stream must not fail requests
            pass

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _flushing_on_shutdown(self, send: Send) -> Send:
        async def send_lifespan(message: Message) -> Any:
            if message["type"].startswith("lifespan.shutdown"):
                self.flush()
            return await send(message)

        return send_lifespan


__all__ = ["AccessLog", "LineFormat", "access_line", "actor_of"]
