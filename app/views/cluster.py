"""Reads that are the whole cluster's answer: each partition's keys from its active owner.

Why scatter-gather rather than a global table of partials: the views are already kept per
source partition (`agg/{p}/...`, `idx/{p}`, `wal/{p}`), so a partition's active owner holds
its exact, committed state, and a read that asks every owner once is exact, with no second
copy to keep in step. Standby copies are never read: they may lag. A partition with no
ready owner (mid-rebalance, or an owner unreachable) makes the read fail with the partitions
named; it never returns a silent partial answer.

The query code stays the pure `ViewsRead` methods: a query runs against what has been
fetched so far, the keys it missed are fetched in one request per owner, and it runs again,
until it misses nothing (two or three rounds: indexes, then aggregates).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import orjson

from app.domain import registry
from app.domain.registry import RegistryEntry
from app.topics import PREDICTIONS
from app.views.queries import ViewsRead
from app.views.wal import Store, committed

T = TypeVar("T")
MAX_ROUNDS = 8


class Incomplete(RuntimeError):
    """Some partitions had no ready owner to answer; the read says which instead of guessing."""

    def __init__(self, partitions: set[int], why: str) -> None:
        super().__init__(f"partitions {sorted(partitions)} unavailable: {why}")
        self.partitions = partitions
        self.why = why


class Erased(LookupError):
    """The event was erased: neither it nor what was predicted for it can be answered."""


def partition_of(key: str) -> int | None:
    """The source partition a views key belongs to; None for keys routed by their own key."""
    kind, _, rest = key.partition("/")
    if kind in ("agg", "idx", "wal", "ent", "xent"):
        return int(rest.split("/", 1)[0])
    return None


def is_ready(app: Any) -> bool:
    """Joined the group at least once, no rebalance or recovery under way, tables recovered.

    Holding partitions is not part of it: a member that was given none (Faust's assignor is
    sticky, so a late joiner may get none until the next rebalance) still answers every read.
    """
    return bool(
        app.rebalancing_count > 0
        and not app.rebalancing
        and not app.in_recovery
        and app.tables.actives_ready
    )


def ready_partitions(app: Any, topic: str = PREDICTIONS) -> set[int]:
    """Partitions of `topic` this worker holds active with its tables recovered; none while
    a rebalance or recovery is under way, when its reads would not reflect the log."""
    if not is_ready(app):
        return set()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


class Owners:
    """Who holds each partition now: this worker's ready actives and the others' URLs."""

    def __init__(
        self,
        local_ready: Callable[[], set[int]],
        distribution: Callable[[], Mapping[str, set[int]]],
        me: str,
    ) -> None:
        self.local_ready = local_ready
        self.distribution = distribution
        self.me = me.rstrip("/")

    def others(self) -> list[str]:
        return sorted({url.rstrip("/") for url in self.distribution()} - {self.me})

    def remote(self, partitions: set[int]) -> tuple[dict[str, set[int]], set[int]]:
        """Partitions to ask of each other worker, and those nobody holds."""
        asked: dict[str, set[int]] = {}
        left = set(partitions)
        for url, held in self.distribution().items():
            if url.rstrip("/") == self.me:
                continue
            mine = held & left
            if mine:
                asked[url.rstrip("/")] = mine
                left -= mine
        return asked, left


class ClusterReads:
    """Runs `ViewsRead` queries over every partition, wherever its owner is."""

    def __init__(
        self,
        local: Store,
        partitions: int,
        owners: Owners,
        local_registry: Callable[[], tuple[list[bytes], set[int]]],
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.local = local
        self.partitions = partitions
        self.owners = owners
        self.local_registry = local_registry
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def run(self, query: Callable[[ViewsRead], T]) -> T:
        known: dict[str, bytes | None] = {}
        for _ in range(MAX_ROUNDS):
            seen = _Recording(known, self.local)
            result = query(ViewsRead(seen, self.partitions))
            if not seen.missing:
                return result
            known.update(await self.fetch(seen.missing))
        raise RuntimeError(f"a query kept asking for new keys after {MAX_ROUNDS} rounds")

    async def fetch(self, keys: set[str]) -> dict[str, bytes | None]:
        by_partition: dict[int, list[str]] = {}
        for key in keys:
            p = partition_of(key)
            assert p is not None  # _Recording reads unpartitioned keys locally
            by_partition.setdefault(p, []).append(key)
        ready = self.owners.local_ready()
        here = {p for p in by_partition if p in ready}
        out = self.local_values([k for p in here for k in by_partition[p]], here)
        asked, orphaned = self.owners.remote(set(by_partition) - here)
        if orphaned:
            raise Incomplete(orphaned, "no worker holds them (a rebalance is under way)")
        answers = await asyncio.gather(
            *(
                self._ask(url, [k for p in parts for k in by_partition[p]], parts)
                for url, parts in asked.items()
            )
        )
        for answer in answers:
            out.update(answer)
        return out

    async def registry(self) -> list[RegistryEntry]:
        """Every model's registry entry, from the owners of the model-events partitions."""
        raw, covered = self.local_registry()
        entries = list(raw)
        others = [url for url in self.owners.others()]
        answers = await asyncio.gather(*(self._ask_registry(url) for url in others))
        for more, held in answers:
            entries += more
            covered |= held
        missing = set(range(self.partitions)) - covered
        if missing:
            raise Incomplete(missing, "no ready worker holds these registry partitions")
        # Mid-rebalance two workers may both still list a partition: one entry per model.
        by_model = {}
        for value in entries:
            entry = registry.decode(value)
            by_model[entry.model] = entry
        return [by_model[m] for m in sorted(by_model)]

    async def registry_or(
        self, fold_log: Callable[[], Awaitable[dict[str, RegistryEntry]]]
    ) -> dict[str, RegistryEntry]:
        """Entries by model: the registry's owners answer in one round; `fold_log` (the
        model-events log folded) only when they cannot, mid-rebalance."""
        try:
            return {entry.model: entry for entry in await self.registry()}
        except Incomplete:
            return await fold_log()

    async def _ask_registry(self, url: str) -> tuple[list[bytes], set[int]]:
        try:
            async with self.session().get(
                url + "/internal/v1/registry", headers=self.headers
            ) as response:
                answer = orjson.loads(await response.read())
                if response.status != 200:
                    return [], set()
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return [], set()  # what it held counts as missing, and is named
        return [e.encode() for e in answer["entries"]], {int(p) for p in answer["partitions"]}

    async def prediction(self, event_id: str) -> dict[str, Any] | None:
        """The logged PredictionEvent of `event_id`, or None: asked of this worker's own
        `GET /v1/predictions/{id}`, which Faust routes to the owner of the id's partition."""
        url = f"{self.owners.me}/v1/predictions/{quote(event_id, safe='')}"
        try:
            async with self.session().get(url, headers=self.headers) as response:
                if response.status == 404:
                    return None
                if response.status == 410:
                    raise Erased(event_id)
                body = orjson.loads(await response.read())
                if response.status != 200:
                    raise Incomplete(set(), f"{url} answered {response.status}: {body}")
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise Incomplete(set(), f"{url} did not answer: {exc!r}") from None
        event: dict[str, Any] = body["event"]
        return event

    def held_here(self) -> ViewsRead:
        """The partitions this worker holds active and ready, alone: per-worker gauges, which
        add up across workers to the cluster's (standby copies would count twice)."""
        ready = self.owners.local_ready()
        return ViewsRead(committed(_Only(self.local, ready), self.partitions), self.partitions)

    def local_values(self, keys: list[str], partitions: set[int]) -> dict[str, bytes | None]:
        """Committed values of keys of partitions held here; what the internal endpoint serves."""
        view = committed(_Only(self.local, partitions), self.partitions)
        return {key: view.get(key) for key in keys}

    async def _ask(self, url: str, keys: list[str], parts: set[int]) -> dict[str, bytes | None]:
        body = orjson.dumps({"keys": keys, "partitions": sorted(parts)})
        try:
            async with self.session().post(
                url + "/internal/v1/views", data=body, headers=self.headers
            ) as response:
                answer = orjson.loads(await response.read())
                if response.status != 200:
                    unavailable = set(answer.get("details", {}).get("partitions", parts))
                    raise Incomplete(unavailable, f"{url} answered {response.status}")
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise Incomplete(parts, f"{url} did not answer: {exc!r}") from None
        values: dict[str, str | None] = answer["values"]
        return {k: v.encode() if v is not None else None for k, v in values.items()}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def serve_views(reads: ClusterReads, body: Any) -> tuple[int, dict[str, Any]]:
    """The owner's side of `/internal/v1/views`: committed values, only of ready partitions."""
    try:
        keys = [str(k) for k in body["keys"]]
        wanted = {int(p) for p in body["partitions"]}
    except (KeyError, TypeError, ValueError):
        return 400, {"error": "expected {keys: [...], partitions: [...]}", "details": None}
    if any(partition_of(k) not in wanted for k in keys):
        return 400, {"error": "a key outside the partitions named", "details": None}
    missing = wanted - reads.owners.local_ready()
    if missing:
        details = {"partitions": sorted(missing)}
        return 409, {"error": "partitions not held here (or not ready)", "details": details}
    values = reads.local_values(keys, wanted)
    return 200, {"values": {k: v.decode() if v is not None else None for k, v in values.items()}}


