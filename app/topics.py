"""Topic names: part of the public contract."""

from __future__ import annotations

PREDICTIONS = "modelview.predictions"
TAGS = "modelview.tags"
MODEL_EVENTS = "modelview.model-events"
DEAD_LETTERS = "modelview.dead-letters"
# Which snapshots and validations used each event, keyed by event and by tag (`app.domain.lineage`).
LINEAGE = "modelview.lineage"

CONTRACT = (PREDICTIONS, TAGS, MODEL_EVENTS, DEAD_LETTERS, LINEAGE)

# The topics whose records are the source of truth, kept forever as cold segments.
LOGGED = (PREDICTIONS, TAGS)

# What the flusher keeps in S3 and a restore puts back: the log, and the model events and
# lineage records the registry and lineage tables are folded from.
COLD = (PREDICTIONS, TAGS, MODEL_EVENTS, LINEAGE)
