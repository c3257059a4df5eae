"""The JSON files ``report --trust`` reads, checked against the report they go into.

Why: a trust file is evidence about one judge on one file.  Read for another judge, another
data file, or twice for the same judge, it would put a verdict on the wrong figures, silently.
So ``agree --json`` and ``audit stability --json`` record the data file they measured (path and
SHA-256 of its bytes) and, for stability, the model and judge fingerprint; ``load_trust_files``
refuses a file that is not readable JSON of either command, names a judge the report does not
show, refuses a second file of the same kind for one judge, and refuses one made for other data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["file_identity", "load_trust_files"]


def file_identity(path: str | Path) -> dict[str, Any]:
    """{"file": absolute path, "sha256": digest of its bytes}: the content identifies the data even
    when the file moved; the path is for the reader.  A folder (a Hugging Face dataset) has no
    single digest: its path alone is recorded."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        return {"file": str(resolved), "sha256": None}
    digest = hashlib.sha256()
    with resolved.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"file": str(resolved), "sha256": digest.hexdigest()}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--trust {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--trust {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--trust {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                         "write it with `winnow agree --json` or `winnow audit stability --json`") from None
    if not isinstance(data, dict):
        raise ValueError(f"--trust {path}: not the JSON of `winnow agree --json` or `winnow audit stability --json`")
    return data


def _kind_and_judge(path: Path, data: dict[str, Any]) -> tuple[str, str]:
    if "labels_column" in data and "score_column" in data:  # the report's name: chosen_alpagasus stays a judge
        return "agreement", str(data["score_column"]).rsplit("_", 1)[0]
    if "repeats" in data and "judge" in data:
        return "stability", str(data["judge"])
    raise ValueError(f"--trust {path}: not the JSON of `winnow agree --json` or `winnow audit stability --json`")


def _check_data(path: Path, data: dict[str, Any], pool: dict[str, Any] | None, warnings: list[str]) -> None:
    """Refuse a trust file measured on other data; warn when it cannot be checked (older files)."""
    made_for = (data.get("provenance") or {}).get("data") or {}
    if pool is None or not made_for.get("sha256") or not pool.get("sha256"):
        warnings.append(f"--trust {path}: cannot check that it was made for {pool and pool.get('file')} "
                        "(it records no data file digest): its figures are shown as given")
        return
    if made_for["sha256"] != pool["sha256"]:
        raise ValueError(f"--trust {path}: made for {made_for.get('file')}, whose content differs from the report's "
                         f"pool {pool.get('file')}; its figures describe other data (re-run it on the pool)")


def load_trust_files(paths: Sequence[str | Path], judges: Sequence[str],
                     pool: str | Path | None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({judge: {"agreement" | "stability": report}}, warnings) from the ``--trust`` files."""
    from winnow.audit.columns import did_you_mean

    shown = [j.replace("-", "_") for j in judges]
    identity = file_identity(pool) if pool is not None else None
    out: dict[str, dict[str, Any]] = {}
    sources: dict[tuple[str, str], Path] = {}
    warnings: list[str] = []
    for item in paths:
        path = Path(item)
        data = _read(path)
        kind, judge = _kind_and_judge(path, data)
        if judge not in shown:
            raise ValueError(f"--trust {path}: its judge '{judge}' is not in this report (judges: "
                             f"{', '.join(shown) or 'none'}){did_you_mean(judge, shown)}")
        if (judge, kind) in sources:
            raise ValueError(f"--trust {path}: a second {kind} file for {judge} (the first: {sources[judge, kind]}); "
                             "give one per judge")
        _check_data(path, data, identity, warnings)
        sources[judge, kind] = path
        out.setdefault(judge, {})[kind] = data
    return out, warnings
