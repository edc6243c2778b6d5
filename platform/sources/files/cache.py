"""The in-process cache of parsed files, keyed by (path, size, mtime, fallback encoding)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from data_platform.sources.result import SourceError

# Every cached parser of every format, so that one call forgets them all.
PARSE_CACHES: list = []


def cached(parse: Callable[..., object]) -> Callable[..., object]:
    """Memoize a per-file parser on (path, size, mtime, fallback encoding): a re-written file is
    parsed again."""

    @lru_cache(maxsize=1024)
    def by_stat(path: str, size: int, mtime_ns: int, fallback: str | None):
        return parse(Path(path), fallback)

    def wrapper(path: Path, fallback: str | None = None):
        try:
            stat = path.stat()
        except OSError:
            raise SourceError(path, "file not found") from None
        return by_stat(str(path.resolve()), stat.st_size, stat.st_mtime_ns, fallback)

    PARSE_CACHES.append(by_stat)
    wrapper.cache_clear = by_stat.cache_clear  # type: ignore[attr-defined]
    wrapper.cache_info = by_stat.cache_info  # type: ignore[attr-defined]
    return wrapper


def clear_cache() -> None:
    for cache in PARSE_CACHES:
        cache.cache_clear()
