"""``winnow compare``: two models on one file from the cache (no request), --offline, two judged files."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

import winnow.cli.compare  # noqa: F401  (registers `winnow compare`; the lead adds it to winnow/cli/__init__)
from winnow.api import rate
from winnow.cli.app import app
from winnow.cli.compare import OfflineMiss, compare_models
from winnow.engine import EngineSettings


def _responder(body):
    """Model A says what the default fake says; model B scores one step lower on a third of the rows."""
    from tests.fakeserver import default_responder, hash_messages

    reply = default_responder(body)
    if body.get("model") == "model-b" and int(hash_messages(body["messages"])[:4], 16) % 3 == 0:
        score = float(reply.split("\n", 1)[0])
        return f"{max(0.0, score - 1):g}\nModel B is stricter here."
    return reply


@pytest.fixture
def server():
    from tests.fakeserver import FakeServer

    with FakeServer(record=True, responder=_responder) as srv:
        yield srv


def test_compare_two_models_from_the_cache_sends_nothing(alpaca_rows, write_jsonl, server, tmp_path):
    data = write_jsonl(alpaca_rows[:30])
    cache = tmp_path / "c"
    kw = {"api_base": server.url, "cache_dir": cache, "settings": EngineSettings(backoff_initial=0.01)}
    out_a = rate(data, ["alpagasus"], "openai/model-a", output=tmp_path / "a.jsonl", **kw)
    rate(data, ["alpagasus"], "openai/model-b", output=tmp_path / "b.jsonl", **kw)
    assert server.total == 60
    assert len({r["alpagasus_score"] for r in out_a.rows}) > 2

    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(data),
            "--judge",
            "alpagasus",
            "--model",
            "openai/model-a",
            "--model",
            "openai/model-b",
            "--api-base",
            server.url,
            "--cache-dir",
            str(cache),
            "--threshold",
            "4.5",
            "--offline",
            "--report",
            str(tmp_path / "cmp.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert server.total == 60  # every judgment came from the cache
    text = result.output
    for figure in (
        "exact agreement",
        "Spearman rho",
        "Kendall tau-b",
        "quadratic-weighted kappa",
        "kept at >= 4.5",
        "Model B is stricter here.",
    ):
        assert figure in text

    report, _ = compare_models(data, "alpagasus", ["openai/model-a", "openai/model-b"], offline=True, **kw)
    assert server.total == 60
    assert report["compared"] == 30
    lower = sum(1 for a, b in zip(report["scores_a"], report["scores_b"], strict=True) if b < a)
    assert 0 < lower < 30 and report["exact_agreement"] == pytest.approx(1 - lower / 30)
    assert 0 < report["spearman"] < 1

    html = (tmp_path / "cmp.html").read_text()  # both models' distributions, side by side
    assert 'data-series="openai/model-a"' in html and 'data-series="openai/model-b"' in html

    # two judged files, B's rows shuffled: paired by sample id, the same figures
    rows_b = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    random.Random(3).shuffle(rows_b)
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    files = CliRunner().invoke(
        app,
        ["compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--judge", "alpagasus", "--json"],
    )
    assert files.exit_code == 0, files.output
    from_files = json.loads(files.output)
    assert from_files["paired"] == 30
    for k in ("exact_agreement", "spearman", "kendall_tau_b", "quadratic_kappa"):
        assert from_files[k] == pytest.approx(report[k])


def test_offline_fails_when_a_judgment_is_missing(alpaca_rows, write_jsonl, server, tmp_path):
    data = write_jsonl(alpaca_rows[:8])
    kw = {
        "api_base": server.url,
        "cache_dir": tmp_path / "c",
        "settings": EngineSettings(backoff_initial=0.01),
    }
    rate(data, ["alpagasus"], "openai/model-a", **kw)
    sent = server.total
    with pytest.raises(OfflineMiss, match=r"8 of 8 rows .* from openai/model-b"):
        compare_models(data, "alpagasus", ["openai/model-a", "openai/model-b"], offline=True, **kw)
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(data),
            "-j",
            "alpagasus",
            "-m",
            "openai/model-a",
            "-m",
            "openai/model-b",
            "--api-base",
            server.url,
            "--cache-dir",
            str(tmp_path / "c"),
            "--offline",
        ],
    )
    assert result.exit_code == 1 and "--offline" in result.output
    assert server.total == sent  # nothing was sent
    wrong = CliRunner().invoke(app, ["compare", str(data), "-j", "alpagasus", "-m", "openai/model-a"])
    assert wrong.exit_code == 2 and "two --model" in wrong.output
