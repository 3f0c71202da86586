"""Binary columns made by joining others, element-wise: events, features and Kafka records
are assembled this way, a column at a time, with no Python object a row."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc


def joined(pieces: Sequence[pa.Array | bytes]) -> pa.Array:
    """Arrays of one length and constants, joined element-wise; a null joins as nothing."""
    arrays = [
        (pc.fill_null(p, b"") if p.null_count else p)
        if isinstance(p, pa.Array)
        else pa.scalar(p, pa.binary())
        for p in pieces
    ]
    return pc.binary_join_element_wise(*arrays, pa.scalar(b"", pa.binary()))
