"""The HTML report rendered in headless Chromium: plots drawn, page not blank, no script errors.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; .ci/run installs it).  The page
reports any JavaScript error by setting ``document.title`` to ``ERROR: ...`` (an inline
``window.onerror``); a control page with a deliberate error proves that detection works.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.audit.compare import compare_rows
from winnow.audit.report import write_report
from winnow.cache import JudgmentCache

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile{random.random()}"
    cmd = [
        CHROMIUM or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _png_pixels(path: Path) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct colours of an 8-bit RGB/RGBA PNG (no PIL needed)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:
            colours.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp * 4))
        prev = line
    return width, height, colours


def _pool(n: int = 120) -> list[dict]:
    rng = random.Random(5)
    vocab = [f"tag{i}" for i in range(40)]
    rows = []
    for i in range(n):
        failed = i % 17 == 0
        rows.append(
            {
                "instruction": f"Explain thing number {i} <b>not bold</b>",
                "input": "",
                "output": f"answer {i}",
                "alpagasus_score": None if failed else rng.choice([2.5, 3.0, 3.5, 4.0, 4.5, 5.0]),
                "alpagasus_explanation": None if failed else f"because {i}",
                "alpagasus_status": "judge_failed" if failed else "ok",
                "alpagasus_error": "unparseable reply: no score" if failed else None,
                "instag_tags": rng.sample(vocab, rng.randint(1, 4)),
                "instag_status": "ok",
                "deita_complexity_score": rng.uniform(1, 6),
                "deita_quality_score": rng.uniform(1, 6),
            }
        )
    return rows


def _write(tmp_path: Path) -> Path:
    pool = _pool()
    selected = sorted(pool, key=lambda r: -(r["alpagasus_score"] or 0))[:30]
    other = [
        dict(r, alpagasus_score=max(0.0, r["alpagasus_score"] - 0.5) if r["alpagasus_score"] else None)
        for r in pool
    ]
    cmp = compare_rows(pool, other, "alpagasus", names=("model-a", "model-b"), threshold=4.5)
    cache = JudgmentCache(tmp_path / "c")
    for i in range(5):
        cache.put(
            f"wj1-{i}",
            {
                "key": f"wj1-{i}",
                "judge": "alpagasus",
                "model": "openai/gpt-4o-mini",
                "fingerprint": "abcd1234",
                "status": "ok",
                "usage": {"prompt_tokens": 300, "completion_tokens": 9},
                "cost": 5e-5,
                "winnow_version": "0.1.0",
            },
        )
    out = write_report(
        pool,
        selected,
        judges=["alpagasus", "instag"],
        settings={"method": "threshold"},
        cache=cache,
        compare={"alpagasus": cmp},
        output=tmp_path / "report.html",
    )
    cache.close()
    return out


def test_report_renders_in_headless_chromium(tmp_path):
    report = _write(tmp_path)
    html = report.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html  # row text is escaped

    dom = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>winnow report</title>" in dom.stdout  # onerror would have replaced it
    assert 'data-ready="1"' in dom.stdout  # the page's script ran to the end
    assert "Uncaught" not in dom.stderr
    svgs = dom.stdout.count("<svg")
    bars = len(re.findall(r'class="mark bar"', dom.stdout))
    points = len(re.findall(r'class="mark point"', dom.stdout))
    assert svgs >= 4 and bars >= 20 and points >= 100
    assert 'data-series="model-b"' in dom.stdout and "gpt-4o-mini" in dom.stdout
    assert "unparseable reply" in dom.stdout  # failures by reason

    shot = tmp_path / "shot.png"
    res = _chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars", report.as_uri()
    )
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    width, height, colours = _png_pixels(shot)
    assert (width, height) == (1200, 2400)
    assert len(colours) > 50  # bars, dots and text in several colours: not a blank page


def test_the_error_detector_catches_a_script_error(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(
        _write(tmp_path).read_text().replace("</body>", "<script>noSuchFunction();</script></body>")
    )
    dom = _chromium(tmp_path, "--dump-dom", broken.as_uri())
    assert "<title>ERROR: " in dom.stdout


def test_report_cli_on_judged_files(tmp_path, write_jsonl):
    import winnow.cli.report  # noqa: F401  (registers `winnow report`)
    from winnow.cli.app import app

    pool = write_jsonl(_pool(40), "rated.jsonl")
    subset = write_jsonl(_pool(40)[:10], "subset.jsonl")
    result = CliRunner().invoke(
        app,
        [
            "report",
            str(pool),
            "--selected",
            str(subset),
            "-o",
            str(tmp_path / "r.html"),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "10 selected of 40" in html and "Tags" in html and "DEITA complexity vs quality" in html
