"""Storage attacks: an unwritable cache, a read-only output, a full disk, a corrupt or foreign
``cache.db``, and a disk that fills up mid-run.  Everything that can be known before the first
request must be reported before it (server count 0); what happens mid-run must stop the run with
an error naming the file, never be swallowed.

Read-only and full disks are real where this process may mount (tests run as root, where chmod
does not stop writes): a read-only tmpfs (EROFS even for root) and a 1 MiB tmpfs.  Where mounting
is not allowed those cases are skipped and the monkeypatched ones below still run.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeserver import FakeServer
from tests.test_reliability_support import alpaca, rate_argv, record_figures, run, write_jsonl

_tried: list[str] = []


@pytest.fixture(scope="module")
def srv() -> Iterator[FakeServer]:
    with FakeServer(latency=0.01) as server:
        yield server


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "rows.jsonl", alpaca(20))


def _mount(target: Path, options: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    return target


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[dict[str, Path]]:
    made: list[Path] = []

    def mount(name: str, options: str) -> Path:
        made.append(_mount(tmp_path / name, options))
        return made[-1]

    yield mount  # type: ignore[misc]
    for path in reversed(made):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _refused(srv: FakeServer, argv: list[str], *needles: str) -> str:
    srv.reset()
    done = run(argv, timeout=60)
    assert done.returncode not in (0, None), done.stderr
    assert srv.total == 0, "a request was sent before the problem was reported"
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr
    _tried.append(argv[argv.index("--cache-dir") + 1])
    return done.stderr


def test_read_only_cache_dir_and_output_are_refused_before_any_request(srv, data, tmp_path, mounts) -> None:
    ro = mounts("ro", "ro,size=1m")
    _refused(srv, rate_argv(data, srv.url, ro / "cache", tmp_path / "o.jsonl"), str(ro / "cache"))
    _refused(srv, rate_argv(data, srv.url, ro, tmp_path / "o.jsonl"), str(ro))
    _refused(srv, rate_argv(data, srv.url, tmp_path / "cache", ro / "o.jsonl"), str(ro / "o.jsonl"))


def test_full_disk_is_refused_before_any_request(srv, data, tmp_path, mounts) -> None:
    tiny = mounts("tiny", "size=1m")
    _refused(srv, rate_argv(data, srv.url, tiny / "cache", tmp_path / "o.jsonl"), str(tiny / "cache"), "free")
    _refused(srv, rate_argv(data, srv.url, tmp_path / "cache", tiny / "o.jsonl"), str(tiny / "o.jsonl"), "free")


def test_full_disk_and_unwritable_paths_in_process(srv, data, tmp_path, monkeypatch) -> None:
    """The same checks without mounts: the API's own calls are made to see a full / read-only disk."""
    import os
    import shutil

    import winnow.api as api
    from winnow.cache import CacheError

    real_usage, real_access = shutil.disk_usage, os.access
    srv.reset()
    monkeypatch.setattr(api.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=1024))
    with pytest.raises(api.PreflightError, match="free"):
        api.rate(data, ["alpagasus"], "openai/fake-model", api_base=srv.url, cache_dir=tmp_path / "c")
    with pytest.raises(api.PreflightError, match=r"o\.jsonl"):
        api.rate(data, ["alpagasus"], "openai/fake-model", api_base=srv.url, cache_dir=tmp_path / "c",
                 output=tmp_path / "o.jsonl")
    monkeypatch.setattr(api.shutil, "disk_usage", real_usage)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == blocked else real_access(p, m, **kw))
    with pytest.raises(CacheError, match="blocked"):
        api.rate(data, ["alpagasus"], "openai/fake-model", api_base=srv.url, cache_dir=blocked)
    with pytest.raises(api.PreflightError, match="blocked"):
        api.rate(data, ["alpagasus"], "openai/fake-model", api_base=srv.url, cache_dir=tmp_path / "c",
                 output=blocked / "o.jsonl")
    assert srv.total == 0
    _tried.extend(["disk_usage", "access"])


@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign_sqlite", "directory"])
def test_corrupt_or_foreign_cache_db_is_named_before_any_request(srv, data, tmp_path, kind) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    db = cache / "cache.db"
    if kind == "garbage":
        db.write_bytes(b"\x00\xffnot a database at all" * 200)
    elif kind == "truncated":
        db.write_bytes(b"SQLite format 3\x00" + b"\x07" * 3000)
    elif kind == "foreign_sqlite":
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        con.commit()
        con.close()
    else:
        db.mkdir()
    before = db.read_bytes() if db.is_file() else None
    _refused(srv, rate_argv(data, srv.url, cache, tmp_path / "o.jsonl"), str(db))
    if before is not None:
        assert db.read_bytes() == before  # the foreign file was not modified
    assert not (tmp_path / "o.jsonl").exists()


def test_disk_filling_up_mid_run_stops_with_an_error_naming_the_cache(
    srv, tmp_path, monkeypatch
) -> None:
    """A cache write failing mid-run is an error of the run (CacheError naming cache.db), not a
    row silently left "not judged" while the run reports success."""
    from winnow.api import rate
    from winnow.cache import CacheError, JudgmentCache
    from winnow.engine import EngineSettings

    data = write_jsonl(tmp_path / "rows.jsonl", alpaca(200))
    # A real SQLite error at the real write: once 30 records are in, every insert fails the way
    # a full disk does (whatever path the store takes to write: diskcache's set or its own SQL).
    JudgmentCache(tmp_path / "cache").close()
    with sqlite3.connect(tmp_path / "cache" / "cache.db") as con:
        con.execute(
            "CREATE TRIGGER disk_full BEFORE INSERT ON Cache WHEN (SELECT count(*) FROM Cache) >= 30 "
            "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
    srv.reset()
    with pytest.raises(CacheError, match=r"cache\.db"):
        rate(data, ["alpagasus"], "openai/fake-model", api_base=srv.url, cache_dir=tmp_path / "cache",
             output=tmp_path / "o.jsonl", settings=EngineSettings(concurrency=8))
    assert srv.total < 200  # dispatch stopped
    assert not (tmp_path / "o.jsonl").exists()
    _tried.append("disk_full_mid_run")
    record_figures("storage", {"bad_setups_tried": len(_tried), "requests_before_refusal": 0})
