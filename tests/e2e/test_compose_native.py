"""docker/compose.yaml's topology, run natively (no Docker engine runs here): Apache Kafka,
an S3 server, the topic job's own script, and three workers with the compose environment."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.client import HttpClient, KafkaPublisher
from app.settings import Settings
from app.stack.kafka import tool_command
from app.stack.services import Stack
from app.topics import CONTRACT
from tests.e2e.test_cluster import all_equal
from tests.e2e.test_ingest import send_kafka
from tests.e2e.workload import build
from tests.services import (
    WorkerProcess,
    free_block,
    stack_settings,
    wait_cluster_caught_up,
    wait_cluster_ready,
)
from tests.unit.test_compose import interpolate, settings_of, workers

pytestmark = pytest.mark.e2e

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


@pytest.fixture
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture
def empty_stack(tmp_path: Path, compose: dict[str, Any]) -> Iterator[Settings]:
    """The services, with no topic yet: the topic job creates them, as in compose."""
    partitions = int(interpolate(compose["services"]["kafka-topics"]["environment"]["PARTITIONS"]))
    settings = stack_settings(tmp_path / "data", partitions=partitions)
    if settings.broker != "kafka":
        pytest.skip("compose runs Apache Kafka; this machine's stack runs Tansu")
    stack = Stack(settings)
    stack.up(restore=False)
    try:
        yield settings
    finally:
        stack.down()


def run_topic_job(compose: dict[str, Any], settings: Settings) -> None:
    """The job's own bash script, with kafka-topics.sh as Kafka's TopicCommand run here."""
    job = compose["services"]["kafka-topics"]
    script = job["command"][0].replace("$$", "$")
    topic_command = shlex.join(tool_command("org.apache.kafka.tools.TopicCommand"))
    script = script.replace("/opt/kafka/bin/kafka-topics.sh", topic_command)
    script = script.replace("kafka:9092", settings.bootstrap_servers)
    env = {"PARTITIONS": str(settings.partitions), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def retention(settings: Settings) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in CONTRACT]
        )
    finally:
        await admin.close()
    out = {}
    for response in described:
        # Each resource: (error code, message, type, name, [(config, value, ...), ...]).
        for resource in response.resources:
            name, configs = resource[3], resource[4]
            out[name] = next(c[1] for c in configs if c[0] == "retention.ms")
    return out


async def test_the_compose_topology_runs_natively(
    compose: dict[str, Any], empty_stack: Settings, tmp_path: Path
) -> None:
    await asyncio.to_thread(run_topic_job, compose, empty_stack)
    kept = await retention(empty_stack)
    assert kept == {
        "modelview.predictions": "604800000",
        "modelview.tags": "604800000",
        "modelview.model-events": "-1",
        "modelview.dead-letters": "2592000000",
        "modelview.lineage": "604800000",
        "modelview.erasures": "-1",
        "modelview.erasure-orders": "-1",
    }
    # Each compose worker's environment, with the addresses of the services run here.
    ports = free_block(3)
    members = []
    for i, service in enumerate(sorted(workers(compose).items())):
        settings = settings_of(service[1]).with_(
            broker_url=empty_stack.broker_url,
            s3_endpoint=empty_stack.s3_endpoint,
            web_host="127.0.0.1",
            web_bind="",
            web_port=ports + i,
            data_dir=tmp_path / service[0],
        )
        assert settings.partitions == empty_stack.partitions
        members.append(WorkerProcess(settings, tmp_path / f"{service[0]}.log").start())
    try:
        await check_the_cluster(members, empty_stack)
    finally:
        for member in members:
            member.kill()


async def check_the_cluster(members: list[WorkerProcess], settings: Settings) -> None:
    await asyncio.to_thread(wait_cluster_ready, members)
    workload = build(n_predictions=500, seed=61)
    async with KafkaPublisher(settings.bootstrap_servers, validate=False) as kafka:
        await send_kafka(kafka, workload.items)
    await asyncio.to_thread(wait_cluster_caught_up, members)
    await all_equal(members, workload)
    for member in members:
        async with HttpClient(member.url) as http:
            status, _ = await http.get("/livez")
            assert status == 200
