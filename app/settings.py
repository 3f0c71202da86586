"""One typed settings object, read from `MODELVIEW_*` environment variables once."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from app.learning.hyper import Hyper, HyperError

PREFIX = "MODELVIEW_"


class SettingsError(ValueError):
    """A setting is unknown or has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Everything a worker, the stack and the CLI need; defaults run the local stack."""

    broker_url: str = "kafka://127.0.0.1:9092"
    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_bucket: str = "modelview"
    s3_access_key: str = "modelview"
    s3_secret_key: str = field(default="modelview-secret", repr=False)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # Where the HTTP server listens, when not on WEB_HOST: 0.0.0.0 in a container, whose
    # WEB_HOST is then its name on the network (other workers forward reads there).
    web_bind: str = ""
    data_dir: Path = Path("data")
    partitions: int = 8
    api_token: str | None = field(default=None, repr=False)
    # With API_TOKEN set, writes always need it; reads too when this is on (/healthz never).
    auth_reads: bool = False
    # The broker, for `modelview stack` to start and for the Faust settings that suit it:
    # "kafka" (Apache Kafka: the local stack's on a machine with Java 17, and docker/'s) or
    # "tansu" (the pure-Python stand-in; "local" is its older name).
    broker_profile: str = "kafka"
    # The most records the ingest agent folds at once (one fetch). Bigger batches mean fewer
    # table writes: an aggregate touched by many records of a batch is written once. 8000
    # rather than 2000 wrote a fifth fewer changelog records for bench.ingest's workload
    # (folded in memory, BENCHMARKS.md, 2026-12-06).
    batch_size: int = 8000
    # RocksDB's memory for the views, in MiB, shared by every partition the worker owns:
    # block cache, memtables, index and filter blocks (`tables.memory`).
    views_memory_mb: int = 128
    batch_within: float = 0.2  # unused: the ingest agent folds each fetch (kept: set by users)
    # Largest accepted event or HTTP body, in bytes.
    max_event_bytes: int = 256 * 1024
    max_body_bytes: int = 8 * 1024 * 1024
    app_id: str = "modelview"
    # Cold segments: a partition's new records go to S3 once there are this many, or once the
    # oldest has waited this long. The second bounds what a broker that loses its log loses.
    flush_records: int = 10_000
    flush_seconds: float = 5.0
    # Retraining: a dataset is trained again once this many new labeled examples arrived
    # (0: never), or once some did and this many seconds passed (0: no time trigger).
    retrain_min_labels: int = 0
    retrain_seconds: float = 0.0
    # How often the leader measures each champion's drift for the Prometheus gauges
    # (`modelview_drift_psi`); 0: never (GET /v1/models/{model}/drift still answers).
    drift_seconds: float = 60.0
    # How often each worker advances the erasures it owns past the views (cold segments,
    # snapshots, validation files, registry flags); 0: never.
    erasure_seconds: float = 5.0
    retrain_trainer: str = "baseline"  # baseline, keras or linear
    # The Keras and linear trainers' hyperparameters, NAME=VALUE,... (app/learning/hyper.py):
    # "epochs=80,hidden=64". Empty: their defaults.
    retrain_hyper: str = ""
    # Hours at the end of each retraining's snapshot left out of the fit, so that the
    # validation that follows has out-of-time events to decide on (0: fit on all).
    retrain_leave_recent_hours: float = 0.0
    # Share of event ids (by hash) a retrained version never sees: validation's fixed holdout.
    retrain_holdout: float = 0.2
    # The features retraining fits on, comma-separated (the snapshot's `features`); empty:
    # every feature seen. The events keep all of theirs: this only chooses what is learned.
    retrain_features: str = ""
    # The promotion gate, applied after each retraining's replay validation: see
    # app/domain/gate.py. Improvements and regressions are relative (0.02: 2%).
    gate_metric: str = "auto"
    gate_min_improvement: float = 0.0
    gate_max_segment_regression: float = 0.1
    gate_min_samples: int = 100
    gate_min_segment_samples: int = 30
    gate_confidence: float = 0.95
    # Validation reports: a feature to break metrics down by (empty: none), and a time bucket.
    validation_segment_by: str = ""
    validation_bucket: str = "day"
    # Serving: predictions waiting for Kafka before predict answers 503.
    capture_buffer: int = 10_000
    # "durable": predict answers once the broker acknowledged the captured events (a 503
    # after CAPTURE_ACK_SECONDS); "async": as soon as they are queued, losing what is still
    # queued if the worker dies (at most CAPTURE_BUFFER predictions).
    capture: str = "durable"
    capture_ack_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for key, raw in env.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX) :].lower()
            if name not in fields:
                known = ", ".join(PREFIX + n.upper() for n in fields)
                raise SettingsError(f"unknown setting {key}; known: {known}")
            values[name] = _convert(key, raw, fields[name].type)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.broker_profile not in ("kafka", "tansu", "local"):
            raise SettingsError("MODELVIEW_BROKER_PROFILE must be 'kafka' or 'tansu'")
        if self.partitions < 1:
            raise SettingsError("MODELVIEW_PARTITIONS must be at least 1")
        if self.views_memory_mb < 1:
            raise SettingsError("MODELVIEW_VIEWS_MEMORY_MB must be at least 1")
        if self.flush_records < 1 or self.flush_seconds <= 0:
            raise SettingsError(
                "MODELVIEW_FLUSH_RECORDS and MODELVIEW_FLUSH_SECONDS must be positive"
            )
        if not 0 <= self.retrain_holdout < 1:
            raise SettingsError("MODELVIEW_RETRAIN_HOLDOUT must be at least 0 and below 1")
        if not 0 <= self.gate_confidence < 1:
            raise SettingsError("MODELVIEW_GATE_CONFIDENCE must be at least 0 and below 1")
        if self.validation_bucket not in ("hour", "day", "month"):
            raise SettingsError("MODELVIEW_VALIDATION_BUCKET must be hour, day or month")
        if self.capture not in ("durable", "async"):
            raise SettingsError("MODELVIEW_CAPTURE must be 'durable' or 'async'")
        if self.capture_ack_seconds <= 0:
            raise SettingsError("MODELVIEW_CAPTURE_ACK_SECONDS must be positive")
        if self.capture_buffer < 1:
            raise SettingsError("MODELVIEW_CAPTURE_BUFFER must be at least 1")
        if self.retrain_trainer not in ("baseline", "keras", "linear"):
            raise SettingsError("MODELVIEW_RETRAIN_TRAINER must be baseline, keras or linear")
        if self.retrain_leave_recent_hours < 0:
            raise SettingsError("MODELVIEW_RETRAIN_LEAVE_RECENT_HOURS cannot be negative")
        if not all(self.retrain_feature_names):
            raise SettingsError(
                "MODELVIEW_RETRAIN_FEATURES: write feature names separated by commas, "
                f"got {self.retrain_features!r}"
            )
        try:
            Hyper.parse([self.retrain_hyper])
        except HyperError as exc:
            raise SettingsError(f"MODELVIEW_RETRAIN_HYPER: {exc}") from None
        if self.batch_size < 1:
            raise SettingsError("MODELVIEW_BATCH_SIZE must be at least 1")
        for name, url in (("BROKER_URL", self.broker_url), ("S3_ENDPOINT", self.s3_endpoint)):
            if urlsplit(url).port is None:
                raise SettingsError(f"MODELVIEW_{name} needs an explicit port: {url!r}")

    @property
    def retrain_feature_names(self) -> tuple[str, ...]:
        """`retrain_features` as the snapshot spec takes them (empty: every feature)."""
        text = self.retrain_features.strip()
        return tuple(part.strip() for part in text.split(",")) if text else ()

    @property
    def broker(self) -> str:
        """The broker's kind, "kafka" or "tansu", whichever name the setting used."""
        return "tansu" if self.broker_profile in ("tansu", "local") else "kafka"

    @property
    def broker_port(self) -> int:
        return _port(self.broker_url)

    @property
    def s3_port(self) -> int:
        return _port(self.s3_endpoint)

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL as aiokafka wants it: host:port, comma separated."""
        return ",".join(
            part.split("://", 1)[-1] for part in self.broker_url.replace(";", ",").split(",")
        )

    def with_(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The MODELVIEW_* variables that `from_env` reads back as these settings."""
        return {
            "MODELVIEW_" + field.name.upper(): str(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None
        }


def _port(url: str) -> int:
    port = urlsplit(url.split(",")[0]).port
    assert port is not None  # validate() guarantees it
    return port


def _convert(key: str, raw: str, kind: object) -> object:
    kind = str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r} is not a valid {kind}") from exc
    if kind == "str | None":
        return raw or None
    return raw