def serve_registry(reads: ClusterReads) -> dict[str, Any]:
    """The owner's side of `/internal/v1/registry`: its ready partitions' entries."""
    raw, held = reads.local_registry()
    return {"entries": [v.decode() for v in raw], "partitions": sorted(held)}


class _ReadOnly(MutableMapping[str, bytes]):
    """A store for reads that name their keys: `get` is the one method to give."""

    def get(self, key: str, default: Any = None) -> Any:
        raise NotImplementedError

    def __getitem__(self, key: str) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: bytes) -> None:
        raise TypeError("read-only")

    def __delitem__(self, key: str) -> None:
        raise TypeError("read-only")

    def __iter__(self) -> Iterator[str]:
        raise TypeError("reads name their keys")

    def __len__(self) -> int:
        raise TypeError("reads name their keys")


class _Recording(_ReadOnly):
    """What a query reads: fetched values, and the partitioned keys it still lacks."""

    def __init__(self, known: Mapping[str, bytes | None], local: Store) -> None:
        self.known, self.local = known, local
        self.missing: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        if partition_of(key) is None:
            return self.local.get(key, default)
        if key not in self.known:
            self.missing.add(key)
            return default
        value = self.known[key]
        return default if value is None else value


class _Only(_ReadOnly):
    """The local store, limited to some partitions' keys: standby copies are never read."""

    def __init__(self, store: Store, partitions: set[int]) -> None:
        self.store, self.partitions = store, partitions

    def get(self, key: str, default: Any = None) -> Any:
        if partition_of(key) not in self.partitions:
            return default
        return self.store.get(key, default)
