"""The `examples` view: a prediction joined with its latest tag; one pure step per event type."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from app.domain.events import PredictionEvent, TagEvent


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same fact again: counted once
    CONFLICT = "conflict"  # a reused event_id with different content: kept out, reported
    SUPERSEDED = "superseded"  # an older tag arriving late: logged, not the latest


@dataclass(frozen=True, slots=True)
class Example:
    """What is known about one prediction; a tag that came first waits here for its prediction."""

    event_id: str
    prediction: PredictionEvent | None = None
    tag: TagEvent | None = None
    tag_ids: frozenset[str] = frozenset()

    @property
    def joined(self) -> bool:
        return self.prediction is not None and self.tag is not None


def apply_prediction(example: Example | None, event: PredictionEvent) -> tuple[Example, Outcome]:
    if example is None:
        return Example(event.event_id, prediction=event), Outcome.APPLIED
    if example.prediction is None:
        return replace(example, prediction=event), Outcome.APPLIED
    if example.prediction == event:
        return example, Outcome.DUPLICATE
    return example, Outcome.CONFLICT


def apply_tag(example: Example | None, tag: TagEvent) -> tuple[Example, Outcome]:
    current = example or Example(tag.event_id)
    if tag.tag_id in current.tag_ids:
        return current, Outcome.DUPLICATE
    seen = current.tag_ids | {tag.tag_id}
    # Latest by tagged_at; on a tie the later one in the log wins, and we see the log in order.
    if current.tag is None or tag.tagged_at >= current.tag.tagged_at:
        return replace(current, tag=tag, tag_ids=seen), Outcome.APPLIED
    return replace(current, tag_ids=seen), Outcome.SUPERSEDED
