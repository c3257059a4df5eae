"""``winnow reparse``: stored replies read again by today's parser, with zero requests (issue 15).

tests/data/old_parser_records.jsonl holds AlpaGasus records as winnow 0.1's parser (commit
87cbe75, the ladder before winnow.judges.scores) wrote them for real reply forms: ``.5`` read as
5.0, ``4.5/10`` as 4.5, ``Rating: 4.5`` / ``**Score**: 4`` / "I would rate this 4.5 out of 5" /
``**Rating:** 2/5`` failed after a re-ask.  Their rows are tests/data/old_parser_rows.jsonl.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.api import open_cache, rate
from winnow.audit.reparse import reparse
from winnow.cli.app import app
from winnow.engine.config import EngineSettings
from winnow.judges.base import PARSER_VERSION
from winnow.judges.reparse import Unparseable, parser_for, reparse_record

DATA = Path(__file__).parent / "data"
OLD = [json.loads(line) for line in (DATA / "old_parser_records.jsonl").read_text().splitlines()]
EXPECTED = {  # the raw reply's first line -> what it states (None: judge_failed, ambiguous)
    ".5": 0.5, "4.5/10": 2.25, "Rating: 4.5": 4.5, "**Score**: 4": 4.0,
    "I would rate this 4.5 out of 5. It is accurate.": 4.5, "4.5": 4.5, "Score: 3.5": 3.5,
    "Sure, here is my evaluation.": 2.0,
}


@pytest.fixture
def old_cache(tmp_path: Path) -> Path:
    cache_dir = tmp_path / "cache"
    with open_cache(cache_dir) as cache:
        for record in OLD:
            cache.put(record["key"], record)
    return cache_dir


def _offline_rate(cache_dir: Path, tmp_path: Path):
    rows = DATA / "old_parser_rows.jsonl"
    data = tmp_path / "rows.jsonl"
    shutil.copy(rows, data)
    return rate(data, ["alpagasus"], OLD[0]["model"], api_base=OLD[0]["api_base"], cache_dir=cache_dir,
                settings=EngineSettings(offline=True))


def test_the_fixture_shows_the_old_misreadings():
    by_first = {r["raw"].splitlines()[0]: r for r in OLD}
    assert by_first[".5"]["parsed"]["score"] == 5.0 and by_first["4.5/10"]["parsed"]["score"] == 4.5
    assert by_first["Rating: 4.5"]["status"] == "judge_failed"
    assert all("parser_version" not in r for r in OLD)


def test_rate_points_to_reparse_then_reparse_fixes_with_zero_requests(old_cache: Path, tmp_path: Path):
    before = _offline_rate(old_cache, tmp_path)
    assert before.stats.cache_hits == len(OLD) and before.stats.calls == 0 and before.stats.requests == 0
    assert before.stats.old_parser_hits == len(OLD)

    result = reparse(old_cache)
    assert result.examined == len(OLD)
    # "4.5" and "Score: 3.5" read the same (stamped with the new version); the other six change
    assert result.changed == 6 and result.stamped == 2 and result.current == 0
    assert result.transitions["judge_failed -> ok"] == 4 and result.transitions["ok -> ok (new value)"] == 2

    after = _offline_rate(old_cache, tmp_path)
    assert after.stats.calls == 0 and after.stats.requests == 0 and after.stats.old_parser_hits == 0
    scores = {}
    with open_cache(old_cache) as cache:
        for record in cache.records():
            scores[record["raw"].splitlines()[0]] = record["parsed"]["score"] if record["parsed"] else None
            assert record["parser_version"] == PARSER_VERSION
            if record["raw"].startswith(".5"):
                old = record["history"][0]
                assert (old["status"], old["parsed"]["score"], old["parser_version"]) == ("ok", 5.0, 1)
    assert scores == EXPECTED
    assert sorted(row["alpagasus_score"] for row in after.rows) == sorted(EXPECTED.values())
    assert all(row["alpagasus_status"] == "ok" for row in after.rows)

    again = reparse(old_cache)  # idempotent: nothing left to change
    assert (again.changed, again.stamped, again.current) == (0, 0, len(OLD))


def test_dry_run_writes_nothing_and_the_cli_reports(old_cache: Path):
    result = CliRunner().invoke(app, ["reparse", "--cache-dir", str(old_cache), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would rewrite 6 whose reading changed" in result.output and "judge_failed -> ok: 4" in result.output
    with open_cache(old_cache) as cache:
        assert all("parser_version" not in r for r in cache.records())
    result = CliRunner().invoke(app, ["reparse", "--cache-dir", str(old_cache), "--status", "judge_failed"])
    assert result.exit_code == 0 and "re-read 4 records" in result.output


def test_a_user_judge_needs_its_file_and_its_fingerprint():
    record = {"judge": "my_judge", "fingerprint": "abc", "key_parts": {}}
    with pytest.raises(Unparseable, match="--user-judge"):
        parser_for(record)


def test_reparse_prefers_the_first_reply_that_parses():
    from winnow.judges.alpagasus import AlpagasusJudge

    record = {"status": "judge_failed", "parsed": None, "error": "x", "raw": "no idea",
              "reasks": [{"raw": "Rating: 4\nok", "error": "no score"}]}
    new = reparse_record(record, AlpagasusJudge().parse)
    assert new is not None and new["status"] == "ok" and new["parsed"]["score"] == 4.0
