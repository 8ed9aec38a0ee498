"""The explorer (the hub's page at /) in headless Debian chromium, on the demo landscape.

A real ``capahub serve --demo`` runs on a fresh SQLite file with access control off;
``explorer.mjs`` visits every view at 1280 px and at 390 px (axe-core on each), searches,
reads the journey board, clicks a capability box, edits through the forms, exports the map
and the board, and prints one JSON report. What the API itself says is read over HTTP before
and after, so the page is compared with the API it is the frontend of.

``CAPAHUB_UPDATE_SCREENSHOTS=1`` copies the screenshots the run takes into docs/img/explorer/.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.explorer import missing_explorer_assets
from tests.browser.conftest import run_driver
from tests.serving import capahub_serve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("explorer.mjs")
SCREENSHOTS = ROOT / "docs" / "img" / "explorer"
JOURNEY = "journey:buy-everyday-sneakers"
CHANGE_ORDER = "capability:order-management.order-capture.change-order"
GAPS = """query { journeyCoverage(id: "journey:buy-everyday-sneakers") {
  coverage steps { step { id } gaps { reason node { id } } } }
  gaps(kinds: [DATA_ENTITY]) { reason node { id } } }"""
AFTER = """query { node(id: "capability:order-management.order-capture.change-order") {
  description tags version relations(types: [READS], direction: OUT) { to { id } } }
  split: node(id: "capability:order-management.order-capture.split-order") {
  ... on Capability { parent { id } providers { id } } } }"""


def graphql(base: str, query: str) -> dict[str, Any]:
    answer = httpx.post(f"{base}/graphql", json={"query": query}, timeout=30, trust_env=False)
    body: dict[str, Any] = answer.json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture(scope="module")
def report(node: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the driver saw, with what the API answered before (gaps) and after (the edits)."""
    missing = missing_explorer_assets()
    if missing:
        pytest.fail(f"explorer assets missing ({missing[0].relpath}): run scripts/fetch-assets")
    tmp = tmp_path_factory.mktemp("explorer")
    shots = tmp / "screenshots"
    shots.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    # Every setting the default: auth off on loopback, so no cost budget either (the tour, one
    # caller asking for 128 views' answers, about 135,000 points in some 30 s, would spend a
    # reachable hub's 100,000 a minute: test_explorer_budget.py covers that).
    database = f"sqlite:///{tmp / 'explorer.db'}"
    with capahub_serve(tmp, "--demo", "--database", database, env=env) as srv:
        before = graphql(srv.base, GAPS)
        result = run_driver(node, DRIVER, ["open", srv.base, str(tmp), str(shots)], env)
        assert result["error"] is None, f"{result['error']}\nartifacts: {tmp}"
        result["apiBefore"] = before
        result["apiAfter"] = graphql(srv.base, AFTER)
    if os.environ.get("CAPAHUB_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copyfile(shot, SCREENSHOTS / shot.name)
    result["screenshots"] = sorted(p.name for p in shots.glob("*.png"))
    return result


def test_every_view_renders_without_errors_and_stays_on_the_host(report: dict[str, Any]) -> None:
    assert report["pageErrors"] == []
    assert report["consoleErrors"] == []
    assert report["offMachineRequests"] == []
    wanted = {"home", "search", "map", "journeys", "journey", "capability", "entity", "graph"}
    kinds = {"system", "journeyNode", "step", "touchpoint", "team", "domain", "source"}
    assert wanted | kinds | {"register", "notFound"} <= set(report["views"])
    for name, seen in report["views"].items():
        assert seen["h1"], f"{name} drew no heading"
        assert seen["measure"] is not None, f"{name} set no explorer:<view> measure"


def test_graphql_answers_are_within_the_cost_limit_and_refuse_only_the_bad_input(
    report: dict[str, Any],
) -> None:
    costs = [r["cost"] for r in report["graphql"] if r["cost"] is not None]
    assert costs and max(costs) < 50_000  # the default CAPAHUB_MAX_QUERY_COST
    refused = sorted({(r["operation"], c) for r in report["graphql"] for c in r["codes"]})
    assert refused == [
        ("ExplorerMap", "BAD_USER_INPUT"),  # a system as the map's root, on purpose
        ("ExplorerRegisterCapability", "BAD_USER_INPUT"),  # "Bad Key"
        ("ExplorerRelate", "BAD_USER_INPUT"),  # MASTERS from a capability
    ]


def test_typing_chan_suggests_change_order_and_enter_opens_it(report: dict[str, Any]) -> None:
    search = report["search"]
    assert search["suggestions"][0] == CHANGE_ORDER
    assert search["expanded"] == "true"
    assert (
        search["opened"]["hash"]
        == "#/node/capability%3Aorder-management.order-capture.change-order"
    )
    assert search["opened"]["h1"] == "Capability Change Order"


def test_journey_board_marks_the_gaps_the_api_reports_where_they_occur(
    report: dict[str, Any],
) -> None:
    api = report["apiBefore"]
    board = report["journey"]
    expected = {
        (step["step"]["id"], gap["node"]["id"], gap["reason"])
        for step in api["journeyCoverage"]["steps"]
        for gap in step["gaps"]
    }
    # The demo's deliberate gaps: the review capability and the review site, at Advocate.
    assert expected == {
        (
            "step:sneakers.advocate",
            "capability:loyalty-management.reviews.collect-review",
            "no active system provides this capability",
        ),
        (
            "step:sneakers.advocate",
            "touchpoint:review-site",
            "no active system serves this touchpoint",
        ),
    }
    marked = {
        (m["step"], m["node"], reason)
        for m in board["marks"]
        if m["row"] in ("touchpoints", "capabilities")
        for reason in m["reason"]
    }
    assert marked == expected
    rows = {(m["node"], m["row"]) for m in board["marks"] if m["step"] == "step:sneakers.advocate"}
    assert ("touchpoint:review-site", "touchpoints") in rows
    assert ("capability:loyalty-management.reviews.collect-review", "capabilities") in rows
    assert board["uncovered"] == ["step:sneakers.advocate"]
    assert len(board["columns"]) == 6
    assert f"{round(api['journeyCoverage']['coverage'] * 100, 1)} %" in board["coverage"]
    # An entity without a system of record is marked on the steps whose data it is.
    orphans = {g["node"]["id"] for g in api["gaps"] if "system of record" in g["reason"]}
    marked_entities = {m["node"] for m in board["marks"] if m["row"] == "entities"}
    assert marked_entities == orphans == {"entity:interaction"}


def test_board_and_map_export_as_svg_and_png(report: dict[str, Any]) -> None:
    board = report["journey"]["svg"]
    assert board["name"] == "journey-board-journey-buy-everyday-sneakers.svg"
    assert board["text"].startswith("<svg") and "Review Site" in board["text"]
    # A reason wraps in its cell as on the page: its lines are consecutive text elements.
    lines = " ".join(re.findall(r">([^<]*)</text>", board["text"]))
    assert "no active system serves this touchpoint" in lines
    mapped = report["map"]
    assert mapped["svg"]["name"] == "capability-map-providers.svg"
    assert "Change Order" in mapped["svg"]["text"] and "<rect" in mapped["svg"]["text"]
    assert mapped["png"]["magic"] == "89504e470d0a1a0a" and mapped["png"]["bytes"] > 10_000


def test_map_shows_the_hierarchy_its_gap_and_opens_a_box(report: dict[str, Any]) -> None:
    mapped = report["map"]
    assert mapped["boxes"] == 104  # the demo's capabilities
    assert mapped["gapBoxes"] == ["capability:loyalty-management.reviews.collect-review"]
    assert (
        mapped["clicked"]["hash"]
        == "#/node/capability%3Aorder-management.order-capture.change-order"
    )
    assert mapped["clicked"]["h1"] == "Capability Change Order"
    assert mapped["keyboard"] == "Capability Refund Payment"
    # Touches PII: reads or writes an entity with a PII attribute (Customer has some).
    assert (
        "capability:customer-profile-management.customer-registration.register-customer"
        in (mapped["pii"])
    )
    assert "capability:product-information-management.product-data.get-product" not in mapped["pii"]
    assert "capability:case-management" in mapped["serviceBoxes"]
    assert not any(b.startswith("capability:order-management") for b in mapped["serviceBoxes"])


def test_edits_through_the_ui_are_visible_in_the_api(report: dict[str, Any]) -> None:
    edit = report["edit"]
    assert edit["saved"].startswith(f"Saved: {CHANGE_ORDER} is at version")
    history = edit["history"]
    assert history["operation"] == "update"
    described = [row for row in history["rows"] if row[0] == "description"]
    assert len(described) == 1
    before, after = described[0][1:]
    assert after == "Edited through the explorer" and before not in ("", "—", after)
    assert any(row[0] == "tags" and row[2] == '["explorer","edited"]' for row in history["rows"])
    node = report["apiAfter"]["node"]
    assert node["description"] == "Edited through the explorer"
    assert node["tags"] == ["explorer", "edited"]
    assert edit["related"] == f"Added {CHANGE_ORDER} READS entity:order."
    assert edit["removed"] == f"Removed {CHANGE_ORDER} READS entity:order."
    assert {"to": {"id": "entity:order"}} not in node["relations"]
    split = report["apiAfter"]["split"]
    assert split == {
        "parent": {"id": "capability:order-management.order-capture"},
        "providers": [{"id": "system:erp"}],
    }
    assert report["register"]["opened"] == (
        "#/node/capability%3Aorder-management.order-capture.split-order"
    )


def test_api_errors_show_beside_the_field_they_name(report: dict[str, Any]) -> None:
    assert report["register"]["keyError"].startswith("input.key: malformed key 'Bad Key'")
    assert report["edit"]["relateError"].startswith("input.type: MASTERS cannot go from")
    assert report["edit"]["relateInvalid"] == "true"


def test_unknown_id_gets_a_not_found_page_and_api_errors_leave_the_page_usable(
    report: dict[str, Any],
) -> None:
    assert report["views"]["notFound"]["h1"] == "Not found"
    assert "root: give a capability or a domain id" in report["apiError"]["text"]
    assert "Traceback" not in report["apiError"]["text"]
    assert report["apiError"]["recovered"] is True


def test_graph_draws_expands_and_highlights_a_path(report: dict[str, Any]) -> None:
    graph = report["graph"]
    assert graph["canvases"] >= 1  # cytoscape drew
    assert graph["after"] > graph["before"] >= 10
    assert graph["path"].startswith("Path of ")
    assert {"system:crm", "touchpoint:review-site"} <= set(graph["onPath"])


def test_impact_answers_what_breaks(report: dict[str, Any]) -> None:
    assert "nodes depend on it" in report["impact"]
    assert "1 relation away" in report["impact"]


def test_no_serious_or_critical_accessibility_violations(report: dict[str, Any]) -> None:
    found = {
        name: seen["violations"] for name, seen in report["views"].items() if seen["violations"]
    }
    assert found == {}


def test_narrow_screens_do_not_scroll_sideways(report: dict[str, Any]) -> None:
    for name, seen in report["views"].items():
        if name.endswith("Narrow"):
            assert seen["scrollWidth"] <= 390, f"{name} is {seen['scrollWidth']} px wide"


def test_screenshots_at_both_widths(report: dict[str, Any]) -> None:
    for view in ("home", "capability-map", "journey-board", "node-page", "graph"):
        assert f"{view}-1280.png" in report["screenshots"]
        assert f"{view}-390.png" in report["screenshots"]
