"""DEITA judges: parsers, the three modes end to end against the fake server, and combine_deita."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from winnow.api import rate
from winnow.cache import JudgmentCache
from winnow.engine import EngineSettings
from winnow.judges.base import ParseError
from winnow.judges.deita import DeitaComplexityJudge, DeitaQualityJudge, combine_deita
from winnow.judges.deita_direct import parse_direct
from winnow.judges.deita_evol import COMPLEXITY_OPS, choose_op, parse_evolution, parse_rank
from winnow.judges.deita_scorer import complexity_prompt, parse_scorer, quality_prompt
from winnow.judges.registry import get_judge
from winnow.types import Reply, TokenLogprob, Usage

MODEL = "openai/fake-model"
SETTINGS = EngineSettings(backoff_initial=0.01, concurrency=4)
L = math.log


def _rate(path: Path, srv, tmp_path: Path, judges: list[str], **kw):
    return rate(
        path,
        judges,
        MODEL,
        api_base=srv.url,
        api_key="sk-test",
        cache_dir=tmp_path / "cache",
        settings=SETTINGS,
        **kw,
    )


def _reply(text: str, logprobs: list[TokenLogprob] | None = None) -> Reply:
    return Reply(text=text, usage=Usage(), logprobs=logprobs)


def _lp_reply(content: str, top: dict[str, float], token: str | None = None) -> dict:
    """A scripted fake-server reply whose first token has the given alternatives (probabilities)."""
    token = token or content
    tops = {t: L(p) for t, p in top.items()}
    return {"content": content, "logprobs": [{"token": token, "logprob": tops[token], "top_logprobs": tops}]}


# ----------------------------------------------------------------------------- parser units


def test_direct_expectation_over_present_digits_renormalised():
    lp = [TokenLogprob("4", L(0.6), {"4": L(0.6), "3": L(0.2), "5": L(0.1), "Four": L(0.05)})]
    parsed = parse_direct(_reply("4", lp))
    assert parsed["method"] == "logprobs"
    assert parsed["score"] == pytest.approx((3 * 0.2 + 4 * 0.6 + 5 * 0.1) / 0.9)
    assert parsed["digit_probs"] == pytest.approx({"3": 0.2 / 0.9, "4": 0.6 / 0.9, "5": 0.1 / 0.9})
    assert sum(parsed["digit_probs"].values()) == pytest.approx(1.0)


def test_direct_finds_the_score_token_after_a_label_and_ignores_digits_outside_1_to_6():
    lp = [
        TokenLogprob("Score", L(0.9), {}),
        TokenLogprob(":", L(0.99), {}),
        TokenLogprob(" 5", L(0.5), {" 5": L(0.5), " 6": L(0.3), " 0": L(0.1), " 9": L(0.05)}),
    ]
    parsed = parse_direct(_reply("Score: 5", lp))
    assert parsed["method"] == "logprobs"
    assert parsed["score"] == pytest.approx((5 * 0.5 + 6 * 0.3) / 0.8)


@pytest.mark.parametrize(
    ("text", "logprobs", "score"),
    [
        ("four", None, 4.0),  # a number word: no digit token, the parsed value
        ("5", None, 5.0),  # no log-probs at all
        ("4.5", [TokenLogprob("4", 0.0, {"4": 0.0})], 4.5),  # not an integer: the digit is not the score
    ],
)
def test_direct_falls_back_to_the_parsed_score_and_says_so(text, logprobs, score):
    parsed = parse_direct(_reply(text, logprobs))
    assert parsed["method"] == "parsed" and parsed["score"] == score and parsed["digit_probs"] == {}


@pytest.mark.parametrize("text", ["7", "0", "Score: 9", "nine", "I would not score this."])
def test_direct_out_of_range_or_missing_is_a_parse_error(text):
    with pytest.raises(ParseError):
        parse_direct(_reply(text, [TokenLogprob(text[:1], 0.0, {})]))


def test_rank_reads_lines_labels_and_json():
    assert parse_rank("[1] Score: 2\n[2] Score: 4\n[3] Score: 6", 3) == {"scores": [2.0, 4.0, 6.0]}
    assert parse_rank("**[Response 1] Score:** 3\n[Response 2] Score: 5", 2) == {"scores": [3.0, 5.0]}
    assert parse_rank('```json\n{"1": 2, "2": 3}\n```', 2) == {"scores": [2.0, 3.0]}
    assert parse_rank("[2, 5, 1]", 3) == {"scores": [2.0, 5.0, 1.0]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1] Score: 2\n[2] Score: 7", "outside 1-6"),  # P-D7: labels stay in 1..6
        ("[1] Score: 2", "no score for item(s) 2"),
        ("The first is easiest.", "no score for item(s) 1, 2"),
    ],
)
def test_rank_rejects_out_of_range_and_missing(text, message):
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_rank(text, 2)


def test_evolution_strips_an_echoed_label_and_rejects_empty():
    assert parse_evolution(_reply("#Rewritten Prompt#: Sort it descending.")) == {
        "text": "Sort it descending."
    }
    with pytest.raises(ParseError):
        parse_evolution(_reply("  \n"))


def test_op_choice_is_deterministic_and_walks_every_op():
    chain = [choose_op(COMPLEXITY_OPS, "seed text", s) for s in range(1, 5)]
    assert sorted(chain) == sorted(COMPLEXITY_OPS)
    assert chain == [choose_op(COMPLEXITY_OPS, "seed text", s) for s in range(1, 5)]


def test_scorer_templates_are_byte_exact():
    assert complexity_prompt("Hi {x}") == (
        "You are a helpful assistant. Please identify the complexity score of the following user query. "
        "\n##Query: Hi {x}  \n##Complexity: "
    )
    assert quality_prompt("Q", "R") == (
        "You are a helpful assistant. Please identify the quality score of the Response corresponding to the "
        "Question. \n #Question#:\nQ\n#Response#:\nR \n##Quality: "
    )


def test_scorer_parse_missing_digits_is_not_a_score():
    parsed = parse_scorer(_reply("x", [TokenLogprob("x", 0.0, {"x": 0.0, "y": -3.0})]))
    assert parsed["score"] is None and "no digit" in parsed["reason"]
    assert parse_scorer(_reply("4", None))["score"] is None


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="unknown mode"):
        DeitaComplexityJudge(mode="fast")
    with pytest.raises(ValueError, match="evolutions"):
        DeitaQualityJudge(mode="evol", evolutions=0)
    judge = get_judge("deita-complexity", {"mode": "evol", "evolutions": 2, "structured": True})
    assert isinstance(judge, DeitaComplexityJudge) and judge.evolutions == 2


def test_combine_deita_sums_per_turn_products_and_skips_failures():
    rows = [
        {
            "deita_complexity_scores": [2.0, 3.0],
            "deita_quality_scores": [4.0, 5.0],
            "deita_complexity_status": "ok",
            "deita_quality_status": "ok",
        },
        {
            "deita_complexity_scores": None,
            "deita_quality_scores": [4.0],
            "deita_complexity_status": "judge_failed",
            "deita_quality_status": "ok",
        },
        {
            "deita_complexity_scores": [2.0],
            "deita_quality_scores": [4.0, 1.0],
            "deita_complexity_status": "ok",
            "deita_quality_status": "ok",
        },
    ]
    out = combine_deita(rows)
    assert out is rows
    assert rows[0]["deita_score"] == 2 * 4 + 3 * 5  # not (2+3)*(4+5), not a mean (P-D3)
    assert rows[1]["deita_score"] is None and rows[2]["deita_score"] is None
    lone = [{"deita_complexity_scores": [2.0], "deita_complexity_status": "ok"}]
    assert "deita_score" not in combine_deita(lone)[0]


# ----------------------------------------------------------------------------- end to end

CONVO = {
    "conversations": [
        {"from": "human", "value": "What is the capital of Peru?"},
        {"from": "gpt", "value": "Lima."},
        {"from": "human", "value": "Compare its climate with that of Quito in detail."},
        {"from": "gpt", "value": "Lima is arid and mild; Quito is highland and spring-like."},
    ]
}


def test_direct_multi_turn_both_judges_logprobs_and_combined_score(write_jsonl, fake_server, tmp_path):
    data = write_jsonl([CONVO])
    # complexity prompts show only the query; quality prompts show the response as well
    fake_server.script("Lima.", _lp_reply("3", {"3": 0.5, "4": 0.5}))  # quality, turn 0
    fake_server.script("highland", {"content": "Five.", "logprobs": []})  # quality, turn 1: no digit
    fake_server.script("capital of Peru", _lp_reply("1", {"1": 0.8, "2": 0.2}))
    fake_server.script("climate with that of Quito", _lp_reply("4", {"4": 0.6, "5": 0.2, "Four": 0.1}))
    result = _rate(data, fake_server, tmp_path, ["deita-complexity", "deita-quality"])
    assert fake_server.total == 4  # one call per user turn per judge, no history in any prompt
    for req in fake_server.requests:
        assert req.body["top_logprobs"] == 20 and req.body["logprobs"] is True
    row = combine_deita(result.rows)[0]
    c = [0.8 * 1 + 0.2 * 2, (4 * 0.6 + 5 * 0.2) / 0.8]
    q = [3.5, 5.0]
    assert row["deita_complexity_scores"] == pytest.approx(c)
    assert row["deita_complexity_score"] == pytest.approx(sum(c) / 2)
    assert row["deita_complexity_method"] == "logprobs"
    assert row["deita_quality_scores"] == pytest.approx(q)
    assert row["deita_quality_method"] == "mixed"  # turn 0 logprobs, turn 1 parsed
    assert row["deita_score"] == pytest.approx(c[0] * q[0] + c[1] * q[1])

    with JudgmentCache(tmp_path / "cache") as cache:
        records = {(r["judge"], r["purpose"]): r for r in cache.records()}
    assert len(records) == 4
    parsed_turn = records[("deita_quality", "turn1")]["parsed"]
    assert parsed_turn == {"score": 5.0, "method": "parsed", "digit_probs": {}, "stated": 5.0}
    assert records[("deita_quality", "turn0")]["parsed"]["digit_probs"] == pytest.approx({"3": 0.5, "4": 0.5})

    again = _rate(data, fake_server, tmp_path, ["deita-complexity", "deita-quality"])
    assert fake_server.total == 4 and again.stats.calls == 0


def test_direct_out_of_range_is_reasked_then_judge_failed(write_jsonl, fake_server, tmp_path):
    data = write_jsonl([{"instruction": "Name a prime number.", "input": "", "output": "7"}])
    fake_server.script("Name a prime", "7")
    fake_server.script("could not be used", "8")
    row = _rate(data, fake_server, tmp_path, ["deita-complexity"]).rows[0]
    assert fake_server.total == 2
    assert row["deita_complexity_status"] == "judge_failed"
    assert "outside 1-6" in row["deita_complexity_error"] and row["deita_complexity_score"] is None


def test_evol_mode_evolves_sequentially_then_ranks(write_jsonl, fake_server, tmp_path):
    data = write_jsonl([{"instruction": "Sort a list of numbers.", "input": "", "output": "sorted(xs)"}])
    fake_server.script("Rank the queries", "[1] Score: 2\n[2] Score: 3\n[3] Score: 5")
    fake_server.script("in descending order", "Sort a list of numbers in descending order without sorted().")
    fake_server.script("Sort a list of numbers.", "Sort a list of numbers in descending order.")
    opts = {"mode": "evol", "evolutions": 2}
    result = _rate(data, fake_server, tmp_path, ["deita-complexity"], judge_options=opts,
                   output=tmp_path / "rated.jsonl")
    row = result.rows[0]
    assert fake_server.total == 3
    evol1, evol2, rank = (r.body["messages"][-1]["content"] for r in fake_server.requests)
    assert "Sort a list of numbers." in evol1 and "descending" not in evol1
    assert "Sort a list of numbers in descending order." in evol2  # built on the previous variant
    assert choose_op(COMPLEXITY_OPS, "Sort a list of numbers.", 1) in evol1
    assert choose_op(COMPLEXITY_OPS, "Sort a list of numbers.", 2) in evol2
    assert "[3] Sort a list of numbers in descending order without sorted()." in rank
    assert row["deita_complexity_status"] == "ok"
    # the seed's rank inside its own chain, named for what it is; no <judge>_score to select on
    assert row["deita_complexity_evol_seed_scores"] == [2.0] and row["deita_complexity_method"] == "evol"
    assert "deita_complexity_score" not in row and "deita_complexity_scores" not in row
    import pandas as pd

    assert result.evol_labels == tmp_path / "rated.evol_labels.parquet"
    labels = pd.read_parquet(result.evol_labels)
    assert list(labels["step"]) == [0, 1, 2] and list(labels["score"]) == [2.0, 3.0, 5.0]
    assert list(labels["instruction"]) == ["Sort a list of numbers.", "Sort a list of numbers in descending order.",
                                           "Sort a list of numbers in descending order without sorted()."]
    assert pd.isna(labels["operation"].iloc[0])  # the seed: no operation made it
    assert list(labels["operation"][1:]) == [choose_op(COMPLEXITY_OPS, "Sort a list of numbers.", k) for k in (1, 2)]
    assert set(labels["seed_id"]) == {result.samples[0].id} and set(labels["judge"]) == {"deita_complexity"}
    with JudgmentCache(tmp_path / "cache") as cache:
        assert sorted(r["purpose"] for r in cache.records()) == ["evol1", "evol2", "rank"]
    _rate(data, fake_server, tmp_path, ["deita-complexity"], judge_options=opts)
    assert fake_server.total == 3


def test_evol_quality_evolves_the_response(write_jsonl, fake_server, tmp_path):
    data = write_jsonl([{"instruction": "Give a tip for sleep.", "input": "", "output": "Go to bed early."}])
    fake_server.script("Rank the responses", '{"1": 3, "2": 4}')
    fake_server.script("Go to bed early.", "Go to bed at the same early hour every night.")
    opts = {"mode": "evol", "evolutions": 1}
    row = _rate(data, fake_server, tmp_path, ["deita-quality"], judge_options=opts).rows[0]
    evol, rank = (r.body["messages"][-1]["content"] for r in fake_server.requests)
    assert "Give a tip for sleep." in evol and "Go to bed early." in evol
    assert "[2] Go to bed at the same early hour every night." in rank
    assert row["deita_quality_evol_seed_scores"] == [3.0]


def test_scorer_mode_sends_the_literal_template_and_reads_the_first_token(write_jsonl, fake_server, tmp_path):
    data = write_jsonl([{"instruction": "Explain TCP.", "input": "", "output": "A transport protocol."}])
    fake_server.script("complexity score", _lp_reply("2", {"2": 0.5, "3": 0.25, "1": 0.25}))
    fake_server.script("quality score", _lp_reply("5", {"5": 0.6, "6": 0.2, "4": 0.2}))
    result = _rate(
        data, fake_server, tmp_path, ["deita-complexity", "deita-quality"], judge_options={"mode": "scorer"}
    )
    bodies = [r.body for r in fake_server.requests]
    sent = sorted((b["messages"] for b in bodies), key=lambda m: m[0]["content"])
    assert sent == [
        [{"role": "user", "content": complexity_prompt("Explain TCP.")}],
        [{"role": "user", "content": quality_prompt("Explain TCP.", "A transport protocol.")}],
    ]
    assert all(b["max_tokens"] <= 4 and b["top_logprobs"] == 20 for b in bodies)
    row = combine_deita(result.rows)[0]
    assert row["deita_complexity_score"] == pytest.approx(2 * 0.5 + 3 * 0.25 + 1 * 0.25)
    assert row["deita_quality_score"] == pytest.approx(5 * 0.6 + 6 * 0.2 + 4 * 0.2)
    assert row["deita_complexity_method"] == "scorer"
    assert row["deita_score"] == pytest.approx(2.0 * 5.0)


def test_scorer_without_digits_fails_unless_a_fallback_is_asked_for(write_jsonl, fake_server, tmp_path):
    data = write_jsonl([{"instruction": "Explain UDP.", "input": "", "output": "Datagrams."}])
    fake_server.script("complexity score", _lp_reply("The", {"The": 0.7, "A": 0.3}))
    row = _rate(data, fake_server, tmp_path, ["deita-complexity"], judge_options={"mode": "scorer"}).rows[0]
    assert row["deita_complexity_status"] == "judge_failed"
    assert (
        "no digit 1-6" in row["deita_complexity_error"] and "scorer_fallback" in row["deita_complexity_error"]
    )
    assert fake_server.total == 1  # no re-ask of a scorer model

    opts = {"mode": "scorer", "scorer_fallback": 3}
    row = _rate(data, fake_server, tmp_path, ["deita-complexity"], judge_options=opts).rows[0]
    assert fake_server.total == 1  # the cached reply is re-read with the fallback: no new request
    assert row["deita_complexity_status"] == "ok"
    assert row["deita_complexity_score"] == 3.0 and row["deita_complexity_method"] == "fallback"


def test_quality_of_a_turn_without_reply_is_scored_with_an_empty_response(write_jsonl, fake_server, tmp_path):
    # methods.md 3.4: a conversation that ends on a user turn scores that turn with an empty
    # response (a row with no response at all is refused: tests/test_shapes.py)
    data = write_jsonl([{"messages": [{"role": "user", "content": "Is 7 prime?"},
                                      {"role": "assistant", "content": "Yes."},
                                      {"role": "user", "content": "Is 91 prime?"}]}])
    fake_server.script("Is 7 prime", _lp_reply("5", {"5": 1.0}))
    fake_server.script("Is 91 prime", _lp_reply("1", {"1": 1.0}))
    row = _rate(data, fake_server, tmp_path, ["deita-quality"]).rows[0]
    assert row["deita_quality_scores"] == [5.0, 1.0]
    last = next(r for r in fake_server.requests if "Is 91 prime" in r.body["messages"][-1]["content"])
    assert "#Response#:\n\n</data>" in last.body["messages"][-1]["content"]
    assert json.dumps(row)  # the row stays JSON-serialisable
