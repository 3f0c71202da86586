"""Test data: valid events as JSON dicts, with overrides."""

from __future__ import annotations

import uuid
from typing import Any


def prediction(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "model": "flight-delay",
        "model_version": "3",
        "occurred_at": "2026-11-27T10:00:00Z",
        "features": {"distance": 1400, "carrier": "UA"},
        "prediction": {"value": 12.5},
        "entity_id": "UA-100",
        "context": {},
    }
    event.update(overrides)
    return event


def tag(event_id: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "tag_id": str(uuid.uuid4()),
        "event_id": event_id,
        "label": 17.0,
        "datasets": ["flights-train"],
        "source": "arrivals",
        "tagged_at": "2026-11-27T13:00:00Z",
    }
    event.update(overrides)
    return event
