"""Embeddings through ``litellm.aembedding``, cached like judgments.

Used by DEITA's diversity filter (``--embed-model``) and InsTag's semantic tag aggregation.
Each text's vector is one cache record keyed by model, api_base and the text, so re-runs
and other pipelines that embed the same text send nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from winnow.cache import cache_key, key_parts

BATCH = 64


def _key(model: str, api_base: str | None, text: str) -> tuple[str, dict[str, Any]]:
    parts = key_parts(
        judge="embedding", fingerprint="v1", model=model, api_base=api_base, params={}, schema=None,
        messages=[{"role": "user", "content": text}],
    )
    return cache_key(parts), parts


def embed_texts(
    texts: Sequence[str],
    model: str,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> Any:
    """Vectors for ``texts`` (an N x d float32 array), from the cache where possible."""
    import numpy as np

    from winnow.cache import JudgmentCache, NullCache

    cache = JudgmentCache(cache_dir) if use_cache else NullCache()
    try:
        vectors: list[list[float] | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            key, _ = _key(model, api_base, text)
            record = cache.get(key)
            if record is not None and isinstance(record.get("parsed"), dict):
                vectors[i] = record["parsed"]["embedding"]
            else:
                missing.setdefault(text, []).append(i)
        if missing:
            fetched = asyncio.run(_fetch(list(missing), model, api_base, api_key))
            for text, vector in zip(missing, fetched, strict=True):
                key, parts = _key(model, api_base, text)
                cache.put(key, {"schema_version": 1, "key": key, "key_parts": parts, "judge": "embedding",
                                "model": model, "api_base": parts["api_base"], "status": "ok",
                                "parsed": {"embedding": vector}, "raw": None})
                for i in missing[text]:
                    vectors[i] = vector
    finally:
        cache.close()
    return np.asarray(vectors, dtype=np.float32)


async def _fetch(texts: list[str], model: str, api_base: str | None, api_key: str | None) -> list[list[float]]:
    from winnow.engine.litellm_transport import classify, import_litellm

    litellm = import_litellm()
    out: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        kwargs: dict[str, Any] = {"model": model, "input": batch}
        if api_base:
            kwargs["api_base"] = api_base
            kwargs["api_key"] = api_key or "no-key"
        elif api_key:
            kwargs["api_key"] = api_key
        for attempt in range(4):
            try:
                response = await litellm.aembedding(**kwargs)
                break
            except Exception as exc:
                error = classify(exc, api_key)
                if attempt == 3 or type(error).__name__ == "FatalError":
                    raise error from None
                await asyncio.sleep(0.5 * 2**attempt)
        data = sorted(response.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
        out.extend([list(d["embedding"] if isinstance(d, dict) else d.embedding) for d in data])
    return out


def conversation_text(row_turns: Sequence[tuple[str, str]]) -> str:
    """A sample as one text, in the Vicuna layout DEITA embeds (methods.md 3.6)."""
    system = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
              "helpful, detailed, and polite answers to the user's questions.")
    parts = [system]
    for user, assistant in row_turns:
        parts.append(f"USER: {user} ASSISTANT: {assistant}</s>")
    return " ".join(parts)


def embed_samples(samples: Sequence[Any], model: str, *, api_base: str | None = None,
                  cache_dir: str | Path | None = None, api_key: str | None = None) -> Any:
    """Embed whole samples for the DEITA diversity filter (one text per conversation)."""
    texts = [conversation_text(sample.exchanges()) for sample in samples]
    return embed_texts(texts, model, api_base=api_base, api_key=api_key, cache_dir=cache_dir)
