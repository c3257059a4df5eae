"""Prices per token from litellm's cost map, looked up once per model."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=256)
def token_prices(model: str) -> tuple[float, float]:
    """(input, output) dollars per token; (0, 0) for models with no listed price."""
    from winnow.engine.litellm_transport import import_litellm

    table = import_litellm().model_cost
    candidates = [model, model.split("/", 1)[-1]]
    for name in candidates:
        entry = table.get(name)
        if entry:
            return float(entry.get("input_cost_per_token") or 0.0), float(entry.get("output_cost_per_token") or 0.0)
    return 0.0, 0.0


def cost_of(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    p_in, p_out = token_prices(model)
    return prompt_tokens * p_in + completion_tokens * p_out
