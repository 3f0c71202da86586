"""The `lineage` table: per event id and per tag id, the snapshots and validations that used
it, folded from `modelview.lineage` (`app.domain.lineage`)."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings
from tables.keyed import bytes_table

TABLE_NAME = "lineage"


def define(app: faust.App, settings: Settings) -> Any:
    return bytes_table(
        app,
        TABLE_NAME,
        settings,
        help="snapshots and validations that used each event, by event id and by tag id",
    )
