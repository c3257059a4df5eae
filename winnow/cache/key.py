"""The cache key: canonical JSON of named parts, hashed with a versioned prefix.

Explicit parts (architecture.md rule 3) so a user can see *why* two calls missed each
other (``winnow cache show`` prints them).  Nothing volatile goes in: no sample id, row
number, timestamp, transport or API key.  The same rendered prompt sent to the same model
with the same settings is the same judgment, whichever transport carried it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

KEY_VERSION = "wj1"

# Sampling parameters that change what the model says.  Others (timeouts, retries,
# transport knobs) must never split the cache.
SEMANTIC_PARAMS = ("temperature", "top_p", "max_tokens", "seed", "stop", "presence_penalty",
                   "frequency_penalty", "top_logprobs")


# Numeric sampling parameters as the key records them: equal values, equal keys.  ``temperature: 0``
# from a judge.yaml and the built-ins' ``0.0`` are the same setting, so real-valued parameters are
# keyed as floats and count-valued ones as ints (the built-ins already store these types, so their
# keys are unchanged).
FLOAT_PARAMS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
INT_PARAMS = frozenset({"max_tokens", "seed", "top_logprobs"})


def normalise_param(name: str, value: Any) -> Any:
    """``value`` of sampling parameter ``name`` in its canonical type; anything else unchanged
    (a bool, a string, or a float count with a fraction, which is no count)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if name in FLOAT_PARAMS:
        return float(value)
    if name in INT_PARAMS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ``http://user:secret@host/v1``: the user-info part of a URL, which can hold a password
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def normalise_api_base(api_base: str | None) -> str | None:
    """The address as the cache key records it: no trailing slash, and no credentials in it
    (a secret never reaches the cache; the host, port and path are what identify the server)."""
    if not api_base:
        return None
    return _USERINFO.sub("", api_base).rstrip("/")


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
        "params": {k: normalise_param(k, params[k]) for k in SEMANTIC_PARAMS if params.get(k) is not None},
        "schema": schema,
        "messages": messages,
    }


def cache_key(parts: dict[str, Any]) -> str:
    blob = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return f"{KEY_VERSION}-" + hashlib.blake2b(blob, digest_size=16).hexdigest()


class KeyTemplate:
    """The key parts fixed for one judge in one run, with their canonical JSON pre-encoded.

    Why: a cached re-run computes one key per call, and re-encoding the same judge, model,
    api_base and params for every one of them was a tenth of the work.  ``key`` splices the
    encoded ``messages`` and ``schema`` between the fixed pieces, in the same sorted order
    ``cache_key`` writes them, so both give the same bytes and the same key (tested).
    """

    VARIABLE = ("messages", "schema")

    def __init__(self, **fixed: Any) -> None:
        self.base = key_parts(**fixed, schema=None, messages=[])
        # [fixed..., messages, fixed..., schema, fixed...] -> three byte strings around two slots
        names = sorted(self.base)
        order: list[str] = []
        chunks = [b""]
        for name in names:
            label = (b"{" if name == names[0] else b",") + orjson.dumps(name) + b":"
            if name in self.VARIABLE:
                chunks[-1] += label
                order.append(name)
                chunks.append(b"")
            else:
                chunks[-1] += label + orjson.dumps(self.base[name], option=orjson.OPT_SORT_KEYS)
        chunks[-1] += b"}"
        if order != sorted(self.VARIABLE):
            raise AssertionError(f"key parts changed shape: {order}")
        self._before_messages, self._before_schema, self._after = chunks

    def key(self, messages: Any, schema: Any) -> str:
        blob = b"".join((
            self._before_messages, orjson.dumps(messages, option=orjson.OPT_SORT_KEYS),
            self._before_schema, orjson.dumps(schema, option=orjson.OPT_SORT_KEYS), self._after,
        ))
        return f"{KEY_VERSION}-" + hashlib.blake2b(blob, digest_size=16).hexdigest()

    def parts(self, messages: Any, schema: Any) -> dict[str, Any]:
        """The full key parts (what the record keeps under ``key_parts``)."""
        return {**self.base, "params": dict(self.base["params"]), "schema": schema, "messages": messages}
