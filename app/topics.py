"""Topic names: part of the public contract."""

from __future__ import annotations

PREDICTIONS = "modelview.predictions"
TAGS = "modelview.tags"
MODEL_EVENTS = "modelview.model-events"
DEAD_LETTERS = "modelview.dead-letters"

CONTRACT = (PREDICTIONS, TAGS, MODEL_EVENTS, DEAD_LETTERS)

# The topics whose records are the source of truth, kept forever as cold segments.
LOGGED = (PREDICTIONS, TAGS)

# What the flusher keeps in S3 and a restore puts back: the log, and the model events the
# registry is folded from.
COLD = (PREDICTIONS, TAGS, MODEL_EVENTS)
