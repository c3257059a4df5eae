"""The cache key: canonical JSON of named parts, hashed with a versioned prefix.

Explicit parts (architecture.md rule 3) so a user can see *why* two calls missed each
other (``winnow cache show`` prints them).  Nothing volatile goes in: no sample id, row
number, timestamp, transport or API key.  The same rendered prompt sent to the same model
with the same settings is the same judgment, whichever transport carried it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

KEY_VERSION = "wj1"

# Sampling parameters that change what the model says.  Others (timeouts, retries,
# transport knobs) must never split the cache.
SEMANTIC_PARAMS = ("temperature", "top_p", "max_tokens", "seed", "stop", "presence_penalty",
                   "frequency_penalty", "top_logprobs")


def normalise_api_base(api_base: str | None) -> str | None:
    if not api_base:
        return None
    return api_base.rstrip("/")


def key_parts(
    *,
    judge: str,
    fingerprint: str,
    model: str,
    api_base: str | None,
    params: dict[str, Any],
    schema: dict[str, Any] | None,
    messages: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "judge": judge,
        "fingerprint": fingerprint,
        "model": model,
        "api_base": normalise_api_base(api_base),
        "params": {k: params[k] for k in SEMANTIC_PARAMS if params.get(k) is not None},
        "schema": schema,
        "messages": messages,
    }


def cache_key(parts: dict[str, Any]) -> str:
    blob = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return f"{KEY_VERSION}-" + hashlib.blake2b(blob, digest_size=16).hexdigest()
