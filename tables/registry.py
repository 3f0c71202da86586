"""The `registry` table: one entry per model, folded from `modelview.model-events`."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings

TABLE_NAME = "registry"


def define(app: faust.App, settings: Settings) -> Any:
    table = app.Table(
        TABLE_NAME,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help="model versions, lineage, champion",
    )
    return table
