"""A judgment record as a person wants to read it (``winnow cache show``).

The order follows the questions asked when a score looks wrong: what was sent, what came
back, how it was read, what it took to get it, and why it is (or is not) a cache hit.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["format_record"]


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in (text or "").splitlines()) or prefix + "(empty)"


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def format_record(record: dict[str, Any]) -> str:
    parts = record.get("key_parts") or {}
    usage = record.get("usage") or {}
    lines = [
        f"== {record.get('key')}",
        f"judge {record.get('judge')} ({record.get('purpose')}) on sample {record.get('sample_id')}",
        f"model {record.get('model')} at {record.get('api_base') or 'provider default'}"
        + (f" (replied as {record['reply_model']})" if record.get("reply_model") else ""),
        f"status {record.get('status')}" + (f": {record['error']}" if record.get("error") else ""),
        "",
        "-- prompt (as sent)",
    ]
    for message in parts.get("messages") or []:
        lines.append(f"  [{message.get('role')}]")
        lines.append(_indent(str(message.get("content", ""))))
    lines += [
        "",
        f"-- raw reply (finish_reason {record.get('finish_reason')})",
        _indent(str(record.get("raw") or "")),
    ]
    lines += ["", "-- parsed", _indent(_json(record.get("parsed")))]
    reasks = record.get("reasks") or []
    if reasks:
        lines += ["", f"-- re-asks ({len(reasks)}): earlier replies that could not be used"]
        for i, ask in enumerate(reasks, 1):
            lines.append(f"  #{i} error: {ask.get('error')}")
            lines.append(_indent(str(ask.get("raw") or "")))
    if record.get("logprobs"):
        lines.append(f"\n-- logprobs: {len(record['logprobs'])} tokens stored")
    retries = max(0, int(record.get("attempts") or 1) - 1 - len(reasks))  # attempts count re-ask sends too
    schema = "none" if parts.get("schema") is None else orjson.dumps(parts.get("schema")).decode()[:200]
    lines += [
        "",
        "-- cost and timing",
        f"  attempts {record.get('attempts')} (retries {retries}), "
        f"re-asks {len(reasks)}, latency {record.get('latency_s')} s, transport {record.get('transport')}",
        f"  tokens {usage.get('prompt_tokens')} in, {usage.get('completion_tokens')} out; "
        f"cost ${float(record.get('cost') or 0):.6f}",
        f"  made {record.get('created_at')} by winnow {record.get('winnow_version')} "
        f"(record schema {record.get('schema_version')})",
        "",
        "-- key parts (everything that makes this judgment a cache hit or a miss)",
        f"  judge {parts.get('judge')}, template hash {parts.get('fingerprint')}",
        f"  model {parts.get('model')}, api_base {parts.get('api_base')}",
        f"  params {orjson.dumps(parts.get('params')).decode()}",
        f"  schema {schema}",
        f"  messages: {len(parts.get('messages') or [])} (shown above)",
    ]
    return "\n".join(lines)
