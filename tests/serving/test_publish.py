"""The cache writer on a real Redis: layout, count, atomic switch, TTL of the previous version,
rollback, and what counts as a complete current version."""

import ast
import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from data_platform.serving import layout, publish

_spec = importlib.util.spec_from_file_location("serving_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
make_recommendations, make_popular = helpers.make_recommendations, helpers.make_popular


def test_truncate_cuts_on_bytes_even_when_ids_look_like_json():
    tricky = [('a"rank":1}', 0.9), ("b},{", 0.5), ("c]", 0.25), ("d", 0.125)]
    payload = layout.encode_items(tricky)
    for n in range(1, 6):
        items = json.loads(layout.truncate_items(payload, n))
        assert [i["item_id"] for i in items] == [i for i, _ in tricky][:n]
        assert [i["rank"] for i in items] == list(range(1, min(n, 4) + 1))


def test_publish_writes_every_user_then_switches_and_keeps_the_previous_for_rollback(redis_client, redis_prefix):
    first = publish.publish(redis_client, make_recommendations(50, "m1"), make_popular("m1"),
                            model_version="m1", prefix=redis_prefix)
    assert first.users == 50 and first.previous == ""
    assert redis_client.get(layout.current_key(redis_prefix)).decode() == first.cache_version
    assert redis_client.hlen(layout.users_key(redis_prefix, first.cache_version)) == 50
    stored = json.loads(redis_client.hget(layout.users_key(redis_prefix, first.cache_version), "u7"))
    assert [i["item_id"] for i in stored] == [f"m1-i7-{k}" for k in range(10)]
    assert redis_client.ttl(layout.users_key(redis_prefix, first.cache_version)) == -1  # permanent while served

    second = publish.publish(redis_client, make_recommendations(60, "m2"), make_popular("m2"),
                             model_version="m2", prefix=redis_prefix, rollback_ttl_s=600)
    assert second.previous == first.cache_version
    served = publish.served_version(redis_client, redis_prefix)
    assert served.cache_version == second.cache_version and served.users == 60
    assert served.previous == first.cache_version
    # The previous version is still complete but expires: a rollback window, then gone.
    assert 0 < redis_client.ttl(layout.users_key(redis_prefix, first.cache_version)) <= 600
    assert 0 < redis_client.ttl(layout.meta_key(redis_prefix, first.cache_version)) <= 600

    assert publish.rollback(redis_client, redis_prefix) == first.cache_version
    assert publish.served_version(redis_client, redis_prefix).model_version == "m1"
    assert redis_client.ttl(layout.users_key(redis_prefix, first.cache_version)) == -1
    assert redis_client.ttl(layout.users_key(redis_prefix, second.cache_version)) > 0


def test_a_version_whose_count_does_not_match_its_manifest_is_not_served(redis_client, redis_prefix):
    result = publish.publish(redis_client, make_recommendations(20, "m1"), make_popular("m1"),
                             model_version="m1", prefix=redis_prefix)
    redis_client.hdel(layout.users_key(redis_prefix, result.cache_version), "u3")
    assert publish.served_version(redis_client, redis_prefix) is None
    passed, why, metadata = publish.verify_served(redis_client, redis_prefix, "m1", 20)
    assert not passed and "no complete current version" in why and metadata["coverage"] == 0.0


def test_verify_served_compares_versions_and_reports_coverage(redis_client, redis_prefix):
    publish.publish(redis_client, make_recommendations(30, "m1"), make_popular("m1"), model_version="m1", prefix=redis_prefix)
    assert publish.verify_served(redis_client, redis_prefix, "m1", 30)[0]
    stale, why, _ = publish.verify_served(redis_client, redis_prefix, "m2", 30)
    assert not stale and "stale" in why
    partial, why, metadata = publish.verify_served(redis_client, redis_prefix, "m1", 40)
    assert not partial and metadata["coverage"] == pytest.approx(0.75)


def test_encode_lists_orders_by_rank_and_refuses_missing_columns():
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "z"],
                          "score": [0.1, 0.9, 0.5], "rank": [2, 1, 1]})
    lists = layout.encode_lists(frame)
    assert [i["item_id"] for i in json.loads(lists["a"])] == ["y", "x"]
    with pytest.raises(ValueError, match="rank"):
        layout.encode_lists(frame.drop(columns="rank"))


def _imports(path: Path) -> set[str]:
    """Modules imported when the file is imported (module level; imports inside functions run
    only when called)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_serving_package_does_not_import_dagster_even_indirectly():
    root = Path(layout.__file__).resolve().parents[1]  # the folder imported as data_platform
    todo = list((root / "serving").glob("*.py"))
    seen: set[Path] = set()
    external: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if not name.startswith("data_platform."):
                external.add(name.split(".")[0])
                continue
            relative = Path(*name.split(".")[1:])
            for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
                if candidate.is_file():
                    todo.append(candidate)
    assert len(seen) > 10 and "starlette" in external
    assert "dagster" not in external, sorted(p.relative_to(root).as_posix() for p in seen)
