"""How the recommendation cache lies in Redis, and the one payload encoding both stores share.

Keys under a namespace ``<prefix>:recs`` (``prefix`` is ``dp`` unless configured):

- ``<ns>:current``: the cache version being served (a string). Switching it is the cache
  invalidation; it only ever names a version that was completely written and counted.
- ``<ns>:v:<version>:users``: a hash, user id -> the user's ranked list as a JSON payload.
- ``<ns>:v:<version>:meta``: a hash, the manifest of that version: model version, when the model
  was trained and the cache published, how many users it holds (``HLEN`` of the users hash must
  equal it), items per user, the popular list for users without a list, and the previous version.

A version id is never reused and a version's keys are never rewritten after the switch, so a
reader that read the pointer and then the data of that version always gets one consistent answer.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

DEFAULT_PREFIX = "dp"
NAMESPACE = "recs"
# User ids are opaque keys of at most 64 characters; anything else is a client error.
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")


def namespace(prefix: str) -> str:
    return f"{prefix}:{NAMESPACE}"


def current_key(prefix: str) -> str:
    return f"{namespace(prefix)}:current"


def users_key(prefix: str, version: str) -> str:
    return f"{namespace(prefix)}:v:{version}:users"


def meta_key(prefix: str, version: str) -> str:
    return f"{namespace(prefix)}:v:{version}:meta"


def new_cache_version(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def encode_items(items: list[tuple[str, float]]) -> bytes:
    """A ranked list as the JSON array the API answers with:
    ``[{"item_id": ..., "score": ..., "rank": 1}, ...]``. Stored this way, a response is spliced
    from bytes without decoding anything (see ``truncate_items``)."""
    return json.dumps(
        [{"item_id": i, "score": round(float(s), 6), "rank": k} for k, (i, s) in enumerate(items, start=1)],
        separators=(",", ":"),
    ).encode()


# `"rank":` cannot occur inside a JSON string (its quotes would be escaped), so it marks items.
_RANK = b'"rank":'


def truncate_items(payload: bytes, n: int) -> bytes:
    """The first ``n`` items of an ``encode_items`` payload, cut on bytes (no JSON decoding)."""
    position = -1
    for _ in range(n):
        position = payload.find(_RANK, position + 1)
        if position < 0:
            return payload
    end = payload.find(b"}", position)  # a rank is an integer: the next brace closes its item
    return payload if payload[end + 1 : end + 2] == b"]" else payload[: end + 1] + b"]"


def decode_items(payload: bytes | str) -> list[dict]:
    return json.loads(payload)


def encode_lists(recommendations: pd.DataFrame) -> dict[str, bytes]:
    """Each user's ranked list (``user_id, item_id, score, rank`` rows) as one payload per user."""
    missing = {"user_id", "item_id", "score", "rank"} - set(recommendations.columns)
    if missing:
        raise ValueError(f"recommendations lack column(s) {sorted(missing)}")
    if recommendations.empty:
        return {}
    ordered = recommendations.sort_values(["user_id", "rank"], kind="stable")
    users = ordered["user_id"].astype(str).to_numpy()
    items = ordered["item_id"].astype(str).to_numpy()
    scores = ordered["score"].to_numpy(dtype=float)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    return {
        users[a]: encode_items(list(zip(items[a:b].tolist(), scores[a:b].tolist(), strict=True)))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    }


@dataclass(frozen=True)
class CacheVersion:
    """The manifest of one published version (what ``<ns>:v:<version>:meta`` holds)."""

    cache_version: str
    model_version: str
    model_created_at: str
    published_at: str
    users: int
    items_per_user: int
    popular: bytes
    previous: str = ""

    def to_meta(self) -> dict[str, str | bytes | int]:
        return {
            "cache_version": self.cache_version,
            "model_version": self.model_version,
            "model_created_at": self.model_created_at,
            "published_at": self.published_at,
            "users": self.users,
            "items_per_user": self.items_per_user,
            "popular": self.popular,
            "previous": self.previous,
        }

    @classmethod
    def from_meta(cls, meta: dict) -> CacheVersion:
        text = {k.decode() if isinstance(k, bytes) else k: v for k, v in meta.items()}

        def s(key: str) -> str:
            value = text.get(key, b"")
            return value.decode() if isinstance(value, bytes) else str(value)

        popular = text.get("popular", b"[]")
        return cls(
            cache_version=s("cache_version"),
            model_version=s("model_version"),
            model_created_at=s("model_created_at"),
            published_at=s("published_at"),
            users=int(s("users") or 0),
            items_per_user=int(s("items_per_user") or 0),
            popular=popular if isinstance(popular, bytes) else str(popular).encode(),
            previous=s("previous"),
        )

    def model_age_seconds(self, now: datetime | None = None) -> float | None:
        return age_seconds(self.model_created_at, now)


def age_seconds(stamp: str, now: datetime | None = None) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
