"""Reading a source's location under a policy: files under allowed roots, http(s) URLs to
public addresses (or allowed hosts), with a timeout and a size limit.

The hub fetches URLs that API callers give it. Without a guard, anyone who can register a
source could make the hub reach its own internal network (cloud metadata endpoints, admin
ports on localhost, databases on private addresses) and read the answers back as warnings
or catalog content. So every connection is checked where it is made: the host is resolved,
and loopback, private, link-local and other non-public addresses are refused unless the host
is listed in ``CAPAHUB_HARVEST_ALLOWED_HOSTS``. The check runs on the address actually
connected to (also after redirects), so DNS tricks cannot slip past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpcore
import httpx

from catalog.settings import Settings
from metadata.errors import (
    BadSourceDataError,
    CatalogError,
    InvalidInputError,
    NotAllowedError,
    SourceUnavailableError,
)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 25_000_000
MAX_REDIRECTS = 5
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass(frozen=True)
class FetchPolicy:
    """What a harvest may read: which private hosts, which directories, how much, how long."""

    allowed_hosts: frozenset[str] = frozenset()
    file_roots: tuple[Path, ...] = ()
    any_file: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    #: What ``{demo_data_dir}`` in a location stands for (catalog/locations.py).
    demo_data_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, trusted: bool) -> FetchPolicy:
        """The policy of the API (``trusted=False``) or of the CLI (reads any file)."""
        from catalog.demo import demo_data_dir  # the demo imports the registry

        return cls(
            demo_data_dir=demo_data_dir(settings).expanduser().resolve(),
            allowed_hosts=frozenset(
                h.lower().strip("[]") for h in _split(settings.harvest_allowed_hosts)
            ),
            file_roots=tuple(
                Path(p).expanduser().resolve() for p in _split(settings.harvest_file_roots)
            ),
            any_file=trusted,
        )


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (any scheme) rather than a file path."""
    return _SCHEME.match(location) is not None


