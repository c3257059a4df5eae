"""CLI start-up stays light, and select builds the AlpaGasus subset from a judged file."""

from __future__ import annotations

import json
import subprocess
import sys


def test_help_does_not_import_litellm_and_sets_cost_map_flag():
    code = (
        "import sys; sys.argv=['winnow','--help']\n"
        "from winnow.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('litellm', 'pandas', 'numpy', 'openai') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout
    assert "rate" in out.stdout and "select" in out.stdout


def test_litellm_import_sets_local_cost_map(monkeypatch):
    code = (
        "import os; os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None)\n"
        "from winnow.engine.litellm_transport import import_litellm; import_litellm()\n"
        "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True"


def test_select_threshold_inclusive_original_order_never_failed(tmp_path):
    rows = [
        {"instruction": "a", "input": "", "output": "1", "alpagasus_score": 4.5, "alpagasus_status": "ok"},
        {"instruction": "b", "input": "", "output": "2", "alpagasus_score": 4.0, "alpagasus_status": "ok"},
        {
            "instruction": "c",
            "input": "",
            "output": "3",
            "alpagasus_score": None,
            "alpagasus_status": "judge_failed",
        },
        {"instruction": "d", "input": "", "output": "4", "alpagasus_score": 5.0, "alpagasus_status": "ok"},
        {
            "instruction": "e",
            "input": "",
            "output": "5",
            "alpagasus_score": 4.5,
            "alpagasus_status": "judge_failed",
        },
    ]
    src = tmp_path / "rated.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "subset.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "winnow",
            "select",
            str(src),
            "--method",
            "threshold",
            "--score-column",
            "alpagasus_score",
            "--min-score",
            "4.5",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    chosen = json.loads(out.read_text())
    assert [r["instruction"] for r in chosen] == ["a", "d"]  # inclusive, pool order, failed rows never
    assert chosen[0] == rows[0]  # the original record, in the input's format
    assert "selected 2 of 5" in proc.stderr
