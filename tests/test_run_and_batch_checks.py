"""`winnow run` checks a pipeline file the same way with and without --dry-run, in the file's words;
batch jobs say honestly whether they were submitted and what a collect bought.

Each case was found by trying the CLI as a user: a dry run priced files the run refused
(`concurrency: -3`, `select: {method: bogus}`, `judges: []`), errors named CLI flags a file has
not got, an unclosed bracket on line 1 was reported at line 2, a binary file gave a bare codec
error, WINNOW_CACHE_DIR beat the file's `cache_dir:`, a refused batch submit left a job that
`batch status` called "still running at the provider", and a second `batch collect` reported
the job's judgments as new again.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.batchserver import BatchServer
from winnow.batch.driver import submit
from winnow.batch.journal import list_jobs
from winnow.cli.app import app
from winnow.pipeline import Pipeline, PipelineError

ROWS = [{"instruction": f"Add {i} and 2.", "input": "", "output": str(i + 2)} for i in range(6)]
MODEL = "openai/gpt-4o-mini"  # listed price: batch costs are not zero


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _pipeline(tmp_path: Path, body: str, name: str = "p.yaml") -> Path:
    """A pipeline file beside a small input; ``body`` adds or sets keys."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    spec = tmp_path / name
    spec.write_text(f"input: data.jsonl\nmodel: openai/judge\noutputs: {{dir: out}}\n{body}")
    return spec


def _flat(text: str) -> str:
    return " ".join(text.split())


BAD_FILES = [
    ("judges: [alpagasus]\nselect: {method: bogus}\n", "select.method: must be threshold, instag or deita"),
    ("judges: [alpagasus]\nconcurrency: -3\n", "concurrency: must be at least 1 (got -3)"),
    ("judges: [alpagasus]\ntimeout: -1\n", "timeout: must be more than 0 seconds"),
    ("judges: [alpagasus]\nmax_retries: -1\n", "max_retries: must be 0 or more"),
    ("judges: [alpagasus]\non_bad_row: bogus\n", "on_bad_row: must be fail or skip"),
    ("judges: []\n", "judges: must name at least one judge (e.g. judges: [alpagasus])"),
    ("judges: [alpagasus]\ntransport: fsat\n", "transport: must be auto, fast or litellm"),
    ("judges: [alpagasus]\nengine: {kind: spark}\n", "engine.kind: must be local or ray"),
    ("judges: [alpagasus]\nrpm: 0\n", "rpm: must be more than 0"),
    ("judges: [alpagasus]\nmax_cost: 0\n", "max_cost: must be more than 0 dollars"),
]


@pytest.mark.parametrize(("body", "words"), BAD_FILES)
@pytest.mark.parametrize("dry", [True, False])
def test_a_bad_pipeline_value_is_refused_with_or_without_dry_run(fake_server, tmp_path, body, words, dry):
    """The dry run used to price these (exit 0); both refuse them, naming the file's key, not a flag."""
    spec = _pipeline(tmp_path, body)
    code, out = _cli("run", str(spec), "--api-base", fake_server.url, "--cache-dir", str(tmp_path / "c"), "-q",
                     *(["--dry-run"] if dry else []))
    assert code == 2, out
    assert f"{spec.name}: {words}" in _flat(out), out
    assert "pipeline total" not in out and "Traceback" not in out
    assert "--concurrency" not in out and "--judge" not in out  # a file has keys, not flags
    assert fake_server.total == 0 and not (tmp_path / "out").exists()
    with pytest.raises(PipelineError, match=words.split(":")[0]):
        Pipeline.from_yaml(spec)


