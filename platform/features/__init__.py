"""The feature store (pure: no Dagster).

- ``view``: ``FeatureView`` and ``Feature``, declared once for training and serving.
- ``offline``: the history of every view in the warehouse and ``get_training_set``, the
  point-in-time-correct join (one SQL statement, PostgreSQL or SQLite).
- ``online``: the latest value per entity in Redis (versioned, switched atomically) or in a
  warehouse table; lookups by entity. ``client``: the HTTP client of the service's feature API.
- ``views``: the platform's own views; ``export``: those views as Feast definitions (text).
"""

from data_platform.features.offline import OfflineStore, get_training_set, training_set_hash
from data_platform.features.view import Feature, FeatureView

__all__ = ["Feature", "FeatureView", "OfflineStore", "get_training_set", "training_set_hash"]
