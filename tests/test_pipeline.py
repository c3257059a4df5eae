"""Pipelines end to end against the loopback server: the example recipes run and resume free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from winnow.pipeline import Pipeline, PipelineError

ROOT = Path(__file__).resolve().parents[1]


def _run(yaml_path: Path, srv, tmp_path: Path, out: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "winnow", "run", str(yaml_path), "--model", "openai/fake-model",
         "--api-base", srv.url, "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / out), "-q"],
        capture_output=True, text=True, timeout=300,
    )


def test_deita_example_produces_subset_and_table_and_rerun_sends_nothing(fake_server, tmp_path):
    first = _run(ROOT / "examples" / "deita.yaml", fake_server, tmp_path, "a")
    assert first.returncode == 0, first.stderr
    sent = fake_server.total
    assert sent > 0
    subset = [json.loads(x) for x in (tmp_path / "a" / "subset.jsonl").read_text().splitlines()]
    assert len(subset) == 20
    assert [r["selection_rank"] for r in subset] == list(range(1, 21))
    scores = [r["deita_score"] for r in subset]
    assert scores == sorted(scores, reverse=True)  # score-first
    table = pd.read_parquet(tmp_path / "a" / "judgments.parquet")
    assert len(table) == 70 and table["sample_id"].is_unique
    assert table["selected"].sum() == 20
    second = _run(ROOT / "examples" / "deita.yaml", fake_server, tmp_path, "b")
    assert second.returncode == 0, second.stderr
    assert fake_server.total == sent  # judgments and embeddings all cached
    assert (tmp_path / "a" / "subset.jsonl").read_bytes() == (tmp_path / "b" / "subset.jsonl").read_bytes()


def test_instag_pipeline_in_python(fake_server, tmp_path):
    pipe = Pipeline(
        input=str(ROOT / "examples" / "sample.jsonl"), model="openai/fake-model", api_base=fake_server.url,
        cache_dir=str(tmp_path / "cache"), judges=["instag"], normalize={"alpha": 1},
        select={"method": "instag", "budget": 10}, outputs={"dir": str(tmp_path / "out"), "report": None},
    )
    result = pipe.run()
    assert result.selected <= 10 and result.pool == 70
    rows = [json.loads(x) for x in result.subset.read_text().splitlines()]
    assert all("instag_tags_raw" in r for r in rows)
    counts = [len(r["instag_tags"]) for r in rows]
    assert counts[0] == max(counts)  # complexity first


def test_pipeline_file_rejects_unknown_keys(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("input: x.jsonl\nmodel: m\njudges: [alpagasus]\nselekt: {method: threshold}\n")
    with pytest.raises(PipelineError, match="selekt"):
        Pipeline.from_yaml(bad)


def test_run_engine_options_a_cluster_address_alone_means_ray():
    from winnow.cli.run import engine_override
    from winnow.pipeline import EngineStep

    step = engine_override(None, None, "127.0.0.2:6379", None, None)
    assert (step.kind, step.address, step.actors, step.in_flight_per_actor) == ("ray", "127.0.0.2:6379", 2, 64)
    step = engine_override(EngineStep(kind="ray", actors=4), None, None, None, 16)
    assert (step.kind, step.address, step.actors, step.in_flight_per_actor) == ("ray", None, 4, 16)
    assert engine_override(EngineStep(kind="ray"), "local", None, None, None).kind == "local"
