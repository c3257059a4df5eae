"""Judge noise and bias (issue 19 items 2 and 3): `winnow audit stability` and `winnow audit bias`."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from typer.testing import CliRunner

from tests.fakeserver import FakeServer, hash_messages
from winnow.audit.bias import bias_report
from winnow.audit.stability import stability
from winnow.cli.app import app
from winnow.data import load

MODEL = "openai/noisy-judge"


def _noisy_server():
    """Each prompt's first answer is its 'original' grade; every later answer flips a 5 to a 4
    when hash(prompt, k) % 4 == 0 (k = the k-th time asked): a known noise."""
    asked: Counter[str] = Counter()
    flips: list[tuple[str, int]] = []

    def responder(body):
        h = hash_messages(body.get("messages"))
        k = asked[h]
        asked[h] += 1
        base = 5 if int(h, 16) % 2 else 3
        if k > 0 and base == 5 and (int(h, 16) + k) % 4 == 0:
            flips.append((h, k))
            return "4\nMostly accurate."
        return f"{base}\nThe response is accurate."

    return responder, asked, flips


def test_stability_matches_the_servers_known_noise_and_repeats_are_cached(alpaca_rows, write_jsonl, tmp_path):
    from winnow.api import rate

    responder, _asked, flips = _noisy_server()
    data = write_jsonl(alpaca_rows[:60])
    with FakeServer(responder=responder) as server:
        judged = tmp_path / "judged.jsonl"
        rate(data, ["alpagasus"], MODEL, api_base=server.url, cache_dir=tmp_path / "c", output=judged)
        before = server.total
        report = stability(judged, "alpagasus", MODEL, api_base=server.url, sample=40, repeats=3,
                           cache_dir=tmp_path / "c", resamples=200)
        assert server.total - before == 40 * 3 == report.requests  # sample x repeats, exactly
        again = stability(judged, "alpagasus", MODEL, api_base=server.url, sample=40, repeats=3,
                          cache_dir=tmp_path / "c", resamples=200)
        assert server.total - before == 120 and again.requests == 0  # repeats are cached
    rows = [json.loads(line) for line in judged.read_text().splitlines()]
    chosen = load(judged).samples
    assert flips  # the noise touched some rows
    # the known noise: of the selected rows sampled (the audit's seeded draw), the repeats that flipped below 4.5
    eligible = [s for s in chosen if s.row.get("alpagasus_status") == "ok"]
    sampled = random.Random(0).sample(eligible, 40)
    selected_sampled = [s for s in sampled if s.row["alpagasus_score"] >= 4.5]
    from winnow.judges.registry import get_judge

    judge = get_judge("alpagasus")
    hashes = {hash_messages(judge.render(s)) for s in selected_sampled}
    flipped = sum(1 for h, _ in flips if h in hashes)
    expected = 1 - flipped / (len(selected_sampled) * 3)
    assert report.figures["selected rows that stay selected"] == pytest.approx(expected, abs=1e-12)
    low, high = report.intervals["selected rows that stay selected"]
    assert low - 1e-9 <= expected <= high + 1e-9
    assert len(rows) == 60


def test_cli_stability_dry_run_prices_first(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl([dict(r, alpagasus_score=5.0, alpagasus_status="ok") for r in alpaca_rows[:10]])
    result = CliRunner().invoke(app, ["audit", "stability", str(data), "--judge", "alpagasus", "--model",
                                      "openai/gpt-4o-mini", "--sample", "4", "--repeats", "3", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "12 calls (4 rows x 3 repeats)" in result.output and "nothing was sent" in result.output


def test_bias_finds_a_length_bias_and_a_flat_row_order(write_jsonl, tmp_path):
    rows = []
    for i in range(80):
        length = 20 + (i * 37) % 400
        rows.append({"instruction": f"Question {i}?", "input": "", "output": "x" * length,
                     "alpagasus_score": round(min(5.0, 1.0 + length / 100), 1), "alpagasus_status": "ok",
                     "source": "gpt-4o-2024-08-06" if i % 2 else "claude-3-5-sonnet"})
    rows.append({"instruction": "failed", "input": "", "output": "y", "alpagasus_score": None,
                 "alpagasus_status": "judge_failed", "source": "model-a"})
    samples = load(write_jsonl(rows)).samples
    report = bias_report(samples, "alpagasus", source_column="source", resamples=200)
    rho, ci = report.correlations["response length"]
    assert rho is not None and rho > 0.95 and ci[0] > 0.9  # the judge rewards length
    position, _ = report.correlations["row position"]
    assert position is not None and abs(position) < 0.3
    assert report.left_out == 1 and set(report.by_source) == {"gpt-4o-2024-08-06", "claude-3-5-sonnet"}
    result = CliRunner().invoke(app, ["audit", "bias", str(write_jsonl(rows, "b.jsonl")), "--judge", "alpagasus",
                                      "--source-column", "source", "--resamples", "100",
                                      "--judge-model", "openai/gpt-4o-mini"])
    assert result.exit_code == 0 and "score vs response length" in result.output
    own = [line for line in result.output.splitlines() if "self-preference" in line]
    assert len(own) == 1 and "gpt-4o-2024-08-06" in own[0]
    assert "a relation: scores move with it" in result.output


def test_the_report_shows_the_trust_section_in_headless_chromium(alpaca_rows, write_jsonl, tmp_path):
    """agree and stability JSON into `winnow report --trust`; the section's plots and verdict render."""
    import re

    from tests.test_report_browser import _chromium
    from winnow.api import rate

    responder, _asked, _flips = _noisy_server()
    data = write_jsonl([dict(r, human=5 if i % 3 else 2) for i, r in enumerate(alpaca_rows[:60])])
    with FakeServer(responder=responder) as server:
        judged = tmp_path / "judged.jsonl"
        rate(data, ["alpagasus"], MODEL, api_base=server.url, cache_dir=tmp_path / "c", output=judged)
        runner = CliRunner()
        stab = runner.invoke(app, ["audit", "stability", str(judged), "--judge", "alpagasus", "--model", MODEL,
                                   "--api-base", server.url, "--sample", "30", "--repeats", "2", "--json",
                                   "--cache-dir", str(tmp_path / "c")])
        assert stab.exit_code == 0, stab.output
    agr = CliRunner().invoke(app, ["agree", str(judged), "--judge", "alpagasus", "--labels", "human",
                                   "--threshold", "4.5", "--json", "--resamples", "100"])
    assert agr.exit_code == 0, agr.output
    (tmp_path / "stability.json").write_text(stab.output)
    (tmp_path / "agree.json").write_text(agr.output)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(judged), "-o", str(out), "--no-cache",
                                      "--trust", str(tmp_path / "stability.json"),
                                      "--trust", str(tmp_path / "agree.json")])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Can this judge be trusted?" in html and 'class="verdict"' in html
    assert "selected rows that stay selected" in html and "Agreement matrix" in html
    assert "score against response length" in html and "Rules: a length bias" in html
    dom = _chromium(tmp_path, "--dump-dom", out.as_uri())
    assert dom.returncode == 0 and 'data-ready="1"' in dom.stdout, dom.stderr[-2000:]
    section = dom.stdout[dom.stdout.index('id="trust"'):]
    assert len(re.findall(r'class="mark point"', section)) >= 50  # scores against length, one dot a row
    assert len(re.findall(r'class="mark bar"', section)) >= 2  # stay selected / drop out
    assert re.search(r"<h3>alpagasus: <span class=\"verdict\">(trust|use with care|do not trust)</span></h3>",
                     section)
