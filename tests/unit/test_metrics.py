"""The Prometheus exposition: families built at scrape time from the worker's own counts."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from app.web.metrics import StatusCollector


class Views:
    def model_names(self) -> list[str]:
        return ["delay"]

    def model_metrics(self, model: str) -> dict[str, Any]:
        return {"1": {"predictions": 10, "labeled": 4}, "2": {"predictions": 3, "labeled": 0}}


def test_every_family_reads_the_live_status() -> None:
    flush = {
        "lag_records": 7,
        "oldest_unflushed_seconds": 1.5,
        "segments_written": 2,
        "failures": 1,
    }
    serving = {"served": {"delay:2": 200}, "capture": {"waiting": 3, "refused": 5}}
    trainings = [
        {"model": "delay", "seconds": 2.0, "validation": {"seconds": 0.5}},
        {"model": "delay", "seconds": 4.0, "validation": None},
    ]
    ingest = {"applied": 100, "dead_letters": 2}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        StatusCollector(  # type: ignore[arg-type]
            ingest,
            lambda: flush,
            lambda: trainings,
            lambda: serving,
            Views,
            lambda: {("delay", "distance"): 0.31, ("delay", "@label"): 0.02},
        )
    )
    text = generate_latest(registry).decode()
    for line in (
        'modelview_events_total{outcome="applied"} 100.0',
        'modelview_events_total{outcome="dead_letters"} 2.0',
        "modelview_flush_lag_records 7.0",
        "modelview_flush_failures_total 1.0",
        'modelview_training_seconds_count{model="delay"} 2.0',
        'modelview_training_seconds_sum{model="delay"} 6.0',
        'modelview_validation_seconds_count{model="delay"} 1.0',
        'modelview_predictions_served_total{model="delay",version="2"} 200.0',
        "modelview_capture_refused_total 5.0",
        'modelview_model_predictions{model="delay",version="1"} 10.0',
        'modelview_model_labeled{model="delay",version="1"} 4.0',
        'modelview_drift_psi{field="distance",model="delay"} 0.31',
        'modelview_drift_psi{field="@label",model="delay"} 0.02',
    ):
        assert line in text, line
    ingest["applied"] = 150  # scraped again: the live value, nothing cached
    assert 'modelview_events_total{outcome="applied"} 150.0' in generate_latest(registry).decode()