def test_a_dry_run_checks_the_steps_and_columns_as_a_run_does(tmp_path):
    spec = _pipeline(tmp_path, "judges: [alpagasus]\nselect: {method: threshold, score_column: alpagasus_scor, "
                               "top_k: 2}\n")
    code, out = _cli("run", str(spec), "--api-base", "http://127.0.0.1:9/v1", "--dry-run",
                     "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "select.score_column 'alpagasus_scor': no judge of this pipeline writes it" in _flat(out)
    assert "pipeline total" not in out
    # a judge's option no judge takes, and a judge without a model, are refused too
    spec = _pipeline(tmp_path, "judges: [{name: alpagasus, options: {dimensoin: x}}]\n", "q.yaml")
    code, out = _cli("run", str(spec), "--dry-run", "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "did you mean 'dimension'" in out
    spec = tmp_path / "nomodel.yaml"
    spec.write_text("input: data.jsonl\njudges: [alpagasus]\n")
    code, out = _cli("run", str(spec), "--dry-run", "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "judge 'alpagasus' has no model" in out


def test_engine_refusals_name_the_files_keys():
    """A pipeline built without validation (model_construct) still gets the key, not the flag."""
    from winnow.pipeline_run import engine_settings

    spec = Pipeline.model_construct(**{**Pipeline(input="x.jsonl", judges=["alpagasus"]).__dict__,
                                       "concurrency": 0})
    with pytest.raises(PipelineError, match=r"^concurrency must be at least 1") as info:
        engine_settings(spec)
    assert "--" not in str(info.value)


def test_command_line_overrides_are_checked_like_the_files_keys(fake_server, tmp_path):
    spec = _pipeline(tmp_path, "judges: [alpagasus]\n")
    for flag in ("--transport", "--engine"):
        code, out = _cli("run", str(spec), "--api-base", fake_server.url, flag, "bogus", "--dry-run",
                         "--cache-dir", str(tmp_path / "c"))
        assert code == 2 and "must be" in out and "'bogus'" in out, out
    assert fake_server.total == 0


@pytest.mark.parametrize("value", ["-1", "0"])
def test_run_refuses_a_max_cost_that_is_not_positive_in_rates_words(fake_server, tmp_path, value):
    spec = _pipeline(tmp_path, "judges: [alpagasus]\n")
    code, out = _cli("run", str(spec), "--api-base", fake_server.url, "--max-cost", value,
                     "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 2 and "--max-cost must be more than 0 dollars" in out, out
    assert "0 or more" not in out and fake_server.total == 0


def test_yaml_errors_name_the_right_line_and_binary_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed\n")
    code, out = _cli("run", str(bad))
    assert code == 2 and f"{bad} line 1: not valid YAML" in out and "line 2" not in out, out
    assert "<unicode string>" not in out
    later = tmp_path / "later.yaml"
    later.write_text("input: data.jsonl\nmodel: m\njudges: [alpagasus\n\n")
    code, out = _cli("run", str(later))
    assert code == 2 and f"{later} line 3: not valid YAML" in out, out
    mid = tmp_path / "mid.yaml"
    mid.write_text("input: data.jsonl\n  model: m\njudges: [alpagasus]\n")
    code, out = _cli("run", str(mid))
    assert code == 2 and f"{mid} line 2: not valid YAML" in out, out
    binary = tmp_path / "p_bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, out = _cli("run", str(binary))
    assert code == 2 and str(binary) in out and "not a text (UTF-8) file" in out, out
    assert "Traceback" not in out


def test_the_files_cache_dir_beats_winnow_cache_dir_and_the_flag_beats_both(fake_server, tmp_path):
    spec = _pipeline(tmp_path, f"api_base: {fake_server.url}\njudges: [alpagasus]\nlimit: 2\n"
                               "cache_dir: pipecache\n")
    env = {"WINNOW_CACHE_DIR": str(tmp_path / "envcache")}
    code, out = _cli("run", str(spec), "-q", env=env)
    assert code == 0, out
    assert (tmp_path / "pipecache").is_dir() and not (tmp_path / "envcache").exists()
    code, out = _cli("run", str(spec), "-q", "--cache-dir", str(tmp_path / "flagcache"), env=env)
    assert code == 0, out
    assert (tmp_path / "flagcache").is_dir() and not (tmp_path / "envcache").exists()
    # without the file's key, WINNOW_CACHE_DIR is the default
    spec.write_text(spec.read_text().replace("cache_dir: pipecache\n", ""))
    code, out = _cli("run", str(spec), "-q", env=env)
    assert code == 0, out
    assert (tmp_path / "envcache").is_dir()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_batch_submit_is_not_a_running_job(fake_server, write_jsonl, tmp_path):
    """The plain fake server has no batch API: the job is "not submitted", with the reason."""
    data = write_jsonl(ROWS)
    cache_dir = tmp_path / "c"
    code, out = _cli("rate", str(data), "-j", "alpagasus", "--model", "openai/fake-model", "--api-base",
                     fake_server.url, "--limit", "2", "--detach", "--cache-dir", str(cache_dir))
    assert code == 1 and "the batch API refused" in out and "404" in out, out
    code, out = _cli("batch", "status", "--cache-dir", str(cache_dir))
    assert code == 0, out
    assert "not submitted (failed to submit:" in out and "404" in out
    assert "running" not in out and "still running at the provider" not in out
    assert "submits it again" in out


def test_rerunning_a_refused_batch_submit_submits_it(write_jsonl, tmp_path):
    """Nothing answers at the address at first; once a batch API does, the same command submits
    the same job (one job, one batch: nothing is bought twice)."""
    data = write_jsonl(ROWS)
    cache_dir = tmp_path / "c"
    port = _free_port()
    argv = ["rate", str(data), "-j", "alpagasus", "--model", MODEL, "--api-base", f"http://127.0.0.1:{port}/v1",
            "--detach", "--cache-dir", str(cache_dir), "-q"]
    code, out = _cli(*argv)
    assert code == 1 and "cannot reach it" in out, out
    [job] = list_jobs(cache_dir)
    assert not job.submitted and "cannot reach it" in (job.submit_error() or "")
    with BatchServer(port=port) as server:
        code, out = _cli(*argv)
        assert code == 0, out
        assert job.job in out and "could not submit" in out and "went on with" not in out, out
        assert len(server.batches) == 1
        code, out = _cli("batch", "status", job.job, "--cache-dir", str(cache_dir))
    assert code == 0 and "not submitted" not in out and "failed to submit" not in out, out
    [again] = list_jobs(cache_dir)
    assert again.submitted and again.submit_error() is None and again.chunks[0].submit_error is None


def test_detach_implies_batch_in_rate_and_in_run(write_jsonl, tmp_path):
    data = write_jsonl(ROWS)
    with BatchServer(delay=60) as server:
        code, out = _cli("rate", str(data), "-j", "alpagasus", "--model", MODEL, "--api-base", server.url,
                         "--detach", "--cache-dir", str(tmp_path / "c1"), "-q")
        assert code == 0 and out.startswith("wb-"), out
        spec = tmp_path / "p.yaml"
        spec.write_text(yaml.safe_dump({"input": str(data), "model": MODEL, "api_base": server.url,
                                        "judges": ["alpagasus"], "outputs": {"dir": str(tmp_path / "run")}}))
        code, out = _cli("run", str(spec), "--detach", "--cache-dir", str(tmp_path / "c2"), "-q")
        assert code == 0 and out.startswith("wb-"), out
        assert len(server.batches) == 2 and server.online == 0  # both went as batches, nothing online
    for command in ("rate", "run"):
        code, out = _cli(command, "--help")
        assert "implies --batch" in _flat(out), out


def test_a_second_collect_reports_nothing_new(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:6])
    cache_dir = tmp_path / "c"
    with BatchServer(delay=0.2) as server:
        args = {"data": str(data), "judges": ["alpagasus"], "model": MODEL, "api_base": server.url,
                "output": str(tmp_path / "o.jsonl")}
        job = submit(args, cache_dir=cache_dir, detach=True).job.job
        time.sleep(0.3)
        code, first = _cli("batch", "collect", job, "--cache-dir", str(cache_dir))
        assert code == 0 and "0 from cache, 6 new (6 requests" in first, first
        (tmp_path / "o.jsonl").unlink()
        code, second = _cli("batch", "collect", job, "--cache-dir", str(cache_dir))
        assert len(server.batches) == 1 and server.online == 0
    assert code == 0, second
    assert "already collected" in second and "6 from cache, 0 new" in second and "6 new" not in second
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 6  # written again, from the cache
