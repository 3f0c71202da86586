"""`GET /metrics` for Prometheus: read at scrape time from what the worker already counts.

Nothing is counted twice: the collector turns the ingest counters, the flusher's status,
the retrainer's completed trainings, the Predictor's counts and the views' per-version
aggregates into metric families when Prometheus asks, from a registry of this app's own
(tests run several apps in one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from app.views.queries import ViewsRead
from app.web.context import web_of

Status = Callable[[], Mapping[str, Any]]
CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp adds the charset itself


class StatusCollector(Collector):
    def __init__(
        self,
        ingest: Mapping[str, int],
        flush: Status,
        trainings: Callable[[], list[dict[str, Any]]],
        serving: Status,
        held_here: Callable[[], ViewsRead],
        drift: Callable[[], Mapping[tuple[str, str], float]] = dict,
    ) -> None:
        self.ingest, self.flush, self.trainings, self.serving = ingest, flush, trainings, serving
        self.held_here = held_here
        self.drift = drift

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "modelview_events", "Log records folded into the views, by outcome", labels=["outcome"]
        )
        for outcome in ("applied", "duplicates", "dead_letters", "replayed", "retries"):
            events.add_metric([outcome], self.ingest.get(outcome, 0))
        yield events

        flush = self.flush()
        yield GaugeMetricFamily(
            "modelview_flush_lag_records", "Log records not yet in S3", flush["lag_records"]
        )
        yield GaugeMetricFamily(
            "modelview_flush_oldest_unflushed_seconds",
            "Age of the oldest record not yet in S3",
            flush["oldest_unflushed_seconds"],
        )
        yield CounterMetricFamily(
            "modelview_flush_segments", "Cold segments written", flush["segments_written"]
        )
        yield CounterMetricFamily(
            "modelview_flush_failures", "Failed segment writes", flush["failures"]
        )

        trainings = SummaryMetricFamily(
            "modelview_training_seconds", "Retrainings done here", labels=["model"]
        )
        validations = SummaryMetricFamily(
            "modelview_validation_seconds", "Replay validations after retraining", labels=["model"]
        )
        by_model: dict[str, list[tuple[float, float | None]]] = {}
        for done in self.trainings():
            seconds = (done.get("validation") or {}).get("seconds")
            by_model.setdefault(done["model"], []).append((done["seconds"], seconds))
        for model, runs in sorted(by_model.items()):
            trainings.add_metric([model], len(runs), sum(t for t, _ in runs))
            checked = [v for _, v in runs if v is not None]
            validations.add_metric([model], len(checked), sum(checked))
        yield trainings
        yield validations

        serving = self.serving()
        served = CounterMetricFamily(
            "modelview_predictions_served",
            "Predictions answered by the Predictor",
            labels=["model", "version"],
        )
        for name, count in serving.get("served", {}).items():
            model, _, version = name.rpartition(":")
            served.add_metric([model, version], count)
        yield served
        capture = serving.get("capture", {})
        yield GaugeMetricFamily(
            "modelview_capture_waiting", "Predictions waiting for Kafka", capture.get("waiting", 0)
        )
        yield CounterMetricFamily(
            "modelview_capture_refused",
            "Predictions refused because the capture buffer was full",
            capture.get("refused", 0),
        )

        views = self.held_here()
        logged = GaugeMetricFamily(
            "modelview_model_predictions",
            "Prediction events in this worker's active partitions, per model version",
            labels=["model", "version"],
        )
        labeled = GaugeMetricFamily(
            "modelview_model_labeled",
            "Labeled prediction events in this worker's active partitions, per model version",
            labels=["model", "version"],
        )
        for model in views.model_names():
            for version, metrics in sorted((views.model_metrics(model) or {}).items()):
                logged.add_metric([model, version], metrics.get("predictions", 0))
                labeled.add_metric([model, version], metrics.get("labeled", 0))
        yield logged
        yield labeled

        psi = GaugeMetricFamily(
            "modelview_drift_psi",
            "PSI of the last 24 hours seen against the champion's training snapshot, per field "
            "(@prediction, @label too); from the leader, every MODELVIEW_DRIFT_SECONDS",
            labels=["model", "field"],
        )
        for (model, name), value in sorted(self.drift().items()):
            psi.add_metric([model, name], value)
        yield psi


def collected(collector: StatusCollector) -> CollectorRegistry:
    """A Prometheus registry of this worker's own, so two apps in one process never mix."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


class Metrics(View):
    async def get(self, request: Request) -> Response:
        registry = web_of(self).metrics
        return self.bytes(generate_latest(registry), content_type=CONTENT_TYPE)
