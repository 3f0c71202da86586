"""Topic names: part of the public contract."""

from __future__ import annotations

PREDICTIONS = "modelview.predictions"
TAGS = "modelview.tags"
MODEL_EVENTS = "modelview.model-events"
DEAD_LETTERS = "modelview.dead-letters"
# Which snapshots and validations used each event, keyed by event and by tag (`app.domain.lineage`).
LINEAGE = "modelview.lineage"

# Erasure requests and their progress, keyed by erasure id (`app.domain.erasure`).
ERASURES = "modelview.erasures"
# What each source partition's views must forget: co-partitioned with the predictions.
ERASURE_ORDERS = "modelview.erasure-orders"

CONTRACT = (PREDICTIONS, TAGS, MODEL_EVENTS, DEAD_LETTERS, LINEAGE, ERASURES, ERASURE_ORDERS)

# The topics whose records are the source of truth, kept forever as cold segments; the views
# are their fold. An order applies whatever offsets a fold stops at (`app.views.refold`).
LOGGED = (PREDICTIONS, TAGS, ERASURE_ORDERS)

# What the flusher keeps in S3 and a restore puts back: the log, and the model events,
# lineage records and erasures the registry, lineage and erasures tables are folded from.
COLD = (PREDICTIONS, TAGS, ERASURE_ORDERS, MODEL_EVENTS, LINEAGE, ERASURES)
