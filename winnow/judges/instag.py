"""InsTag tagging judge (methods.md section 2).

Every user turn is tagged on its own, one cached call per turn, and the sample's tag set is
the union over turns (pitfall P-I5).  The judge asks for open-set, fine-grained intention
tags, each with an explanation, as a JSON list of ``{"tag", "explanation"}`` objects
(methods.md 2.2).  Parsing is strict JSON first, then a regex over ``"tag": "..."`` pairs
(pitfall P-I6).  Tags are only lower-cased and trimmed here: the corpus-level normalisation
(frequency, stemming, semantic and association merges, methods.md 2.4) belongs to the
selector, which sees every sample.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from winnow.judges.base import Answer, Ask, CallSpec, ParseError, SingleCallJudge, Verdict, combine_fingerprint
from winnow.judges.parsing import extract_json
from winnow.prompts import builtin_template
from winnow.types import Reply, Sample, Status

# Frozen: this string was once a parser version inside the key.  Parser versions now live in the
# records (winnow.judges.base.PARSER_VERSION, ``winnow reparse``); it stays so existing keys hold.
KEY_SALT = "instag-parse-1"

# OpenAI's json_schema response format needs an object at the top level, hence the wrapper.
TAGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            # at least one tag: constrained decoding otherwise lets small models answer "[]"
            "minItems": 1,
            "maxItems": 12,
            "items": {
                "type": "object",
                "properties": {"tag": {"type": "string", "minLength": 2}, "explanation": {"type": "string"}},
                "required": ["tag", "explanation"],
            },
        }
    },
    "required": ["tags"],
}

_STRING = r'"((?:[^"\\]|\\.)*)"'
_TAG_RE = re.compile(r'"tag"\s*:\s*' + _STRING, re.IGNORECASE)
_EXPLANATION_RE = re.compile(r'"explanation"\s*:\s*' + _STRING, re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_WRAPPER_KEYS = ("tags", "intentions", "intention_tags", "result", "results", "output")


def normalise_tag(tag: str) -> str:
    """Lower-case, trim, and collapse inner whitespace: the only normalisation done per reply."""
    return _SPACES.sub(" ", tag).strip().lower()


def _unescape(text: str) -> str:
    try:
        value = orjson.loads(f'"{text}"')
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, str) else text


def _items_from_json(value: Any) -> list[Any] | None:
    """The list of tag items in a decoded reply, unwrapping the shapes models produce."""
    for _ in range(3):  # a JSON string holding JSON, or a wrapper holding a string, ...
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return None
            continue
        if isinstance(value, dict):
            if "tag" in value:
                return [value]  # one bare object
            inner = next((value[k] for k in _WRAPPER_KEYS if k in value), None)
            if inner is None:
                lists = [v for v in value.values() if isinstance(v, list | str)]
                inner = lists[0] if len(lists) == 1 else None
            if inner is None:
                return None
            value = inner
            continue
        break
    return value if isinstance(value, list) else None


def _pairs_from_items(items: list[Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict):
            tag = item.get("tag")
            if tag is None:  # {"Tag": ...} and similar case slips
                tag = next((v for k, v in item.items() if k.lower() == "tag"), None)
            explanation = item.get("explanation")
            if explanation is None:
                explanation = next((v for k, v in item.items() if k.lower() == "explanation"), "")
            if isinstance(tag, str):
                pairs.append((tag, explanation if isinstance(explanation, str) else str(explanation)))
        elif isinstance(item, str):
            pairs.append((item, ""))  # a bare list of tag strings: unambiguous, no explanation
    return pairs


_TAG_LINE = re.compile(r"^\s*(?:[-*]\s*)?tag\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_EXPLANATION_LINE = re.compile(r"^\s*(?:[-*]\s*)?explanation\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_BOLD_BULLET = re.compile(r"^\s*(?:[-*]|\d+[.)])\s+\*\*([^*\n]{2,60}?)\*\*\s*[:\-–—]\s*(.*?)\s*$", re.MULTILINE)


def _pairs_from_lines(text: str) -> list[tuple[str, str]]:
    """No JSON at all: ``Tag: x`` / ``Explanation: y`` lines, or ``- **x**: y`` bullets."""
    tags = list(_TAG_LINE.finditer(text))
    if tags:
        pairs = []
        for n, match in enumerate(tags):
            end = tags[n + 1].start() if n + 1 < len(tags) else len(text)
            explanation = _EXPLANATION_LINE.search(text, match.end(), end)
            pairs.append((match.group(1).strip("\"'"), explanation.group(1) if explanation else ""))
        return pairs
    return [(m.group(1).strip(), m.group(2)) for m in _BOLD_BULLET.finditer(text)]


def _separate_lists(text: str) -> list[set[str]]:
    """The tag sets of each top-level ``[...]`` block that holds tags (a model that revises itself
    writes two)."""
    sets: list[set[str]] = []
    start = text.find("[")
    while start != -1:
        depth, end = 0, -1
        for i in range(start, len(text)):
            depth += {"[": 1, "]": -1}.get(text[i], 0)
            if depth == 0:
                end = i
                break
        if end == -1:
            break
        try:
            items = _items_from_json(extract_json(text[start : end + 1]))
        except ParseError:
            items = None
        if items:
            found = {normalise_tag(t) for t, _ in _pairs_from_items(items)}
            if found:
                sets.append(found)
        start = text.find("[", end + 1)
    return sets


def _pairs_from_regex(text: str) -> list[tuple[str, str]]:
    """Pitfall P-I6 fallback: every ``"tag": "..."``, with the explanation that follows it."""
    matches = list(_TAG_RE.finditer(text))
    pairs = []
    for n, match in enumerate(matches):
        end = matches[n + 1].start() if n + 1 < len(matches) else len(text)
        explanation = _EXPLANATION_RE.search(text, match.end(), end)
        pairs.append((_unescape(match.group(1)), _unescape(explanation.group(1)) if explanation else ""))
    return pairs


def parse_tags(text: str) -> dict[str, Any]:
    """Read ``[{"tag", "explanation"}, ...]`` (or ``{"tags": [...]}``) from a reply.

    Returns ``{"tags": [{"tag", "explanation"}, ...]}`` with tags normalised and distinct
    (first explanation kept).  An empty result is a ParseError, so the engine re-asks: every
    query carries at least one intention, and an empty set would silently rank the sample last.
    """
    pairs: list[tuple[str, str]] = []
    lists = _separate_lists(text)
    if len(lists) > 1 and any(s != lists[0] for s in lists[1:]):
        raise ParseError(f"the reply gives {len(lists)} different tag lists: ambiguous")
    try:
        items = _items_from_json(extract_json(text))
    except ParseError:
        items = None
    if items is not None:
        pairs = _pairs_from_items(items)
    regex_pairs = _pairs_from_regex(text)
    if len(regex_pairs) > len(pairs):  # the JSON read only part of a broken reply
        pairs = regex_pairs
    if not pairs:
        pairs = _pairs_from_lines(text)
    tags: dict[str, str] = {}
    for tag, explanation in pairs:
        key = normalise_tag(tag)
        if key and key not in tags:
            tags[key] = explanation.strip()
    if not tags:
        raise ParseError('no tags found: expected a JSON list of {"tag": ..., "explanation": ...} objects')
    return {"tags": [{"tag": t, "explanation": e} for t, e in tags.items()]}


class InstagJudge(SingleCallJudge):
    name = "instag"
    needs_response = False  # tags the user's queries (methods.md 2.1)
    description = "InsTag: open-set user-intention tags per user turn; complexity = number of distinct tags."
    columns = ("tags", "explanations", "complexity")

    def __init__(self, structured: bool = False) -> None:
        super().__init__()
        self.params["max_tokens"] = 512
        self.structured = structured
        self.template = builtin_template("instag.jinja")

    @property
    def fingerprint(self) -> str:
        return combine_fingerprint(self.name, self.template.hash, self.structured, KEY_SALT)

    def render(self, query: str) -> list[dict[str, str]]:
        return self.template.render_messages(query=query, structured=self.structured)

    def parse(self, reply: Reply) -> dict[str, Any]:
        return parse_tags(reply.text)

    def spec(self, turn: int, query: str) -> CallSpec:
        return CallSpec(
            messages=self.render(query),
            parse=self.parse,
            purpose=f"turn{turn}",
            schema=TAGS_SCHEMA if self.structured else None,
            format_hint=(
                'a JSON object {"tags": [{"tag": "...", "explanation": "..."}, ...]}'
                if self.structured
                else 'a JSON list [{"tag": "...", "explanation": "..."}, ...] with at least one tag'
            ),
        )

    def output_schema(self) -> dict[str, Any]:
        """What a reply must hold: the wrapper object when structured, else the bare list."""
        if self.structured:
            return TAGS_SCHEMA
        return {"type": "array", "items": TAGS_SCHEMA["properties"]["tags"]["items"]}

    def preview(self, sample: Sample) -> list[tuple[str, list[dict[str, str]]]]:
        """The calls this judge would send for ``sample`` (for ``winnow judges show``)."""
        return [(s.purpose, s.messages) for s in (self.spec(t, q) for t, (q, _) in enumerate(sample.exchanges()))]

    def plan(self, sample: Sample) -> CallSpec | Verdict | None:
        exchanges = sample.exchanges()
        if not exchanges:
            return self.failed("the sample has no user turn to tag")
        if len(exchanges) > 1:
            return None  # one call per user turn: judge_several
        return self.spec(0, exchanges[0][0])

    def conclude(self, sample: Sample, answer: Answer) -> Verdict:
        return self._union([answer])

    async def judge_several(self, sample: Sample, ask: Ask) -> Verdict:
        # Sequential on purpose: the engine's cache-first pass drives this coroutine by hand, one
        # cache lookup at a time, which asyncio.gather would break; a failed turn ends the sample.
        answers: list[Answer] = []
        for t, (query, _) in enumerate(sample.exchanges()):
            answer = await ask(self.spec(t, query))
            answers.append(answer)
            if not answer.ok or answer.parsed is None:
                break
        return self._union(answers)

    def _union(self, answers: list[Answer]) -> Verdict:
        """The sample's tags: the union over its turns (methods.md 2.2), first explanation kept."""
        tags: dict[str, str] = {}
        keys = [answer.key for answer in answers]
        for t, answer in enumerate(answers):
            if not answer.ok or answer.parsed is None:
                return self.failed(f"turn {t}: {answer.error or 'unparseable reply'}", keys)
            for item in answer.parsed.get("tags", []):
                tags.setdefault(item["tag"], item["explanation"])
        values = {"tags": list(tags), "explanations": list(tags.values()), "complexity": len(tags)}
        return Verdict(Status.OK, values, None, keys)
