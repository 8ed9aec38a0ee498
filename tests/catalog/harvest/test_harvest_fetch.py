"""Reading locations under the policy: allowed hosts, file roots, schemes, limits, failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.harvest import Fetcher, FetchPolicy, HarvestService, SourceSpec, SourceType
from catalog.harvest.fetch import resolve_host
from catalog.services import Services
from metadata.errors import BadSourceDataError, NotAllowedError, SourceUnavailableError
from tests.catalog.harvest.conftest import FIXTURES, FakeSite, fixture_text, history_count

SPEC = fixture_text("shop-openapi.yaml")


def openapi(location: str, key: str = "shop-api") -> SourceSpec:
    return SourceSpec.build(
        {
            "key": key,
            "name": key,
            "type": SourceType.OPENAPI,
            "location": location,
            "system": "system:webshop",
        }
    )


async def test_url_on_loopback_is_forbidden_unless_allowed(
    make_harvest: Callable[..., HarvestService], site: FakeSite, hub: Services
) -> None:
    url = site.serve("/openapi.yaml", SPEC, content_type="application/yaml")
    with pytest.raises(NotAllowedError, match="127.0.0.1.*CAPAHUB_HARVEST_ALLOWED_HOSTS") as err:
        await make_harvest().harvest_location(openapi(url))
    assert err.value.code == "FORBIDDEN"
    assert site.seen == []  # refused before connecting
    report = await make_harvest(harvest_allowed_hosts="example.org, 127.0.0.1").harvest_location(
        openapi(url)
    )
    assert len(report.added) == 39
    # The endpoint of a relative server URL resolves against the spec's URL.
    relative = site.serve("/v3/spec.yaml", SPEC.replace("https://api.shop.example.com/v2", "/api"))
    await make_harvest(harvest_allowed_hosts="127.0.0.1").harvest_location(openapi(relative, "rel"))
    async with hub.store.read() as r:
        op = (await r.get_nodes(["capability:rel.get-order"]))["capability:rel.get-order"]
    assert (op.properties or {})["endpoint"] == f"{site.base}/api/orders/{{orderId}}"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.0.0.2",
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",
        "[::1]",
        "0.0.0.0",
        "100.64.0.1",
    ],
)
async def test_private_and_link_local_addresses_are_refused(host: str) -> None:
    with pytest.raises(NotAllowedError):
        await resolve_host(host, 80, frozenset())


async def test_public_address_passes_and_allowed_host_is_exact() -> None:
    assert await resolve_host("93.184.216.34", 443, frozenset()) == "93.184.216.34"
    assert await resolve_host("10.0.0.7", 5432, frozenset({"10.0.0.7"})) == "10.0.0.7"
    with pytest.raises(NotAllowedError):
        await resolve_host("10.0.0.8", 5432, frozenset({"10.0.0.7"}))


async def test_redirect_to_a_private_address_is_refused(
    make_harvest: Callable[..., HarvestService], site: FakeSite, hub: Services
) -> None:
    site.serve("/spec.yaml", SPEC)
    port = site.base.rsplit(":", 1)[1]
    # 127.0.0.1 is allowed, but the redirect goes to "localhost", which is not.
    url = site.serve("/moved", "", redirect=f"http://localhost:{port}/spec.yaml")
    with pytest.raises(NotAllowedError, match="'localhost'"):
        await make_harvest(harvest_allowed_hosts="127.0.0.1").harvest_location(openapi(url))
    assert [s.get("host") for s in site.seen] == [f"127.0.0.1:{port}"]


@pytest.mark.parametrize(
    "location",
    [
        "ftp://example.com/spec.yaml",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript://x",
    ],
)
async def test_only_http_and_https_urls(hub: Services, location: str) -> None:
    with pytest.raises(NotAllowedError, match="is not allowed"):
        await hub.harvest.harvest_location(openapi(location))


async def test_file_roots_bind_the_api_but_not_the_cli(
    make_harvest: Callable[..., HarvestService], hub: Services, tmp_path: Path
) -> None:
    inside = tmp_path / "specs"
    inside.mkdir()
    (inside / "shop.yaml").write_text(SPEC)
    outside = FIXTURES / "shop-openapi.yaml"
    api = make_harvest(harvest_file_roots=str(inside))
    with pytest.raises(NotAllowedError, match="outside the directories"):
        await api.register_source(openapi(str(outside)))
    with pytest.raises(
        NotAllowedError, match="outside the directories"
    ):  # ../ tricks resolve first
        await api.register_source(openapi(str(inside / ".." / ".." / outside)))
    source = await api.register_source(openapi(str(inside / "shop.yaml")))
    report = await api.harvest_source(source.id)
    assert len(report.added) == 39
    # No roots configured: the API reads no file at all; the CLI (trusted) reads any.
    with pytest.raises(NotAllowedError, match="no directory is configured"):
        await make_harvest().harvest_source(source.id)
    assert len((await make_harvest().harvest_source(source.id, trusted=True)).unchanged) == 39
    # A symlink under a root that points outside is outside.
    (inside / "link.yaml").symlink_to(outside)
    with pytest.raises(NotAllowedError):
        await api.register_source(openapi(str(inside / "link.yaml"), key="linked"))


async def test_size_limit_timeout_and_dropped_connection(
    make_harvest: Callable[..., HarvestService], site: FakeSite, hub: Services, tmp_path: Path
) -> None:
    ok = make_harvest(harvest_allowed_hosts="127.0.0.1")
    await ok.harvest_location(openapi(site.serve("/spec.yaml", SPEC)))
    before = await history_count(hub)
    small = make_harvest(harvest_allowed_hosts="127.0.0.1", max_bytes=1000)
    with pytest.raises(BadSourceDataError, match="larger than the limit of 1000 bytes"):
        await small.harvest_location(openapi(site.url("/spec.yaml")))
    big = tmp_path / "big.yaml"
    big.write_text(SPEC)
    with pytest.raises(BadSourceDataError, match="more than the limit"):
        await small.harvest_location(openapi(str(big)))
    slow = make_harvest(harvest_allowed_hosts="127.0.0.1", timeout=0.5)
    site.serve("/spec.yaml", SPEC, delay=2)
    with pytest.raises(SourceUnavailableError, match="did not answer within 0.5 s"):
        await slow.harvest_location(openapi(site.url("/spec.yaml")))
    site.serve("/spec.yaml", SPEC, truncate=True)
    with pytest.raises(SourceUnavailableError, match="cannot fetch"):
        await ok.harvest_location(openapi(site.url("/spec.yaml")))
    site.serve("/spec.yaml", "gone", status=503, content_type="text/plain")
    with pytest.raises(SourceUnavailableError, match="answered HTTP 503"):
        await ok.harvest_location(openapi(site.url("/spec.yaml")))
    with pytest.raises(SourceUnavailableError, match="no such file"):
        await ok.harvest_location(openapi(str(tmp_path / "missing.yaml")))
    # None of the failures wrote or retired anything.
    assert await history_count(hub) == before


async def test_unresolvable_host_is_unavailable(hub: Services) -> None:
    with pytest.raises(SourceUnavailableError, match="cannot resolve host"):
        await hub.harvest.harvest_location(openapi("https://no-such-host.invalid/spec.yaml"))


async def test_fetcher_reads_files_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("openapi: 3.0.0\ninfo: {title: Caf\xe9}\n".encode("latin-1"))
    with pytest.raises(BadSourceDataError, match="not UTF-8"):
        await Fetcher(FetchPolicy(any_file=True)).read(str(path))
