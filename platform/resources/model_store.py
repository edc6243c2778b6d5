"""Versioned model artifacts on a local directory (or any mounted path).

Layout: `<root>/<model name>/<version>/model.pkl` + `manifest.json` (version, created_at,
training data snapshot id, metrics, library versions). A later run or a user loads the exact
model by name and version; `latest` follows the newest version.
"""

import json
import os
import pickle
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

DEFAULT_MODEL_DIR = ".data/models"


@dataclass(frozen=True)
class ModelManifest:
    name: str
    version: str
    created_at: str
    data_snapshot_id: str
    metrics: dict[str, float]
    libraries: dict[str, str]


def snapshot_id(frame: pd.DataFrame) -> str:
    """Content hash of the training data: the same rows give the same id in any process."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = int(hashed.sum(dtype="uint64")) ^ (len(frame) << 1)
    return f"{digest & 0xFFFFFFFFFFFF:012x}-{len(frame)}"


def _libraries() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("scikit-learn", "scikit-surprise", "pandas", "numpy", "statsmodels"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


class ModelStore:
    """Pure file-system store (no Dagster): save, load, list versions."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def save(self, name: str, model: object, *, metrics: dict[str, float], data_snapshot_id: str) -> ModelManifest:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"model name must be letters, digits and '_': {name!r}")
        created = datetime.now(UTC)
        version = f"{created:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
        manifest = ModelManifest(
            name=name,
            version=version,
            created_at=created.isoformat(),
            data_snapshot_id=data_snapshot_id,
            metrics={k: float(v) for k, v in metrics.items()},
            libraries=_libraries(),
        )
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        # Write into a temporary folder and rename: a reader never sees half an artifact.
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=folder))
        with open(staging / "model.pkl", "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        (staging / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2))
        os.replace(staging, folder / version)
        return manifest

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def manifest(self, name: str, version: str | None = None) -> ModelManifest:
        version = version or self._latest(name)
        data = json.loads((self.root / name / version / "manifest.json").read_text())
        return ModelManifest(**data)

    def load(self, name: str, version: str | None = None) -> object:
        version = version or self._latest(name)
        with open(self.root / name / version / "model.pkl", "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - artifacts this store wrote itself

    def _latest(self, name: str) -> str:
        versions = self.versions(name)
        if not versions:
            raise FileNotFoundError(f"no stored versions of model {name!r} under {self.root}")
        return versions[-1]


class ModelStoreResource(dg.ConfigurableResource):
    """Where trained models go: `DATA_PLATFORM_MODEL_DIR` or ./.data/models."""

    root: str = DEFAULT_MODEL_DIR

    def store(self) -> ModelStore:
        return ModelStore(self.root)
