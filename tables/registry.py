"""The `registry` table: one entry per model, folded from `modelview.model-events`."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings
from tables.keyed import bytes_table

TABLE_NAME = "registry"


def define(app: faust.App, settings: Settings) -> Any:
    return bytes_table(app, TABLE_NAME, settings, help="model versions, lineage, champion")
