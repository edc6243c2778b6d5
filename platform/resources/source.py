"""The `source` resource: which adapter feeds each entity, chosen per entity by env var or run config."""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

from data_platform.sources import LoadResult, fetch, parse_spec
from data_platform.sources.schemas import DIMENSION_ENTITIES, ENTITIES, EVENT_ENTITIES, SCHEMAS

SYNTHETIC = "synthetic"
# File kinds that also describe the dimension entities of the facts they hold.
DIMENSIONS_PROVIDED_BY = {
    "online_retail": ("customers", "products"),
    "movielens": ("customers", "products"),
}


def env_var_name(entity: str) -> str:
    return f"DATA_PLATFORM_{entity.upper()}"


def specs_from_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Source spec per entity from `DATA_PLATFORM_<ENTITY>`; dimensions follow a file source of facts.

    An unset dimension (customers, products) takes the spec of the first configured fact source
    whose kind also carries that dimension, so that orders from Online Retail are joined with
    Online Retail's own customers and products rather than synthetic ones.
    """
    environ = dict(os.environ if environ is None else environ)
    specs = {e: environ.get(env_var_name(e), "").strip() or SYNTHETIC for e in ENTITIES}
    for entity in DIMENSION_ENTITIES:
        if env_var_name(entity) in environ and environ[env_var_name(entity)].strip():
            continue
        for fact in EVENT_ENTITIES:
            spec = specs[fact]
            if spec == SYNTHETIC:
                continue
            if entity in DIMENSIONS_PROVIDED_BY.get(parse_spec(spec).kind, ()):
                specs[entity] = spec
                break
    return specs


class SourceResource(dg.ConfigurableResource):
    """Where each entity comes from: `synthetic` or `kind:path` (see README, Configuration)."""

    customers: str = SYNTHETIC
    products: str = SYNTHETIC
    orders: str = SYNTHETIC
    ratings: str = SYNTHETIC
    reviews: str = SYNTHETIC
    experiments: str = SYNTHETIC
    seed: int = 0
    # Synthetic only: inject the documented incident calendar (the demo shows the checks catch it).
    synthetic_incidents: bool = True
    synthetic_scale: float = 1.0

    def spec(self, entity: str) -> str:
        if entity not in SCHEMAS:
            raise ValueError(f"unknown entity {entity!r}; expected one of {list(SCHEMAS)}")
        return getattr(self, entity)

    def fetch(self, entity: str, day: date | None = None) -> LoadResult:
        return fetch(
            self.spec(entity),
            entity,
            day,
            seed=self.seed,
            scale=self.synthetic_scale,
            incidents=self.synthetic_incidents,
        )


def source_resource_from_env() -> SourceResource:
    """Specs that came from the environment stay `EnvVar`s so their values never show in the UI."""
    specs = specs_from_env()
    kwargs: dict[str, object] = {}
    for entity, spec in specs.items():
        name = env_var_name(entity)
        kwargs[entity] = dg.EnvVar(name) if os.environ.get(name, "").strip() else spec
    if os.environ.get("DATA_PLATFORM_SEED"):
        kwargs["seed"] = int(os.environ["DATA_PLATFORM_SEED"])
    if os.environ.get("DATA_PLATFORM_SYNTHETIC_INCIDENTS"):
        kwargs["synthetic_incidents"] = os.environ["DATA_PLATFORM_SYNTHETIC_INCIDENTS"].lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
    if os.environ.get("DATA_PLATFORM_SYNTHETIC_SCALE"):
        kwargs["synthetic_scale"] = float(os.environ["DATA_PLATFORM_SYNTHETIC_SCALE"])
    return SourceResource(**kwargs)
