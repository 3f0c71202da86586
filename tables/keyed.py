"""A table of raw bytes keys and values, partitioned like its source topic: what the registry
and lineage tables are (the agents encode and decode their values themselves)."""

from __future__ import annotations

from typing import Any

import faust

from app.settings import Settings


def bytes_table(app: faust.App, name: str, settings: Settings, help: str) -> Any:
    return app.Table(
        name,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help=help,
    )
