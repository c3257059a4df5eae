"""Selector timings on seeded synthetic data (results in BENCHMARKS.md, "## Selectors").

Usage: ``python bench/bench_selectors.py [all|instag|deita-dense|deita-clustered|deita-exhausted|deita-tags|tags]``

``all`` runs each case in its own subprocess so that each peak RSS (resource.getrusage
ru_maxrss, which includes the synthetic data) belongs to one case.  Only the selector call is
timed; building the synthetic pool is not.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

CASES = ["instag", "deita-dense", "deita-clustered", "deita-exhausted", "deita-tags", "tags"]


def _timed(label: str, fn: Callable[[], Any], describe: Callable[[Any], str]) -> None:
    t0 = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label}: {secs:.2f} s, peak RSS {rss_mib:.0f} MiB ({describe(out)})", flush=True)


def bench_instag() -> None:
    import numpy as np

    from winnow.selectors.instag import instag_select

    rng = np.random.default_rng(0)
    vocab = [f"tag_{i}" for i in range(10_000)]
    ids = rng.integers(0, 10_000, size=(1_000_000, 16))
    pool = [[vocab[j] for j in row] for row in ids.tolist()]
    del ids
    _timed(
        "instag 1,000,000 samples x 16 tags (10K vocab), budget 10,000",
        lambda: instag_select(pool, 10_000),
        lambda r: f"{len(r.indices)} selected in {r.passes} passes {r.pass_sizes}",
    )


def _deita_scores(n: int, rng: Any) -> list[float | None]:
    return rng.random(n).tolist()


def bench_deita(clustered: bool, centres_n: int = 12_000) -> None:
    import numpy as np

    from winnow.selectors.deita import deita_select

    rng = np.random.default_rng(1)
    n, d = 300_000, 768
    if clustered:  # centres + noise: within-cluster cosine ~0.94 > 0.9, so repeats are rejected
        centres = rng.standard_normal((centres_n, d), dtype=np.float32)
        x = centres[rng.integers(0, centres_n, n)]
        x += 0.25 * rng.standard_normal((n, d), dtype=np.float32)
        label = f"deita dense 300,000 x 768 clustered ({centres_n:,} centres)"
    else:
        x = rng.standard_normal((n, d), dtype=np.float32)
        label = "deita dense 300,000 x 768 gaussian"
    scores = _deita_scores(n, rng)
    _timed(
        f"{label}, budget 10,000, tau 0.9",
        lambda: deita_select(scores, x, 10_000, 0.9),
        lambda r: f"{len(r.indices)} selected, {r.rejected} rejected",
    )


def bench_deita_tags() -> None:
    import numpy as np

    from winnow.selectors.deita import deita_select, multi_hot

    rng = np.random.default_rng(2)
    n = 300_000
    vocab = [f"tag_{i}" for i in range(6_400)]
    weights = 1.0 / np.arange(1, 6_401) ** 0.8  # Zipf-like tag popularity
    weights /= weights.sum()
    counts = rng.integers(1, 9, n)  # 1..8 tags, mean 4.5 (InsTag pool: 4.48)
    flat = rng.choice(6_400, size=int(counts.sum()), p=weights)
    pool, pos = [], 0
    for c in counts.tolist():
        pool.append([vocab[j] for j in flat[pos : pos + c].tolist()])
        pos += c
    scores = _deita_scores(n, rng)

    def run() -> Any:
        return deita_select(scores, multi_hot(pool), 10_000, 0.9)

    _timed(
        "deita multi-hot 300,000 samples x ~4.5 tags (6.4K vocab, Zipf), budget 10,000, tau 0.9",
        run,
        lambda r: f"{len(r.indices)} selected, {r.rejected} rejected",
    )


def bench_tags() -> None:
    import numpy as np

    from winnow.selectors.tags import normalize_tags

    rng = np.random.default_rng(3)
    n = 300_000
    # 20K concepts, each written in up to 5 surface forms ("Data-Analysis", "data analysis", ...);
    # 8 "satellite" concepts always co-occur with a partner so association rules fire.
    words = [f"w{i}" for i in range(3_000)]
    concepts = [f"{words[rng.integers(3_000)]} {words[rng.integers(3_000)]}ing" for _ in range(20_000)]
    forms = [[c, c.title(), c.replace(" ", "-"), c.upper().replace(" ", "_"), c + "s"] for c in concepts]
    weights = 1.0 / np.arange(1, 20_001) ** 1.1
    weights /= weights.sum()
    counts = rng.integers(1, 9, n)
    flat = rng.choice(20_000, size=int(counts.sum()), p=weights)
    variant = rng.integers(0, 5, len(flat))
    pool, pos = [], 0
    for c in counts.tolist():
        tags = [forms[k][v] for k, v in zip(flat[pos : pos + c].tolist(), variant[pos : pos + c].tolist(), strict=True)]
        if 0 in flat[pos : pos + c]:
            tags.append("satellite of the top concept")
        pool.append(tags)
        pos += c
    _timed(
        "tags 300,000 samples x ~4.5 tags (raw vocab ~100K), alpha auto (20), rule, association (support 40)",
        lambda: normalize_tags(pool),
        lambda r: f"vocab {r.vocab_sizes}, {r.rules} rules",
    )


def main(argv: list[str]) -> int:
    which = argv[1] if len(argv) > 1 else "all"
    if which == "all":
        for case in CASES:
            subprocess.run([sys.executable, __file__, case], check=True)
        return 0
    {
        "instag": bench_instag,
        "deita-dense": lambda: bench_deita(False),
        "deita-clustered": lambda: bench_deita(True),
        # worst case: only 8,000 distinct clusters, so the budget is never reached and every
        # one of the 300K candidates is compared with every selected row
        "deita-exhausted": lambda: bench_deita(True, 8_000),
        "deita-tags": bench_deita_tags,
        "tags": bench_tags,
    }[which]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
