"""The README's Python judge example runs as written (against the loopback fake server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.fakeserver import FakeServer

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


def test_the_python_judge_example_rates_the_sample_file(tmp_path: Path, monkeypatch: Any) -> None:
    code = _python_block_after("### Judges in Python")
    definitions, call = code.split("\nresult = ")
    assert call.startswith('winnow.rate("examples/sample.jsonl", [Brevity()], "openai/gpt-4o-mini"')
    scope: dict[str, Any] = {}
    exec(definitions, scope)  # the class exactly as the README shows it
    monkeypatch.chdir(README.parent)
    with FakeServer(record=True) as srv:
        result = scope["winnow"].rate("examples/sample.jsonl", [scope["Brevity"]()], "openai/gpt-4o-mini",
                                      output=tmp_path / "brevity.jsonl", api_base=srv.url, api_key="sk-x",
                                      cache_dir=tmp_path / "c")
        again = scope["winnow"].rate("examples/sample.jsonl", [scope["Brevity"]()], "openai/gpt-4o-mini",
                                     api_base=srv.url, api_key="sk-x", cache_dir=tmp_path / "c")
        sent = srv.total
    rows = [json.loads(line) for line in (tmp_path / "brevity.jsonl").read_text().splitlines()]
    assert len(rows) == 70 and {r["brevity_status"] for r in rows} == {"ok"}
    assert all(1 <= r["brevity_score"] <= 5 for r in rows)
    assert sent == result.stats.calls == 70 and again.stats.cache_hits == 70  # the re-run sends nothing
    assert [r["brevity_score"] for r in again.rows] == [r["brevity_score"] for r in rows]
