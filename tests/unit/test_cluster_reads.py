"""Cluster reads: each partition from its ready active owner, equal to one store holding all."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from app.views.cluster import ClusterReads, Incomplete, Owners, partition_of, serve_views
from app.views.queries import Queries, ViewsRead
from tests.unit.test_exactly_once import make_log, run

PARTITIONS = 4


def folded(seed: int) -> dict[str, bytes]:
    """One store holding every partition's views, each folded from its own messy log."""
    store: dict[str, bytes] = {}
    rng = random.Random(seed)
    for p in range(PARTITIONS):
        records, _ = make_log(rng, 60)
        records = [r._replace(partition=p) for r in records]
        part: dict[str, bytes] = {}
        run(part, records, batch=7)
        # The fold wrote under partition 0; file its keys under p, as a worker of p would.
        for key, value in part.items():
            if partition_of(key) == 0:
                parts = key.split("/")
                parts[1] = str(p)
                key = "/".join(parts)
            store[key] = value
    return store


class Cluster:
    """Workers that ask each other in memory, as they would over HTTP."""

    def __init__(self, store: dict[str, bytes], spread: dict[str, set[int]]) -> None:
        self.spread = spread
        self.ready = dict(spread)
        self.readers: dict[str, ClusterReads] = {}
        for url, held in spread.items():
            local = {k: v for k, v in store.items() if partition_of(k) in held}
            # A stale standby copy of every other partition: it must never be read.
            local |= {
                k: orjson.dumps({"stale": True})
                for k in store
                if partition_of(k) is not None and partition_of(k) not in held
            }
            owners = Owners(lambda url=url: self.ready[url], lambda: self.spread, url)
            reader = ClusterReads(local, PARTITIONS, owners, lambda: ([], set()))
            reader._ask = self._asker()  # type: ignore[method-assign]
            self.readers[url] = reader

    def _asker(self) -> Any:
        async def ask(url: str, keys: list[str], parts: set[int]) -> dict[str, bytes | None]:
            status, answer = serve_views(self.readers[url], {"keys": keys, "partitions": parts})
            if status != 200:
                raise Incomplete(set(answer["details"]["partitions"]), str(status))
            return {k: v.encode() if v else None for k, v in answer["values"].items()}

        return ask


def views(read: ViewsRead) -> tuple[Any, ...]:
    datasets = [read.dataset(n) for n in read.dataset_names()]
    return datasets, read.model_metrics("flight-delay"), read.labeled()


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_worker_answers_as_one_store_holding_all(seed: int) -> None:
    store = folded(seed)
    truth = views(Queries(store, PARTITIONS).read())
    assert truth[0], "the workload has datasets"
    cluster = Cluster(store, {"http://a": {0, 1}, "http://b": {2}, "http://c": {3}})
    for reader in cluster.readers.values():
        assert await reader.run(views) == truth


async def test_a_partition_without_a_ready_owner_fails_the_read_and_is_named() -> None:
    cluster = Cluster(folded(3), {"http://a": {0, 1}, "http://b": {2, 3}})
    cluster.ready["http://b"] = {3}  # b is still recovering partition 2
    with pytest.raises(Incomplete) as failed:
        await cluster.readers["http://a"].run(views)
    assert failed.value.partitions == {2}
    cluster.spread = {"http://a": {0, 1}, "http://b": {2}}  # and nobody holds 3 at all
    cluster.ready["http://b"] = {2}
    with pytest.raises(Incomplete, match="no worker holds them") as failed:
        await cluster.readers["http://a"].run(views)
    assert failed.value.partitions == {3}


def test_owners_refuse_keys_outside_the_partitions_asked_for() -> None:
    cluster = Cluster(folded(4), {"http://a": {0, 1}, "http://b": {2, 3}})
    status, _ = serve_views(cluster.readers["http://a"], {"keys": ["idx/2"], "partitions": [0]})
    assert status == 400
    status, _ = serve_views(cluster.readers["http://a"], {"nope": 1})
    assert status == 400
