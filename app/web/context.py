"""What the route handlers read: built once by bootstrap, found from any view through its app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.web import View
from prometheus_client import CollectorRegistry

from app.models.adapters import Adapters
from app.models.serving import Predictor
from app.settings import Settings
from app.views.cluster import ClusterReads
from app.views.queries import Queries


@dataclass
class Web:
    app: faust.App
    settings: Settings
    table: Any  # the views table: event reads are routed to its owner
    lineage: Any  # the lineage table, keyed by event id and by tag id
    queries: Queries  # this worker's views
    reads: ClusterReads  # the whole cluster's views and registry
    predictor: Predictor
    adapters: Adapters
    topics: Mapping[str, Any]  # the topics the API publishes to, by name
    status: Callable[[], dict[str, Any]]  # ingest, flush, training and serving, for /healthz
    metrics: CollectorRegistry  # this worker's Prometheus metrics
    # Snapshot statistics by "dataset/snapshot_id": immutable, so read once.
    drift_cache: dict[str, dict[str, float]] = field(default_factory=dict)
    erasures: Any = None  # the erasures table, keyed by erasure id


def web_of(view: View) -> Web:
    found: Web = getattr(view.app, _ATTRIBUTE)
    return found


def attach(app: faust.App, web: Web) -> None:
    setattr(app, _ATTRIBUTE, web)


_ATTRIBUTE = "modelview_web"
