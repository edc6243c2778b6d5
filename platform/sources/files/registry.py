"""The file kinds and their loaders: each format module registers its kind with `register_kind`,
and `load_file_source` serves any registered kind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import ModuleType

from data_platform.sources.records import check_fallback_encoding
from data_platform.sources.result import LoadResult, SourceError

# Source option (``kind:path?encoding_fallback=latin-1``): lines not valid in the file's encoding
# are decoded with this one instead of rejected, and counted.
ENCODING_FALLBACK = "encoding_fallback"

# A loader reads one entity of a source: (path, entity, start, end, options, fallback) -> result.
Loader = Callable[[Path, str, date | None, date | None, dict | None, str | None], LoadResult]

FILE_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {}  # kind: (primary entity, every entity)
LOADERS: dict[str, Loader] = {}


def register_kind(kind: str, entities: tuple[str, ...]) -> Callable[[Loader], Loader]:
    """Decorate the loader of `kind`, a source that provides `entities` (the first is primary)."""

    def register(load: Loader) -> Loader:
        known = LOADERS.get(kind)
        # The same loader registering again is a reload of its module; another one is a clash.
        if known is not None and known.__module__ != load.__module__:
            raise ValueError(
                f"file kind {kind!r} is registered by {known.__module__} and {load.__module__}"
            )
        FILE_KINDS[kind] = (entities[0], entities)
        LOADERS[kind] = load
        return load

    return register


def load_file_source(
    kind: str, path: str | Path, entity: str | None, start, end, options=None
) -> LoadResult:
    primary, provided = FILE_KINDS[kind]
    entity = entity or primary
    if entity not in provided:
        raise SourceError(
            f"{kind}:{path}", f"a {kind} source provides {list(provided)}, not {entity!r}"
        )
    loader = LOADERS[kind]
    fallback = check_fallback_encoding(f"{kind}:{path}", (options or {}).get(ENCODING_FALLBACK))
    return loader(Path(path), entity, start, end, options, fallback)


def settle(formats: tuple[ModuleType, ...]) -> None:
    """List the kinds in the order of their `formats` modules (the order error messages name
    them in), whatever order the modules were imported in; fail if one of them registered no
    kind, or a kind comes from a module that is not one of them."""
    names = [module.__name__ for module in formats]
    silent = [name for name in names if name not in {load.__module__ for load in LOADERS.values()}]
    stray = sorted(kind for kind, load in LOADERS.items() if load.__module__ not in names)
    if silent or stray:
        raise ImportError(f"format modules without a kind: {silent}; kinds of no format: {stray}")
    order = sorted(LOADERS, key=lambda kind: names.index(LOADERS[kind].__module__))
    kinds, loaders = {k: FILE_KINDS[k] for k in order}, {k: LOADERS[k] for k in order}
    FILE_KINDS.clear()
    FILE_KINDS.update(kinds)
    LOADERS.clear()
    LOADERS.update(loaders)
