"""`/v1/datasets`: each dataset's size and labels, the whole cluster's answer, with how many
labeled examples arrived since a model was last trained on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.web import Request, Response, View

from app.domain.registry import training_marks
from app.views.cluster import Incomplete
from app.web.context import web_of
from app.web.errors import error, incomplete


class Datasets(View):
    async def get(self, request: Request) -> Response:
        reads = web_of(self).reads
        try:
            found = await reads.run(lambda s: [s.dataset(name) for name in s.dataset_names()])
            marks = training_marks(await reads.registry())
        except Incomplete as exc:
            return incomplete(self, exc)
        return self.json({"datasets": [_marked(d, marks) for d in found if d is not None]})


class DatasetDetail(View):
    async def get(self, request: Request, name: str) -> Response:
        reads = web_of(self).reads
        try:
            found = await reads.run(lambda s: s.dataset(name))
            if found is None:
                return error(self, 404, "no such dataset", {"name": name})
            return self.json(_marked(found, training_marks(await reads.registry())))
        except Incomplete as exc:
            return incomplete(self, exc)


def _marked(dataset: dict[str, Any], marks: Mapping[str, int]) -> dict[str, Any]:
    """Labeled examples that arrived since the last snapshot a model was trained on."""
    mark = marks.get(dataset["name"], 0)
    return {**dataset, "new_since_training": max(0, dataset["labeled"] - mark)}
