"""The warehouse side of the service: the ``recommendations`` table held in memory.

It answers when no Redis is configured (the embedded default) and whenever the cache cannot
(Redis down, restarted empty, a version that does not count up). The snapshot is one immutable
object swapped in whole, so a request reads one snapshot, never half of two. A new one is built
when the tables' signature (row count, published cache version) changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from data_platform.serving import layout
from data_platform.serving.config import CACHE_TABLE, RECOMMENDATIONS_TABLE
from data_platform.tablestore import TableStore

UNKNOWN_VERSION = "unknown"


@dataclass(frozen=True)
class WarehouseSnapshot:
    users: dict[str, bytes]
    popular: bytes
    model_version: str
    model_created_at: str
    signature: tuple = field(default=())

    def model_age_seconds(self) -> float | None:
        return layout.age_seconds(self.model_created_at)


def signature(store: TableStore) -> tuple:
    """Changes whenever either table is rewritten with other content worth reloading."""
    if not store.exists(RECOMMENDATIONS_TABLE):
        return ()
    published = ()
    if store.exists(CACHE_TABLE):
        head = store.read(CACHE_TABLE, columns=["cache_version", "model_version"]).head(1)
        published = tuple(head.iloc[0]) if len(head) else ()
    return (store.row_count(RECOMMENDATIONS_TABLE), *published)


def load_snapshot(store: TableStore) -> WarehouseSnapshot | None:
    """The tables as a snapshot, or None while ``recommendations`` has never been written."""
    sig = signature(store)
    if not sig:
        return None
    recs = store.read(RECOMMENDATIONS_TABLE, columns=["user_id", "item_id", "score", "rank"])
    popular, model_version, created = b"[]", UNKNOWN_VERSION, ""
    if store.exists(CACHE_TABLE):
        published = store.read(CACHE_TABLE)
        if len(published):
            ordered = published.sort_values("rank", kind="stable")
            popular = layout.encode_items(
                list(zip(ordered["item_id"].astype(str), ordered["score"].astype(float), strict=True))
            )
            model_version = str(ordered["model_version"].iloc[0])
            created = str(ordered["model_created_at"].iloc[0])
    return WarehouseSnapshot(
        users=layout.encode_lists(recs),
        popular=popular,
        model_version=model_version,
        model_created_at=created,
        signature=sig,
    )


def cache_table(popular: pd.DataFrame, *, cache_version: str, model_version: str,
                model_created_at: str) -> pd.DataFrame:
    """What the cache asset stores in the warehouse: the popular list with the versions it was
    published under, so the warehouse path serves cold users and names its model too."""
    ordered = popular.sort_values("rank", kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "cache_version": pd.Series([cache_version] * len(ordered), dtype="string"),
            "model_version": pd.Series([model_version] * len(ordered), dtype="string"),
            "model_created_at": pd.Series([model_created_at] * len(ordered), dtype="string"),
            "item_id": ordered["item_id"].astype("string"),
            "score": ordered["score"].astype(float),
            "rank": ordered["rank"].astype("int64"),
        }
    )