def check_scheme(location: str) -> None:
    """Refuse URLs that are not http or https (file paths pass)."""
    m = _SCHEME.match(location)
    if m and m.group(1).lower() not in ("http", "https"):
        raise NotAllowedError(
            f"location: {m.group(1)}:// is not allowed; harvests read http(s) URLs and file paths",
            field="location",
        )


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_host(host: str, port: int, allowed: frozenset[str]) -> str:
    """The address to connect to for ``host``; refuses non-public ones unless allowed.

    Raises:
        NotAllowedError: the host resolves to a loopback, private or link-local address.
        SourceUnavailableError: the host does not resolve.
    """
    name = host.strip("[]").lower()
    try:
        literal: IPAddress | None = ipaddress.ip_address(name)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                name, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as err:
            raise SourceUnavailableError(
                f"cannot resolve host {host!r} ({err})", field="location"
            ) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0]) for i in infos))
        if not addresses:  # pragma: no cover - getaddrinfo raises instead
            raise SourceUnavailableError(f"cannot resolve host {host!r}", field="location")
    if name in allowed:
        return str(addresses[0])
    # Every address must be public: otherwise a name with one public and one private
    # address could be used to reach the private one on a retry.
    for ip in addresses:
        if not _is_public(ip):
            raise NotAllowedError(
                f"location: host {host!r} resolves to {ip}, a loopback, private or link-local "
                "address; harvests reach such hosts only when CAPAHUB_HARVEST_ALLOWED_HOSTS "
                "lists them",
                field="location",
                host=host,
            )
    return str(addresses[0])


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks every host right before connecting, then connects to that address."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self._allowed = allowed
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await resolve_host(host, port, self._allowed)
        # TLS still verifies the certificate against the URL's host name (SNI is set from it).
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NotAllowedError("location: unix sockets are not allowed", field="location")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the connection pool built on the guarded network backend."""

    def __init__(self, allowed: frozenset[str]) -> None:
        super().__init__(trust_env=False)
        # httpx offers no public hook for the network backend; its pool is the place.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_GuardedBackend(allowed),
        )


def guarded_transport(allowed: frozenset[str]) -> httpx.AsyncHTTPTransport:
    """An httpx transport that refuses, on every connection (redirects included), hosts that
    resolve to loopback, private or link-local addresses unless listed in ``allowed``."""
    return _GuardedTransport(allowed)


#: Query parameters by which database drivers (libpq, asyncpg...) pick another host to reach.
HOST_QUERY_KEYS = frozenset(
    {"host", "hostaddr", "port", "service", "unix_socket", "passfile", "servicefile", "dsn"}
)


def check_database_query(query: Mapping[str, Any], location: str) -> None:
    """Refuse URL query parameters that would make a driver connect elsewhere than the host
    that was checked, or that carry secrets."""
    for key in query:
        lowered = key.lower()
        if lowered in HOST_QUERY_KEYS:
            raise NotAllowedError(
                f"location: the URL parameter {key!r} would redirect the connection; give the "
                "host in the URL itself",
                field="location",
            )
        if "password" in lowered or "secret" in lowered or "token" in lowered:
            raise InvalidInputError(
                f"location: the URL parameter {key!r} holds a secret; put it in an environment "
                "variable and name it in credentialsEnv",
                field="location",
            )


@dataclass
class Fetched:
    """A document read from a location."""

    text: str
    location: str
    content_type: str | None = None


@dataclass
class Fetcher:
    """Reads files and URLs for harvesters, obeying a ``FetchPolicy``."""

    policy: FetchPolicy = field(default_factory=FetchPolicy)

    def check_file(self, location: str) -> Path:
        """The resolved path of a file location, if the policy lets harvests read it."""
        path = Path(location).expanduser()
        resolved = path.resolve()
        if not self.policy.any_file and not any(
            resolved.is_relative_to(root) for root in self.policy.file_roots
        ):
            where = (
                "; no directory is configured (CAPAHUB_HARVEST_FILE_ROOTS)"
                if not self.policy.file_roots
                else f" ({', '.join(str(r) for r in self.policy.file_roots)})"
            )
            raise NotAllowedError(
                f"location: {location} is outside the directories a harvest through the API "
                f"may read{where}",
                field="location",
            )
        return resolved

    async def check_host(self, host: str, port: int) -> None:
        """Refuse a host (e.g. a database server) that resolves to a non-public address."""
        await resolve_host(host, port, self.policy.allowed_hosts)

    async def read(self, location: str, *, headers: dict[str, str] | None = None) -> Fetched:
        """Read a file path or an http(s) URL as text."""
        check_scheme(location)
        if is_url(location):
            return await self._request("GET", location, headers=headers)
        return await self._read_file(location)

    async def post_json(
        self, url: str, payload: Any, *, headers: dict[str, str] | None = None
    ) -> Any:
        """POST ``payload`` as JSON to an http(s) URL and decode the JSON answer."""
        check_scheme(url)
        fetched = await self._request("POST", url, headers=headers, json_body=payload)
        try:
            return json.loads(fetched.text)
        except json.JSONDecodeError as err:
            raise BadSourceDataError(
                f"{url} did not answer with JSON (line {err.lineno}: {err.msg})", field="location"
            ) from None

    async def _read_file(self, location: str) -> Fetched:
        path = self.check_file(location)

        def read() -> bytes:
            if not path.is_file():
                raise SourceUnavailableError(
                    f"{location}: no such file" if not path.exists() else f"{location}: not a file",
                    field="location",
                )
            size = path.stat().st_size
            if size > self.policy.max_bytes:
                raise BadSourceDataError(
                    f"{location}: {size} bytes, more than the limit of {self.policy.max_bytes}",
                    field="location",
                )
            try:
                return path.read_bytes()
            except OSError as err:
                raise SourceUnavailableError(
                    f"{location}: cannot read ({err.strerror})", field="location"
                ) from None

        data = await asyncio.to_thread(read)
        return Fetched(_decode(data, location), str(path))

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None,
        json_body: Any = None,
    ) -> Fetched:
        limit = self.policy.max_bytes
        timeout = self.policy.timeout
        try:
            async with (
                asyncio.timeout(timeout),
                httpx.AsyncClient(
                    transport=_GuardedTransport(self.policy.allowed_hosts),
                    timeout=httpx.Timeout(timeout),
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    trust_env=False,
                ) as client,
                client.stream(method, url, headers=headers, json=json_body) as resp,
            ):
                if resp.status_code >= 400:
                    raise SourceUnavailableError(
                        f"{url} answered HTTP {resp.status_code} {resp.reason_phrase}",
                        field="location",
                    )
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise _too_large(url, limit)
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(url, limit)
                    chunks.append(chunk)
                content_type = resp.headers.get("content-type")
                final = str(resp.url)
        except CatalogError:
            raise
        except TimeoutError:
            raise SourceUnavailableError(
                f"{url} did not answer within {timeout:g} s", field="location"
            ) from None
        except httpx.TimeoutException:
            raise SourceUnavailableError(
                f"{url} did not answer within {timeout:g} s", field="location"
            ) from None
        except httpx.TooManyRedirects:
            raise SourceUnavailableError(
                f"{url}: more than {MAX_REDIRECTS} redirects", field="location"
            ) from None
        except httpx.UnsupportedProtocol:
            raise NotAllowedError(
                f"{url}: redirected to a scheme other than http(s)", field="location"
            ) from None
        except (httpx.HTTPError, OSError) as err:
            reason = str(err) or type(err).__name__
            raise SourceUnavailableError(
                f"{url}: cannot fetch ({reason})", field="location"
            ) from None
        return Fetched(_decode(b"".join(chunks), url), final, content_type)


def _too_large(url: str, limit: int) -> BadSourceDataError:
    return BadSourceDataError(
        f"{url}: the answer is larger than the limit of {limit} bytes", field="location"
    )


def _decode(data: bytes, location: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadSourceDataError(
            f"{location}: not UTF-8 text (byte {err.start})", field="location"
        ) from None


__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "FetchPolicy",
    "Fetched",
    "Fetcher",
    "check_scheme",
    "is_url",
    "resolve_host",
]
