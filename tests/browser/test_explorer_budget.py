"""The explorer on a hub whose cost budget runs out (docs/limits.md, "Cost budget").

``capahub serve --demo`` with a small ``CAPAHUB_COST_PER_MINUTE``: ``explorer.mjs budget``
shows the capability map and the home page in turns until the budget has refused answers
(HTTP 429, ``RATE_LIMITED``, a ``Retry-After``). The explorer asks a refused request again
after the time the hub names (at most twice, waiting at most 10 s), so every view still draws,
later instead of with an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import run_driver
from tests.serving import capahub_serve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("explorer.mjs")
#: Points a minute: the map costs a few thousand, so a few rounds spend it; refilled at 600 a
#: second, a refused map waits a few seconds.
PER_MINUTE = 36_000


@pytest.fixture(scope="module")
def report(node: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("explorer-budget")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPAHUB_")}
    env["CAPAHUB_COST_PER_MINUTE"] = str(PER_MINUTE)
    database = f"sqlite:///{tmp / 'b.db'}"
    with capahub_serve(tmp, "--demo", "--database", database, env=env) as srv:
        result = run_driver(node, DRIVER, ["budget", srv.base, str(tmp)], env)
    assert result["error"] is None, result["error"]
    return result


def test_views_draw_after_the_budget_refused_their_requests(report: dict[str, Any]) -> None:
    answers = report["graphql"]
    refused = [r for r in answers if r["status"] == 429]
    assert refused, "the budget never refused a request: raise the rounds or lower the budget"
    assert all(r["codes"] == ["RATE_LIMITED"] for r in refused)
    # Every refused operation was asked again and answered.
    for r in refused:
        later = answers[answers.index(r) + 1 :]
        assert any(a["operation"] == r["operation"] and a["status"] == 200 for a in later), r
    # Every visit drew its view, none with an error message in place of its content.
    assert report["visits"] and all(v["message"] == 0 for v in report["visits"]), report["visits"]
    assert not report["pageErrors"]
