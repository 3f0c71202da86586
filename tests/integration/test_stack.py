"""The local stack: real Tansu and SeaweedFS processes, started by `app.stack.services`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from botocore.exceptions import ClientError

from app.s3 import s3_client
from app.settings import Settings
from app.stack.kafka import class_archive, java
from app.stack.services import Stack, StackError
from tests.services import env_for, stack_settings

pytestmark = pytest.mark.integration


async def test_broker_and_object_store_answer(stack: Settings) -> None:
    status = Stack(stack).status()
    assert all(s["listening"] and s["pid"] for s in status.values()), status

    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic("probe", num_partitions=3, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    await producer.send_and_wait("probe", b"hello", key=b"k", partition=2)
    await producer.stop()
    consumer = AIOKafkaConsumer(
        "probe", bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert (message.value, message.partition) == (b"hello", 2)

    async with s3_client(stack) as s3:
        await s3.put_object(Bucket=stack.s3_bucket, Key="probe/x", Body=b"data")
        got = await s3.get_object(Bucket=stack.s3_bucket, Key="probe/x")
        assert await got["Body"].read() == b"data"
    wrong = stack.with_(s3_secret_key="not-the-secret")
    async with s3_client(wrong) as s3:
        with pytest.raises(
            ClientError, match=r"SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"
        ):
            await s3.get_object(Bucket=stack.s3_bucket, Key="probe/x")


async def test_object_store_data_survives_down_and_up(stack: Settings) -> None:
    async with s3_client(stack) as s3:
        await s3.put_object(Bucket=stack.s3_bucket, Key="keep/me", Body=b"1")
    local = Stack(stack)
    local.down()
    assert not any(s["listening"] for s in local.status().values())
    local.up()
    async with s3_client(stack) as s3:
        got = await s3.get_object(Bucket=stack.s3_bucket, Key="keep/me")
        assert await got["Body"].read() == b"1"


def test_apache_kafka_starts_from_the_class_archive_setup_made(stack: Settings) -> None:
    if stack.broker != "kafka":
        pytest.skip("the Tansu broker is no JVM")
    archive = class_archive(java())
    assert archive.exists(), "scripts/setup.sh makes it: `python -m app.stack.kafka fetch`"
    pid = Stack(stack).broker.pid()
    assert pid is not None
    # Mapped, not merely named on the command line: a JVM passes over an archive it
    # cannot use.
    assert str(archive) in Path(f"/proc/{pid}/maps").read_text()


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    with socket.socket() as blocker:
        # free_block() checks with SO_REUSEADDR, so a port an earlier test left in TIME_WAIT
        # counts as free: bind the same way, or the blocker itself fails to bind.
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", settings.broker_port))
        blocker.listen()
        with pytest.raises(
            StackError, match=rf"port\(s\) \[{settings.broker_port}\] already in use"
        ):
            Stack(settings).up()
    Stack(settings).down()


def test_cli_status_reports_and_exits_nonzero_when_down(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    modelview = str(Path(sys.executable).parent / "modelview")
    out = subprocess.run(
        [modelview, "stack", "status"], env=env_for(settings), capture_output=True, text=True
    )
    assert out.returncode == 1 and '"listening": false' in out.stdout
    bad = subprocess.run(
        [modelview, "stack", "status"],
        env={**env_for(settings), "MODELVIEW_NOPE": "1"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unknown setting MODELVIEW_NOPE" in bad.stderr
