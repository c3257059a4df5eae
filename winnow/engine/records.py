"""Building a judgment record from a finished call: parse, re-ask text, the record itself.

The record is the audit log's unit (architecture.md rule 1): everything needed to see what
was asked, what came back, how it was read and what it cost, in plain JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from winnow.cache.store import SCHEMA_VERSION
from winnow.judges.base import PARSER_VERSION, CallSpec, ParseError
from winnow.types import Reply, Status

__all__ = ["build_record", "reask_messages", "try_parse"]


def try_parse(spec: CallSpec, reply: Reply) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return spec.parse(reply), None
    except ParseError as exc:
        return None, str(exc)
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        return None, f"invalid value: {exc}".splitlines()[0][:300]


def _reask_text(error: str, hint: str) -> str:
    return (
        f"Your previous answer could not be used: {error}. "
        f"Answer again with {hint or 'exactly the format requested'}, and nothing else."
    )


def dump_logprobs(reply: Reply) -> list[dict[str, Any]] | None:
    if not reply.logprobs:
        return None
    return [{"token": t.token, "logprob": t.logprob, "top": t.top} for t in reply.logprobs]


def reask_messages(spec: CallSpec, reply: Reply, error: str) -> list[dict[str, str]]:
    """The conversation of a re-ask: the prompt, the unusable answer, and what was wrong."""
    return [
        *spec.messages,
        {"role": "assistant", "content": reply.text},
        {"role": "user", "content": _reask_text(error, spec.format_hint)},
    ]


def build_record(
    *, key: str, parts: dict[str, Any], judge: str, spec: CallSpec, sample_id: str, model: str,
    replies: list[Reply], parsed: dict[str, Any] | None, error: str | None, reasks: list[dict[str, Any]],
    attempts: int, cost: float, latency: float, transport: str, version: str,
) -> dict[str, Any]:
    reply = replies[-1]
    return {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "key_parts": parts,
        "judge": judge,
        "purpose": spec.purpose,
        "sample_id": sample_id,
        "model": model,
        "api_base": parts["api_base"],
        "params": parts["params"],
        "fingerprint": parts["fingerprint"],
        "status": str(Status.OK if error is None else Status.JUDGE_FAILED),
        "parsed": parsed,
        "error": error,
        "raw": reply.text,
        "finish_reason": reply.finish_reason,
        "logprobs": dump_logprobs(reply),
        "reasks": reasks,
        "attempts": attempts,
        "usage": {
            "prompt_tokens": sum(r.usage.prompt_tokens for r in replies),
            "completion_tokens": sum(r.usage.completion_tokens for r in replies),
        },
        "cost": cost,
        "latency_s": round(latency, 4),
        "transport": transport,
        "reply_model": reply.model,
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "winnow_version": version,
        "parser_version": PARSER_VERSION,
    }
