"""deploy/compose.yaml: valid Compose, and every name, file and port it uses exists once.

The schema is the compose-spec's own, vendored as tests/schemas/compose-spec.json from
https://github.com/compose-spec/compose-spec/blob/170098ba07d9f53c383a41bfd4c5166b0a4529a6/schema/compose-spec.json
(no Docker here; where Docker is, ``docker compose config`` checks the file too).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from api.settings import Settings
from tests.live_server import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"
SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"
DAG = ROOT / "deploy" / "airflow" / "dags" / "retrain_attrition.py"
# ${NAME}, ${NAME:-default}, ${NAME:?error}: a default stands for the value.
_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# What a user must give (``${NAME:?...}``): values the API accepts under ENV=prod.
REQUIRED = {"SECRET_KEY": secrets.token_urlsafe(48), "ADMIN_PASSWORD": "compose-check-password"}


def interpolated(text: str) -> str:
    return _VARIABLE.sub(
        lambda m: m.group(3) if m.group(2) == "-" else REQUIRED.get(m[1], ""), text
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def test_the_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(compose)


def test_the_whole_stack_is_there(services: dict[str, dict[str, Any]]) -> None:
    expected = {"api", "dashboard", "postgres", "mlflow", "airflow", "prometheus", "grafana"}
    assert expected <= set(services)
    for name, service in services.items():
        if "build" not in service and service.get("image") != "mldeploy:local":
            # Official images, each at a pinned tag.
            assert re.search(r":v?\d+\.\d+", service["image"]), f"{name}: {service['image']}"


def test_every_bind_mount_and_build_file_exists(services: dict[str, dict[str, Any]]) -> None:
    base = COMPOSE.parent
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (base / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (base / source).exists(), f"{name}: {source} missing"


def test_named_volumes_and_services_referenced_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: volume {source} undeclared"
        assert set(service.get("depends_on", [])) <= set(services), name
        network = service.get("network_mode", "")
        if network.startswith("service:"):
            assert network.removeprefix("service:") in services, name


def test_published_ports_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    published = [
        interpolated(str(port)).rsplit(":", 1)[0]
        for service in services.values()
        for port in service.get("ports", [])
    ]
    assert len(published) == len(set(published)), published


def test_the_app_and_airflow_use_the_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]["environment"]
    assert "@postgres:5432/" in api["DATABASE_URL"]
    airflow = services["airflow"]["environment"]
    assert "@postgres:5432/airflow" in airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert airflow["AIRFLOW_VAR_MLDEPLOY_DATABASE_URL"] == api["DATABASE_URL"]
    assert "CREATE DATABASE airflow" in (ROOT / "deploy/postgres/init-databases.sql").read_text()


def test_the_api_accepts_its_environment_in_prod(services: dict[str, dict[str, Any]]) -> None:
    environment = {
        key.lower(): interpolated(str(value))
        for key, value in services["api"]["environment"].items()
    }
    settings = Settings(_env_file=None, **environment)  # type: ignore[call-arg]
    assert settings.env == "prod"
    assert settings.database_url.startswith("postgresql+psycopg://mldeploy:")


def test_the_airflow_variables_are_the_dags_settings(services: dict[str, dict[str, Any]]) -> None:
    settings = set(re.findall(r'"(mldeploy_\w+)":', DAG.read_text()))
    given = {
        key.removeprefix("AIRFLOW_VAR_").lower()
        for key in services["airflow"]["environment"]
        if key.startswith("AIRFLOW_VAR_")
    }
    assert given and given <= settings, given - settings


def test_grafana_and_prometheus_read_the_repositorys_configuration(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    # Its configuration scrapes localhost:8000: it shares the API's network namespace.
    assert prometheus["network_mode"] == "service:api"
    assert "localhost:8000" in (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    grafana = services["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert grafana["environment"]["PROMETHEUS_URL"] == "http://api:9090"


def has_docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not has_docker_compose(), reason="no docker compose here: the schema check stands for it"
)
def test_docker_compose_config_accepts_it() -> None:
    subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        env={**os.environ, **REQUIRED},
        check=True,
        timeout=60,
    )
