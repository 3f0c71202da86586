"""Broker profiles: every broker-specific Faust setting lives here, named by the broker it suits."""

from __future__ import annotations

from typing import Any

# Tansu 0.6 (the local stack without Java), measured: JoinGroup waits half the session timeout, so keep it
# short; ListOffsets "latest" is wrong after batched writes, which breaks table recovery unless
# every produce is a batch of one; no idempotent producer, so at-least-once only.
TANSU: dict[str, Any] = {
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    "producer_max_batch_size": 1,
    "processing_guarantee": "at_least_once",
    "topic_replication_factor": 1,
}

# Apache Kafka (the local stack and docker/): batching on. A dead worker's partitions move
# after the session timeout, so keep it short as on Tansu; a standby copy of every table
# partition makes the move fast.
KAFKA: dict[str, Any] = {
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 1.0,
    "processing_guarantee": "at_least_once",
    "topic_replication_factor": 1,
    "table_standby_replicas": 1,
}

PROFILES = {"tansu": TANSU, "kafka": KAFKA}
