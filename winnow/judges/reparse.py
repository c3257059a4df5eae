"""Re-reading a stored judgment with today's parser: which parser a record needs, and the new record.

Why it can be done without the judge's options: everything a parser depends on is in the record
itself.  The requested JSON schema (structured or not), the first message (DEITA's byte-exact
scorer template), the purpose (``turn0``, ``evol3``, ``rank``) and the rank call's ``max_tokens``
(16 per item + 32) say which reading the judge applied.  A user judge's parser is its
``judge.yaml``: the caller passes the loaded judge, and it is used only while its fingerprint is
the record's (an edited judge reads replies differently and must be re-run, not re-parsed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from winnow.judges.base import PARSER_VERSION, Judge, ParseError, Parser
from winnow.types import Reply, Status, TokenLogprob, Usage

__all__ = ["Unparseable", "parser_for", "reparse_record"]

SCORER_PREFIX = "You are a helpful assistant. Please identify the "  # methods.md 3.4, both scorer templates


class Unparseable(Exception):
    """This record cannot be re-read here; the message says why (shown grouped in the summary)."""


def parser_for(record: Mapping[str, Any], user_judges: Mapping[str, Judge] | None = None) -> Parser:
    """The parser the judge that wrote ``record`` applies today, or ``Unparseable``."""
    judge = str(record.get("judge") or "")
    parts = record.get("key_parts") or {}
    schema = parts.get("schema")
    purpose = str(record.get("purpose") or "main")
    if judge == "alpagasus":
        from winnow.judges.alpagasus import AlpagasusJudge

        return AlpagasusJudge(structured=schema is not None).parse
    if judge == "instag":
        from winnow.judges.instag import parse_tags

        return lambda reply: parse_tags(reply.text)
    if judge in ("deita_complexity", "deita_quality"):
        return _deita_parser(purpose, schema, parts.get("messages") or [], record.get("params") or {})
    if judge == "embedding":
        raise Unparseable("embedding vectors (tags, DEITA diversity): stored as numbers, nothing to re-read")
    user = (user_judges or {}).get(judge)
    if user is None:
        raise Unparseable(f"judge '{judge}' is not built in: if it is a judge.yaml, pass it (--user-judge PATH); "
                          "one written in Python cannot be re-read here: `rate --retry-failed` asks again")
    if user.fingerprint != record.get("fingerprint"):
        raise Unparseable(f"user judge '{judge}': its judge.yaml changed since (another fingerprint): re-run it")
    parse = getattr(user, "parse", None)
    if parse is None:
        raise Unparseable(f"judge '{judge}' has no single parser to re-read replies with")
    return parse


def _deita_parser(purpose: str, schema: Any, messages: list[Any], params: Mapping[str, Any]) -> Parser:
    from winnow.judges.deita_direct import parse_direct, parse_direct_json
    from winnow.judges.deita_evol import parse_evolution, parse_rank
    from winnow.judges.deita_scorer import parse_scorer

    step = purpose.rsplit(".", 1)[-1]
    if step.startswith("evol"):
        return parse_evolution
    if step == "rank":
        items = (int(params.get("max_tokens") or 0) - 32) // 16  # DeitaJudge.rank_spec: 16 * n + 32
        if items < 2:
            raise Unparseable("a DEITA rank call whose item count cannot be read from max_tokens")
        return lambda reply: parse_rank(reply.text, items)
    first = str(messages[0].get("content", "")) if messages and isinstance(messages[0], dict) else ""
    if first.startswith(SCORER_PREFIX):
        return parse_scorer
    return parse_direct_json if schema is not None else parse_direct


def _logprobs(stored: Any) -> list[TokenLogprob] | None:
    if not isinstance(stored, list):
        return None
    return [TokenLogprob(str(p.get("token", "")), float(p.get("logprob") or 0.0), dict(p.get("top") or {}))
            for p in stored if isinstance(p, dict)]


def reparse_record(record: Mapping[str, Any], parse: Parser) -> dict[str, Any] | None:
    """``record`` read again with ``parse``; None when nothing would change.

    The replies are read in the order they came (each re-ask's unusable answer, then the final
    one) and the first that parses wins: what the run would have recorded with today's parser
    (it would not have re-asked).  Only the final reply's log-probs are stored, so an earlier
    reply is read from its text alone.  A change keeps the earlier reading in ``history``.
    """
    texts = [str(r.get("raw") or "") for r in record.get("reasks") or [] if isinstance(r, dict)]
    texts.append(str(record.get("raw") or ""))
    parsed: dict[str, Any] | None = None
    error: str | None = None
    for n, text in enumerate(texts):
        final = n == len(texts) - 1
        reply = Reply(text=text, usage=Usage(), finish_reason=record.get("finish_reason") if final else None,
                      logprobs=_logprobs(record.get("logprobs")) if final else None, model=record.get("reply_model"))
        try:
            parsed, error = parse(reply), None
            break
        except ParseError as exc:
            error = str(exc)
        except ValueError as exc:  # pydantic's ValidationError is one (engine.records.try_parse does the same)
            error = f"invalid value: {exc}".splitlines()[0][:300]
    status = str(Status.OK if error is None else Status.JUDGE_FAILED)
    before = record.get("parser_version") or 1
    same = (status, parsed, error) == (record.get("status"), record.get("parsed"), record.get("error"))
    if same and before == PARSER_VERSION:
        return None
    new = dict(record)
    new["parser_version"] = PARSER_VERSION
    if not same:
        history = list(record.get("history") or [])
        history.append({
            "status": record.get("status"), "parsed": record.get("parsed"), "error": record.get("error"),
            "parser_version": before, "replaced_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        })
        new.update(status=status, parsed=parsed, error=error, history=history)
    return new
