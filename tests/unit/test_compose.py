"""docker/compose.yaml, checked against the code: Docker cannot run here, so the file is
parsed and every worker's environment must be settings this code accepts, pointing at the
services the file defines, with the topics the code uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.settings import Settings
from app.topics import CONTRACT

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def interpolate(value: Any) -> str:
    """Compose's ${VAR:-default} and ${VAR:?error} with nothing set: the defaults."""

    def default(match: re.Match[str]) -> str:
        if match.group(2) == ":?":
            pytest.fail(f"{match.group(0)} has no default")
        return match.group(3) or ""

    return re.sub(r"\$\{(\w+)(:-|:\?|-)?([^}]*)\}", default, str(value))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def workers(compose: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in compose["services"].items() if n.startswith("worker-")}


def settings_of(service: dict[str, Any]) -> Settings:
    env = {k: interpolate(v) for k, v in service["environment"].items()}
    return Settings.from_env(env)  # unknown or invalid settings raise here


def test_kafka_runs_kraft_on_the_official_image(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert not [n for n in compose["services"] if "zookeeper" in n]


def test_several_workers_each_with_valid_settings_pointing_at_the_services(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    found = workers(compose)
    assert len(found) >= 2
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    minio = services["minio"]
    host_ports = []
    for name, service in found.items():
        settings = settings_of(service)
        assert settings.broker_profile == "kafka"
        broker = urlsplit(settings.broker_url)
        assert f"//{broker.hostname}:{broker.port}" in advertised
        s3 = urlsplit(settings.s3_endpoint)
        assert s3.hostname == "minio" and f"{s3.port}:{s3.port}" in " ".join(minio["ports"])
        assert settings.s3_access_key == interpolate(minio["environment"]["MINIO_ROOT_USER"])
        assert settings.s3_secret_key == interpolate(minio["environment"]["MINIO_ROOT_PASSWORD"])
        # Other workers forward reads to WEB_HOST: it must be this service's name.
        assert settings.web_host == service["hostname"] == name
        assert settings.web_bind == "0.0.0.0" and settings.api_token is None
        published, inside = service["ports"][0].split(":")
        assert int(inside) == settings.web_port
        host_ports.append(published)
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert (
            service["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"
        )
    assert len(set(host_ports)) == len(host_ports)
    assert len({settings_of(s).partitions for s in found.values()}) == 1


def test_the_topic_job_creates_the_contract_topics_with_the_workers_partitions(
    compose: dict[str, Any],
) -> None:
    job = compose["services"]["kafka-topics"]
    script = job["command"][0]
    created = re.findall(r"^create (\S+) (-?\d+)$", script, re.MULTILINE)
    assert {name for name, _ in created} == set(CONTRACT)
    retention = dict(created)
    assert retention["modelview.model-events"] == "-1"  # the registry's log: kept for ever
    partitions = int(interpolate(job["environment"]["PARTITIONS"]))
    assert partitions == settings_of(next(iter(workers(compose).values()))).partitions


def test_the_image_installs_the_project_and_runs_a_worker() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "pip install" in dockerfile and 'ENTRYPOINT ["modelview"]' in dockerfile
    assert 'CMD ["worker"' in dockerfile
    for package in ("app", "agents", "tables"):
        assert f"COPY {package} ./{package}" in dockerfile
