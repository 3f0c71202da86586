"""The local Apache Kafka node's pinned version and config, without starting it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from app.stack.kafka import POM, VERSION, cluster_id, server_properties

ROOT = Path(__file__).resolve().parents[2]


def test_one_kafka_version_for_the_pom_and_compose() -> None:
    versions = set(
        re.findall(r"<artifactId>kafka_2\.13</artifactId>\s*<version>([^<]+)", POM.read_text())
    )
    assert versions == {VERSION}
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    images = {s["image"] for s in compose["services"].values() if "kafka" in s.get("image", "")}
    assert images == {f"apache/kafka:{VERSION}"}


def test_a_single_combined_kraft_node_on_loopback() -> None:
    props = dict(
        line.split("=", 1) for line in server_properties(9092, 40123, Path("/d")).splitlines()
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:40123"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["log.dirs"] == "/d"
    assert props["offsets.topic.replication.factor"] == "1"


def test_cluster_ids_never_look_like_an_option_to_the_storage_tool() -> None:
    ids = [cluster_id() for _ in range(5000)]  # about 78 would start with "-" unguarded
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
