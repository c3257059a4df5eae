"""Shared fixtures: the loopback fake server, real sample data, a fresh cache per test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
# Test data lives in the repository (tests/data/README.md: source and licence); never ../shared.
TEST_DATA = ROOT / "tests" / "data"
ALPACA_3K = TEST_DATA / "alpaca_3k.json"


@pytest.fixture(scope="session")
def alpaca_rows() -> list[dict]:
    return json.loads(ALPACA_3K.read_text(encoding="utf-8"))


@pytest.fixture
def write_jsonl(tmp_path: Path):
    def write(rows: list[dict], name: str = "data.jsonl") -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path

    return write


@pytest.fixture
def fake_server():
    from tests.fakeserver import FakeServer

    with FakeServer(record=True) as srv:
        yield srv
