"""Apache Kafka for the local stack: one KRaft node on Maven Central's jars, run by Java 17."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

POM = Path(__file__).with_name("kafka-runtime.pom.xml")
# Kept in step with the pom's <version> (a unit test checks) and docker/compose.yaml's image.
VERSION = "4.1.1"
MIN_JAVA = 17


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot run here: no Java 17, or its jars were never fetched."""


def libs_dir() -> Path:
    """Inside the environment that installed modelview: a fresh venv fetches its own, and
    a changed pom (its hash names the folder) fetches again."""
    pom = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return Path(sys.prefix) / "share" / "modelview" / f"kafka-{VERSION}-{pom}" / "libs"


def java() -> str:
    """The `java` that runs the broker: JAVA_HOME's if set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if candidate is None or not os.access(candidate, os.X_OK):
        raise KafkaUnavailable(
            f"Apache Kafka needs Java {MIN_JAVA}+ and no `java` was found; install it "
            "(apt-get install openjdk-17-jre-headless) or run the Tansu broker instead "
            "(MODELVIEW_BROKER_PROFILE=tansu)"
        )
    major = java_major(candidate)
    if major < MIN_JAVA:
        raise KafkaUnavailable(
            f"Apache Kafka {VERSION} needs Java {MIN_JAVA}+, and {candidate} is Java {major}; "
            "set JAVA_HOME or run the Tansu broker instead (MODELVIEW_BROKER_PROFILE=tansu)"
        )
    return candidate


@functools.cache
def java_version(binary: str) -> str:
    """What `binary -version` says: the Java's vendor, version and build."""
    out = subprocess.run(
        [binary, "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    return out.stderr + out.stdout


def java_major(binary: str) -> int:
    # `openjdk version "17.0.15"`, or "1.8.0_392" for Java 8.
    found = re.search(r'version "(\d+)(?:\.(\d+))?', java_version(binary))
    if found is None:
        return 0
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def available() -> str | None:
    """Why Apache Kafka cannot run here, or None when it can."""
    try:
        java()
    except KafkaUnavailable as exc:
        return str(exc)
    if not any(libs_dir().glob("kafka_2.13-*.jar")):
        return (
            f"Apache Kafka's jars are not in {libs_dir()}; `bash scripts/setup.sh` fetches "
            "them (with Maven), or run the Tansu broker instead (MODELVIEW_BROKER_PROFILE=tansu)"
        )
    return None


def fetch() -> Path:
    """Resolve the pinned pom's jars with Maven (cached in ~/.m2) into `libs_dir()`, once."""
    target = libs_dir()
    if any(target.glob("kafka_2.13-*.jar")):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable("Maven (`mvn`) is needed once, to fetch Apache Kafka's jars")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    partial.rename(target)  # a fetch cut short leaves no half classpath behind
    return target


def class_archive(binary: str) -> Path:
    """Where the broker's classes, loaded and verified once, are kept for this Java
    (`make_class_archive`): a JVM maps them from there rather than read them from the jars
    again. Measured on a broker's start (2026-12-07, 2 cores): listening after 1.25 s
    rather than 2.2 s, and 2.1 s of CPU rather than 3.7; the storage format, 0.38 s rather
    than 0.68. Each test starts a stack of its own, so this is a minute of the suite.
    An archive is valid only for the Java that wrote it, hence its name."""
    build = hashlib.sha256(java_version(binary).encode()).hexdigest()[:12]
    return libs_dir().parent / f"classes-java-{build}.jsa"


class KafkaNode:
    """A combined broker and controller whose config, log and data live under `root`."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "kafka-data"
        self.config = root / "kafka.properties"
        self.log4j = root / "kafka-log4j2.xml"

    def prepare(self, archive_to: Path | None = None) -> list[str]:
        """Write the config, format storage on first use, and return the start command:
        one that reads the class archive if there is one, or, given `archive_to`, one that
        writes it there as the broker exits.

        The controller listens on a port the OS picks anew each start: it is internal to
        this one node, and a fixed one could collide with the ports users choose.
        """
        binary = java()
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(server_properties(self.port, _ephemeral_port(), self.data))
        self.log4j.write_text(LOG4J2)
        classpath = f"{libs_dir()}/*"
        jvm = [binary, "-Xms128m", "-Xmx768m", f"-Dlog4j2.configurationFile={self.log4j}"]
        archive = class_archive(binary)
        if archive_to is None and archive.exists():
            # A stale or unreadable one is passed over by the JVM, with a warning in the log.
            jvm.append(f"-XX:SharedArchiveFile={archive}")
        if not (self.data / "meta.properties").exists():
            subprocess.run(
                [
                    *jvm,
                    # A short task: the client compiler alone starts it in about half the time.
                    "-XX:TieredStopAtLevel=1",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    cluster_id(),
                    "--config",
                    str(self.config),
                    "--ignore-formatted",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        dump = [f"-XX:ArchiveClassesAtExit={archive_to}"] if archive_to else []
        return [*jvm, *dump, "-cp", classpath, "kafka.Kafka", str(self.config)]

    def forget_log(self) -> None:
        """Delete the node's whole log, as a lost disk would: for restore drills and tests."""
        shutil.rmtree(self.data, ignore_errors=True)


def make_class_archive(within: float = 120.0) -> Path:
    """Write `class_archive` once: start a broker that dumps the classes it loaded as it
    exits, have it create a topic, take a record and serve a group (so the classes of
    the requests every stack serves are in it too), then stop it."""
    target = class_archive(java())
    if target.exists():
        return target
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        node = KafkaNode(Path(tmp), _ephemeral_port())
        log_path = Path(tmp) / "broker.log"
        with log_path.open("wb") as log:
            broker = subprocess.Popen(
                node.prepare(archive_to=partial),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            asyncio.run(_exercise(f"127.0.0.1:{node.port}", broker, within))
        finally:
            broker.terminate()  # the JVM writes the archive on its way out
            broker.wait(60)
        if not partial.exists():
            raise KafkaUnavailable(
                f"the broker wrote no class archive; its log ends:\n{log_path.read_text()[-2000:]}"
            )
    # Java 17 passes over an archive it cannot use, but dies (SIGBUS) on one cut short:
    # one that does not open as the only archive allowed is never put in place.
    opens = [f"-XX:SharedArchiveFile={partial}", "-Xshare:on", "-cp", f"{libs_dir()}/*"]
    check = subprocess.run(
        [java(), *opens, "-version"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if check.returncode != 0:
        partial.unlink()
        raise KafkaUnavailable(f"the class archive written does not open: {check.stdout[-500:]!r}")
    partial.rename(target)
    return target


async def _exercise(bootstrap: str, broker: subprocess.Popen[bytes], within: float) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    # Its retries while the broker starts, and while the group's coordinator is elected,
    # are expected here: not worth a line of setup's output each.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    host, port = bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + within
    while not _listening(host, int(port)):
        if broker.poll() is not None:
            raise KafkaUnavailable(f"the broker exited ({broker.returncode}) while starting")
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"the broker did not listen within {within:.0f} s")
        await asyncio.sleep(0.1)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("warm", num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait("warm", b"value", key=b"key")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "warm", bootstrap_servers=bootstrap, group_id="warm", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getone(), within)
        await consumer.commit()
    finally:
        await consumer.stop()


def tool_command(main_class: str) -> list[str]:
    """A Kafka command-line tool on the same classpath, e.g. org.apache.kafka.tools.TopicCommand."""
    return [java(), "-Xmx256m", "-cp", f"{libs_dir()}/*", main_class]


def server_properties(port: int, controller_port: int, data: Path) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        # One node: every internal topic has one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Topics are created by ensure_topics with the configured partition count; a client
        # that merely asks for a missing one (a worker during a restore) must not create it
        # with the broker's default of one.
        "auto.create.topics.enable": "false",
        # A first group join waits 3 s by default for more members; workers join one by one.
        "group.initial.rebalance.delay.ms": "0",
        # The default 50 partitions cost seconds of start-up and thousands of files.
        "offsets.topic.num.partitions": "8",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


LOG4J2 = """<Configuration status="warn">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="out"/></Root>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.raft" level="warn"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="warn"/>
    <Logger name="kafka.log.LogManager" level="warn"/>
  </Loggers>
</Configuration>
"""


def cluster_id() -> str:
    """A random id in Kafka's form (22 URL-safe base64 characters). Never one that starts
    with "-": the storage tool's parser takes it for an option (about 1 id in 64; Kafka's
    own Uuid.randomUuid skips those too)."""
    while True:
        made = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not made.startswith("-"):
            return made


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _ephemeral_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def choose() -> str:
    """The broker profile for a machine: Apache Kafka where it can run, else Tansu, said why."""
    why = available()
    if why is None:
        return "kafka"
    print(f"modelview: running the Tansu broker: {why}", file=sys.stderr)
    return "tansu"


if __name__ == "__main__":
    # `python -m app.stack.kafka fetch`: scripts/setup.sh, where Java and Maven are found: the
    # jars, then the class archive made with them.
    # `python -m app.stack.kafka choose`: prints the broker profile the scripts' stack will run.
    if sys.argv[1:] == ["fetch"]:
        print(f"Apache Kafka {VERSION} jars in {fetch()}")
        try:
            print(f"its class archive for this Java: {make_class_archive()}")
        except Exception as exc:  # the stack starts without it, only slower: say so, go on
            print(f"modelview: no class archive for the broker ({exc!r})", file=sys.stderr)
    elif sys.argv[1:] == ["choose"]:
        print(choose())
    else:
        sys.exit("usage: python -m app.stack.kafka fetch|choose")
