"""JSON logs (catalog/logs.py): a real ``capahub serve`` with ``CAPAHUB_LOG_FORMAT=json`` writes
nothing but JSON lines, its access lines carry the request's fields, exceptions are a field."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.logs import JsonFormatter, json_access_line, log_config
from catalog.settings import Settings
from tests.serving import Served, capahub_serve


def _json_lines(served: Served) -> list[dict[str, Any]]:
    """Every line the server wrote, each parsed as JSON (a line that is not JSON fails)."""
    lines = [line for line in served.output().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n{served.output()}")
        assert isinstance(entry, dict), line
        parsed.append(entry)
    return parsed


def _access_line(served: Served, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10  # access lines are written in batches, at most 0.5 s late
    while time.monotonic() < deadline:
        for entry in _json_lines(served):
            if entry.get("logger") == "capahub.access" and entry.get("request_id") == request_id:
                return entry
        time.sleep(0.1)
    pytest.fail(f"no access line for request {request_id}: {served.output()}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_with_json_logs_writes_only_json_lines(tmp_path: Path, workers: str) -> None:
    env = {**os.environ, "CAPAHUB_LOG_FORMAT": "json", "CAPAHUB_LOG_LEVEL": "info"}
    env.pop("CAPAHUB_AUTH", None)
    database = f"sqlite:///{tmp_path / 'c.db'}"
    with capahub_serve(tmp_path, "--database", database, "--workers", workers, env=env) as srv:
        answer = httpx.post(
            f"{srv.base}/graphql",
            json={"query": "query CountSystems { systems { totalCount } }"},
            headers={"X-Request-Id": "req-42"},
            trust_env=False,
        )
        assert answer.status_code == 200
        version = answer.json()["extensions"]["catalogVersion"]
        access = _access_line(srv, "req-42")
        entries = _json_lines(srv)
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert entry["time"].endswith("Z")
    assert access["level"] == "INFO"
    assert access["method"] == "POST" and access["path"] == "/graphql"
    assert access["status"] == 200
    assert access["operation"] == "CountSystems"
    assert access["catalog_version"] == version
    assert access["duration_ms"] >= 0
    assert '"POST /graphql HTTP/1.1" 200 OK' in access["message"]
    started = [e for e in entries if e["message"] == "capahub is serving"]
    assert started and started[0]["urls"]["health"].endswith("/healthz")
    assert any(e["logger"].startswith("uvicorn") for e in entries)


def test_text_is_the_default_and_keeps_uvicorns_own_config() -> None:
    from uvicorn.config import LOGGING_CONFIG

    assert Settings().log_format == "text"
    config = log_config("info", "text")
    # uvicorn's own, untouched, plus capahub's loggers through its handler.
    assert {k: v for k, v in config["loggers"].items() if k != "capahub"} == LOGGING_CONFIG[
        "loggers"
    ]
    assert config["loggers"]["capahub"]["handlers"] == ["default"]
    assert "capahub" not in LOGGING_CONFIG["loggers"]  # a copy, not uvicorn's dict changed


def test_text_logs_show_capahubs_info_lines(tmp_path: Path) -> None:
    # Before, capahub.* loggers reached no handler in the text format: only warnings showed
    # (Python's last resort), so e.g. the demo's load and a snapshot's use were invisible.
    env = {**os.environ, "CAPAHUB_LOG_FORMAT": "text", "CAPAHUB_LOG_LEVEL": "info"}
    env.pop("CAPAHUB_AUTH", None)
    database = f"sqlite:///{tmp_path / 'c.db'}"
    with capahub_serve(tmp_path, "--database", database, "--demo", env=env) as srv:
        deadline = time.monotonic() + 10
        while "demo landscape:" not in srv.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        output = srv.output()
    assert "INFO:     demo landscape:" in output, output


def test_an_exception_is_a_field_and_extra_fields_are_kept() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError("bad value\nwith a second line")
        except ValueError:
            log.exception("it failed for %s", "system:crm", extra={"source": "source:crm"})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1  # the traceback is escaped inside the one line
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "tests.logs"
    assert entry["message"] == "it failed for system:crm"
    assert entry["source"] == "source:crm"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad value" in entry["exception"]


def test_a_request_id_that_does_not_look_like_one_is_not_logged() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/healthz",
        "query_string": b"",
        "client": ("10.0.0.1", 4000),
        "headers": [(b"x-request-id", b"x" * 65)],
    }
    entry = json.loads(json_access_line(scope, 200, 0.002))
    assert "request_id" not in entry
    assert entry["client"] == "10.0.0.1:4000"
    assert entry["duration_ms"] == 2.0
    assert entry["message"] == '10.0.0.1:4000 - "GET /healthz HTTP/1.1" 200 OK'
