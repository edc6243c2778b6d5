"""Our feature views as Feast definitions (Python text for a Feast repository; no Feast import).

The history table is the source: a PostgreSQL source over ``fv_<view>`` with the view's event
and created timestamp columns, so Feast's point-in-time join and materialization read the same
rows ours do.
"""

from __future__ import annotations

from collections.abc import Iterable

from data_platform.features.view import FeatureView

FEAST_TYPES = {"float64": "Float64", "Float64": "Float64", "int64": "Int64", "Int64": "Int64",
               "string": "String", "boolean": "Bool"}


def _ident(name: str) -> str:
    return name.replace("-", "_")


def to_feast(views: Iterable[FeatureView], schema: str | None = None) -> str:
    """A Feast ``definitions.py``: one Entity per entity key, one source and FeatureView per view."""
    views = list(views)
    types = sorted({FEAST_TYPES[f.dtype] for v in views for f in v.features})
    out = [
        '"""Feature views exported from data_platform (data_platform.features.export.to_feast)."""',
        "",
        "from datetime import timedelta",
        "",
        "from feast import Entity, FeatureView, Field",
        "from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource",
        f"from feast.types import {', '.join(types)}",
        "",
    ]
    for entity in dict.fromkeys(v.entity for v in views):
        out.append(f"{_ident(entity)} = Entity(name={entity!r}, join_keys=[{entity!r}])")
    for view in views:
        table = f"{schema}.{view.history_table}" if schema else view.history_table
        columns = ", ".join([view.entity, view.event_timestamp, view.created_timestamp, *view.feature_names])
        fields = "".join(f"\n        Field(name={f.name!r}, dtype={FEAST_TYPES[f.dtype]}),"
                         for f in view.features)
        out += [
            "",
            f"{view.name}_source = PostgreSQLSource(",
            f"    name={view.name + '_history'!r},",
            f"    query={f'SELECT {columns} FROM {table}'!r},",
            f"    timestamp_field={view.event_timestamp!r},",
            f"    created_timestamp_column={view.created_timestamp!r},",
            ")",
            "",
            f"{view.name} = FeatureView(",
            f"    name={view.name!r},",
            f"    entities=[{_ident(view.entity)}],",
            f"    ttl=timedelta(seconds={int(view.ttl.total_seconds())}),",
            f"    schema=[{fields}\n    ],",
            f"    source={view.name}_source,",
            "    online=True,",
            f"    owner={view.owner!r},",
            f"    description={view.description!r},",
            f"    tags={ {**view.tags, 'version': view.version}!r},",
            ")",
        ]
    return "\n".join(out) + "\n"
