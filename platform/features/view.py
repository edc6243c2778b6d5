"""A feature view: a set of features of one entity, declared once for training and serving."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# The pandas dtypes a feature may have (what the warehouse round-trips and JSON can carry).
FEATURE_DTYPES = ("float64", "Float64", "int64", "Int64", "string", "boolean")


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str = "Float64"
    description: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in FEATURE_DTYPES:
            raise ValueError(f"feature {self.name!r}: dtype {self.dtype!r} is not one of {FEATURE_DTYPES}")


@dataclass(frozen=True)
class FeatureView:
    """``entity``: the key column; ``event_timestamp``: when the values became true;
    ``created_timestamp``: when they were computed (breaks ties, hides late corrections from
    earlier labels). A value older than ``ttl`` at a label's time is not used (null)."""

    name: str
    entity: str
    features: tuple[Feature, ...]
    ttl: timedelta
    owner: str
    description: str = ""
    version: str = "1"
    event_timestamp: str = "event_timestamp"
    created_timestamp: str = "created_timestamp"
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"feature view name {self.name!r}: lower-case letters, digits, _ (at most 40)")
        names = [f.name for f in self.features]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"feature view {self.name!r}: needs distinct feature names, got {names}")
        reserved = {self.entity, self.event_timestamp, self.created_timestamp}
        if reserved & set(names) or len(reserved) != 3:
            raise ValueError(f"feature view {self.name!r}: entity and timestamp columns must be "
                             "distinct and not features")
        if self.ttl <= timedelta(0):
            raise ValueError(f"feature view {self.name!r}: ttl must be positive")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def history_table(self) -> str:
        """The offline store's table: every computation's rows, never overwritten."""
        return f"fv_{self.name}"

    @property
    def online_table(self) -> str:
        """The online store's table when no Redis is configured."""
        return f"fv_{self.name}_online"

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "entity": self.entity,
            "features": ", ".join(self.feature_names),
            "ttl_seconds": int(self.ttl.total_seconds()),
            "owner": self.owner,
            "version": self.version,
            "event_timestamp": self.event_timestamp,
            "created_timestamp": self.created_timestamp,
        }
