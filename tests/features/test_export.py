"""The Feast export is valid Python with one FeatureView per view, carrying TTL, fields, source."""

from __future__ import annotations

import ast

from data_platform.features.export import to_feast
from data_platform.features.views import CUSTOMER_FEATURES, VIEWS


def _call(tree: ast.Module, target: str) -> ast.Call:
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == target:
            return node.value
    raise AssertionError(f"{target} is not defined")


def test_feast_definitions_for_every_view():
    text = to_feast(VIEWS, schema="analytics")
    tree = ast.parse(text)
    for view in VIEWS:
        call = _call(tree, view.name)
        assert call.func.id == "FeatureView"
        kwargs = {k.arg: k.value for k in call.keywords}
        assert ast.literal_eval(kwargs["name"]) == view.name
        assert [f.keywords[0].value.value for f in kwargs["schema"].elts] == view.feature_names
        assert ast.unparse(kwargs["ttl"]) == f"timedelta(seconds={int(view.ttl.total_seconds())})"
        source = {k.arg: k.value for k in _call(tree, f"{view.name}_source").keywords}
        assert ast.literal_eval(source["created_timestamp_column"]) == view.created_timestamp
        assert f"FROM analytics.{view.history_table}" in ast.literal_eval(source["query"])
    entity = _call(tree, CUSTOMER_FEATURES.entity)
    assert entity.func.id == "Entity"
