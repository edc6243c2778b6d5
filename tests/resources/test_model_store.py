"""Model artifacts: versioned, loadable exactly, with their metrics and training-data snapshot."""

import pandas as pd
import pytest

from data_platform.resources.model_store import ModelStore, snapshot_id


def test_save_then_load_the_exact_model(tmp_path):
    store = ModelStore(tmp_path)
    first = store.save("demo", {"weights": [1, 2, 3]}, metrics={"rmse": 0.9}, data_snapshot_id="a")
    second = store.save("demo", {"weights": [4, 5, 6]}, metrics={"rmse": 0.8}, data_snapshot_id="b")
    assert store.versions("demo") == sorted([first.version, second.version])
    assert store.load("demo", first.version) == {"weights": [1, 2, 3]}
    assert store.load("demo") == {"weights": [4, 5, 6]}  # latest
    manifest = store.manifest("demo", first.version)
    assert manifest.metrics == {"rmse": 0.9} and manifest.data_snapshot_id == "a"
    assert "scikit-learn" in manifest.libraries
    # No half-written artifact is ever visible: only finished version folders are listed.
    assert not [p for p in (tmp_path / "demo").iterdir() if p.name.startswith(".")]


def test_unknown_model_and_bad_names_are_clear_errors(tmp_path):
    store = ModelStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="no stored versions of model 'nope'"):
        store.load("nope")
    with pytest.raises(ValueError, match="model name"):
        store.save("../escape", object(), metrics={}, data_snapshot_id="x")


def test_snapshot_id_depends_on_content_not_identity():
    a = pd.DataFrame({"user_id": ["u1", "u2"], "rating": [4.0, 3.5]})
    assert snapshot_id(a) == snapshot_id(a.copy())
    assert snapshot_id(a) != snapshot_id(a.assign(rating=[4.0, 3.0]))
    assert snapshot_id(a).endswith("-2")
