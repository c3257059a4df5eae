"""The reply parsers on a corpus of real judges' replies (tests/data/judge_replies/, sources there).

The score ladder (winnow/judges/scores.py) was written before this corpus was collected; its first
run read 95 of 108 AlpaGasus and 29 of 36 DEITA replies right, and InsTag's parser 22 of 27.  What
must hold now, for every line: the score the reply states, or a failure where a human could not
tell.  On lines whose reply uses a 10-point scale (``scale: 10``) the rescaled value or a refusal
are both right; the raw number never is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from winnow.judges.alpagasus import AlpagasusJudge
from winnow.judges.base import ParseError
from winnow.judges.deita_direct import parse_direct
from winnow.judges.instag import normalise_tag, parse_tags
from winnow.types import Reply, Usage

CORPUS = Path(__file__).parent / "data" / "judge_replies"


def _lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _check(read, line: dict) -> None:
    try:
        got = read(Reply(text=line["reply"], usage=Usage()))
    except ParseError:
        got = None
    expect = line["expect"]
    if line.get("scale") and got is None:
        return  # refusing a 10-point score is right too
    if expect is None:
        assert got is None, f"read {got} from a reply that states no usable score ({line['why']})"
    else:
        assert got is not None and abs(got - expect) < 1e-9, f"read {got}, the reply states {expect} ({line['why']})"


ALPAGASUS = _lines("alpagasus.jsonl")
DEITA = _lines("deita.jsonl")
INSTAG = _lines("instag.jsonl")


def test_the_corpus_is_as_large_as_promised():
    assert len(ALPAGASUS) >= 60 and len(DEITA) >= 25 and len(INSTAG) >= 20
    assert sum(line["origin"] == "verbatim" for line in ALPAGASUS) >= 60


@pytest.mark.parametrize("line", ALPAGASUS, ids=lambda line: line["why"][:40])
def test_alpagasus_replies(line):
    judge = AlpagasusJudge()
    _check(lambda reply: judge.parse(reply)["score"], line)


@pytest.mark.parametrize("line", ALPAGASUS, ids=lambda line: line["why"][:40])
def test_alpagasus_structured_mode_reads_the_same(line):
    """A structured judge whose reply is not JSON falls back to the same ladder."""
    judge = AlpagasusJudge(structured=True)
    _check(lambda reply: judge.parse(reply)["score"], line)


@pytest.mark.parametrize("line", DEITA, ids=lambda line: line["why"][:40])
def test_deita_direct_replies(line):
    _check(lambda reply: parse_direct(reply)["score"], line)


@pytest.mark.parametrize("line", INSTAG, ids=lambda line: line["why"][:40])
def test_instag_replies(line):
    try:
        got = [t["tag"] for t in parse_tags(line["reply"])["tags"]]
    except ParseError:
        got = None
    expect = line["expect"]
    if expect == []:  # a valid empty list: the judge re-asks (every query has an intention)
        assert got is None
    elif expect is None:
        assert got is None, f"read {got} ({line['why']})"
    else:
        assert got == [normalise_tag(t) for t in expect], line["why"]
