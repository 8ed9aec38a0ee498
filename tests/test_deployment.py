"""The deployment files stay true (Dockerfile, compose.yaml, deploy/nginx.conf,
docs/deployment.md): they are parsed and checked against the settings and the metrics the hub
really has. Running them needs a container engine, which the tests do not use."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from catalog.operations import Metrics
from catalog.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
REPLICAS = ("capahub-1", "capahub-2")
#: Environment variables a capahub container may have that are not hub settings.
NOT_SETTINGS = {"FORWARDED_ALLOW_IPS", "PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The ``ENV key=value ...`` pairs of the last stage."""
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    env: dict[str, str] = {}
    for word, rest in instructions[stages[-1] :]:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {pair}: use key=value"
                env[key] = value
    return env


def setting_names() -> set[str]:
    return {f"CAPAHUB_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((ROOT / "Dockerfile").read_text())


def test_the_image_is_python_311_slim_run_by_a_user_serving_with_auth_on(
    dockerfile: list[tuple[str, str]],
) -> None:
    froms = [rest for word, rest in dockerfile if word == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms), froms
    stages = [i for i, (word, _) in enumerate(dockerfile) if word == "FROM"]
    final = dockerfile[stages[-1] :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the final stage must run as a user"
    assert any(word == "RUN" and "pip install ." in rest for word, rest in dockerfile)
    env = env_of(dockerfile)
    assert env["CAPAHUB_HOST"] == "0.0.0.0"
    assert env["CAPAHUB_AUTH"] == "on"
    unknown = {k for k in env if k.startswith("CAPAHUB_")} - setting_names()
    assert not unknown, f"the Dockerfile sets variables that are no setting: {unknown}"
    cmd = [rest for word, rest in final if word == "CMD"]
    assert cmd and shlex.split(cmd[-1].strip("[]").replace(",", " ")) == ["capahub", "serve"]
    port = env["CAPAHUB_PORT"]
    assert any(word == "EXPOSE" and rest.split()[0] == port for word, rest in final)


def test_the_image_checks_its_health_on_healthz(dockerfile: list[tuple[str, str]]) -> None:
    checks = [rest for word, rest in dockerfile if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "CMD" in checks[0] and "/healthz" in checks[0]


def test_compose_runs_postgres_two_replicas_and_a_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "proxy", *REPLICAS} <= services.keys()
    assert services["postgres"]["image"].startswith("postgres:")
    assert "healthcheck" in services["postgres"]
    urls = {services[r]["environment"]["CAPAHUB_DATABASE_URL"] for r in REPLICAS}
    assert len(urls) == 1, "both replicas must use the same database"
    url = urls.pop()
    assert url.startswith("postgresql://") and "@postgres:" in url


def test_the_replicas_environment_names_real_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    known = setting_names()
    for name in (*REPLICAS, "migrate"):
        env = services[name]["environment"]
        unknown = {k for k in env if k not in known and k not in NOT_SETTINGS}
        assert not unknown, f"{name} sets variables that are no capahub setting: {unknown}"
        assert env["CAPAHUB_AUTH"] == "on"
        assert env["CAPAHUB_HOST"] == "0.0.0.0"
        # Settings accept every value given (defaults of ${VAR:-default} substituted).
        values = {
            k[len("CAPAHUB_") :].lower(): re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v))
            for k, v in env.items()
            if k in known
        }
        Settings.model_validate(values)


def test_compose_variables_are_not_mistaken_for_settings() -> None:
    text = (ROOT / "compose.yaml").read_text()
    variables = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert variables, "compose.yaml reads no variable (expected POSTGRES_PASSWORD at least)"
    for name in variables:
        if name.startswith("CAPAHUB_"):
            assert name in setting_names(), f"${{{name}}} looks like a setting but is none"


def test_the_replicas_answer_the_host_names_the_proxy_passes_on(compose: dict[str, Any]) -> None:
    env = compose["services"]["capahub-1"]["environment"]
    hosts = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", env["CAPAHUB_ALLOWED_HOSTS"]).split(",")
    assert "localhost" in hosts  # the default public name (Host: localhost:8080)
    assert "127.0.0.1" in hosts  # the proxy's health check through itself
    assert set(REPLICAS) <= set(hosts)  # a Prometheus scraping each replica by its name
    proxy_check = " ".join(compose["services"]["proxy"]["healthcheck"]["test"])
    assert "http://127.0.0.1/" in proxy_check


def test_replicas_are_ready_before_the_proxy_sends_them_traffic(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in REPLICAS:
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "/readyz" in check, name
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    depends = services["proxy"]["depends_on"]
    for name in REPLICAS:
        assert depends[name]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"][0] == "capahub"


def test_the_proxy_config_balances_both_replicas(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["proxy"]["volumes"]
    configs = [m.split(":")[0] for m in mounts if m.split(":")[1].startswith("/etc/nginx")]
    assert configs == ["./deploy/nginx.conf"]
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    assert text.count("{") == text.count("}")
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", text, re.DOTALL)
    assert upstream, "no upstream block"
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream.group(2), re.MULTILINE)
    assert sorted(host for host, _ in servers) == sorted(REPLICAS)
    port = compose["services"]["capahub-1"]["environment"]["CAPAHUB_PORT"]
    assert {p for _, p in servers} == {port}
    assert f"proxy_pass http://{upstream.group(1)};" in text
    assert "proxy_set_header Host $host;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text  # subscriptions


def test_docker_ignores_what_the_image_does_not_need() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "*.db"} <= set(ignored)


def registered_metric_names() -> set[str]:
    """Every metric family the hub's registry can expose, with a started replica's series."""
    metrics = Metrics()
    metrics.observe("/graphql", "Q", 200, 0.01)
    families = text_string_to_metric_families(metrics.render().decode())
    # prometheus-client adds a ``<name>_created`` timestamp beside each histogram: not a metric.
    names = {f.name for f in families if not f.name.endswith("_created")}
    source = (ROOT / "catalog" / "operations.py").read_text()
    # The collector's series exist only while services run: read their names from its source.
    names |= set(re.findall(r'"(capahub_[a-z_]+)"', source))
    return names


def test_the_deployment_doc_names_every_metric() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    names = registered_metric_names()
    assert "capahub_request_duration_seconds" in names and len(names) >= 8
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"docs/deployment.md does not describe {missing}"


def test_the_deployment_doc_is_linked_and_covers_the_operations() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    for needed in (
        "X-Capahub-Catalog-Version",
        "extensions.catalogVersion",
        "/healthz",
        "/readyz",
        "/metrics",
        "CAPAHUB_LOG_FORMAT",
        "LISTEN/NOTIFY",
        "docker compose",
        "capahub token create",
    ):
        assert needed in doc, needed
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", doc, re.MULTILINE)
    }
    for page in ("settings.md", "../README.md"):
        text = (ROOT / "docs" / page).read_text()
        assert "deployment.md" in text, f"{page} does not link docs/deployment.md"
        for anchor in re.findall(r"deployment\.md#([a-z0-9-]+)", text):
            assert anchor in anchors, f"{page} links deployment.md#{anchor}, which does not exist"
    for name in re.findall(r"`(CAPAHUB_[A-Z_]+)`", doc):
        assert name in setting_names(), f"docs/deployment.md names {name}, which is no setting"
