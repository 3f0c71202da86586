"""Every HTTP path and the module-level view that answers it: the API at a glance."""

from __future__ import annotations

import faust
from faust.web import View

from app.web import (
    dashboard,
    datasets,
    drift,
    erasures,
    events,
    health,
    internal,
    lineage,
    metrics,
    models,
    openapi,
    predict,
    scores,
)
from app.web.context import Web, attach

ROUTES: list[tuple[str, type[View]]] = [
    ("/v1/predictions", events.Predictions),
    ("/v1/tags", events.Tags),
    ("/v1/predictions/{event_id}", events.PredictionDetail),
    ("/v1/predictions/{event_id}/lineage", lineage.EventLineage),
    ("/v1/tags/{tag_id}/lineage", lineage.TagLineage),
    ("/v1/erasures", erasures.Erasures),
    ("/v1/erasures/{erasure_id}", erasures.ErasureDetail),
    ("/v1/datasets", datasets.Datasets),
    ("/v1/datasets/{name}", datasets.DatasetDetail),
    ("/v1/models", models.Models),
    ("/v1/models/{model}", models.ModelDetail),
    ("/v1/models/{model}/metrics", models.ModelMetrics),
    ("/v1/models/{model}/drift", drift.ModelDrift),
    ("/v1/models/{model}/predict", predict.Predict),
    ("/v1/models/{model}/versions/{version}/validation", predict.Validation),
    ("/v1/models/{model}/scores/{job}", scores.ScoreJob),
    ("/internal/v1/views", internal.InternalViews),
    ("/internal/v1/registry", internal.InternalRegistry),
    ("/healthz", health.Health),
    ("/livez", health.Live),
    ("/metrics", metrics.Metrics),
    ("/openapi.json", openapi.OpenApi),
    ("/dashboard", dashboard.Dashboard),
]


def register(app: faust.App, web: Web) -> None:
    attach(app, web)
    for path, view in ROUTES:
        app.page(path)(view)
