"""The `erasures` table: per erasure id, its request and how far it has gone, folded from
`modelview.erasures` (`app.domain.erasure`)."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings
from tables.keyed import bytes_table

TABLE_NAME = "erasures"


def define(app: faust.App, settings: Settings) -> Any:
    return bytes_table(app, TABLE_NAME, settings, help="erasure requests and their progress")
