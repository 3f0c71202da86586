"""The `lineage` table: per event id and per tag id, the snapshots and validations that used
it, folded from `modelview.lineage` (`app.domain.lineage`)."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings

TABLE_NAME = "lineage"


def define(app: faust.App, settings: Settings) -> Any:
    table = app.Table(
        TABLE_NAME,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help="snapshots and validations that used each event, by event id and by tag id",
    )
    return table
