"""Content-addressed judgment cache (the audit log).  Knows nothing of engines or models."""

from winnow.cache.key import cache_key, key_parts
from winnow.cache.store import (
    SCHEMA_VERSION,
    CacheError,
    JudgmentCache,
    NoCacheError,
    NullCache,
    default_cache_dir,
    holds_cache,
)

__all__ = ["SCHEMA_VERSION", "CacheError", "JudgmentCache", "NoCacheError", "NullCache", "cache_key",
           "default_cache_dir", "holds_cache", "key_parts"]
