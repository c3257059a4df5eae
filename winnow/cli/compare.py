"""``winnow compare``: agreement of one judge under two models, or between two judged files.

``winnow compare DATA --judge alpagasus --model A --model B`` rates DATA with each model
through ``winnow.api.rate`` (judgments already in the cache cost no request; ``--offline``
forbids sending any) and compares the two; ``winnow compare FILE_A FILE_B --judge alpagasus``
compares two files already judged.  The plain functions below are the Python API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, check_output, err, fail, finite, layout_option, user_errors

__all__ = ["OfflineMiss", "compare_files", "compare_models"]


class OfflineMiss(RuntimeError):
    """``--offline`` and some judgments are not in the cache."""


def compare_models(
    data: str | Path,
    judge: str,
    models: Sequence[str],
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool = False,
    threshold: float | None = None,
    top: int = 5,
    judge_options: dict[str, Any] | None = None,
    settings: Any = None,
    transport: str = "auto",
    layout: str | None = None,
    column_map: dict[str, str] | None = None,
    id_column: str | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    """(comparison report, [RateResult per model]).  Raises OfflineMiss with ``offline``.

    Offline is the engine's ``offline`` setting: every cached judgment is used and dispatch
    stops before the first request.
    """
    from winnow.api import rate
    from winnow.audit.compare import compare_rows
    from winnow.engine import EngineSettings

    if len(models) != 2:
        raise ValueError(f"compare needs exactly two --model values, got {len(models)}")
    settings = settings or EngineSettings()
    if offline:
        settings = dataclasses.replace(settings, offline=True)
    results = []
    for model in models:
        result = rate(
            data,
            [judge],
            model,
            api_base=api_base,
            api_key=api_key,
            cache_dir=cache_dir,
            judge_options=judge_options,
            settings=settings,
            transport=transport,
            layout=layout,
            column_map=column_map,
            id_column=id_column,
            log_as="compare",
        )
        name = result.judges[0]
        if offline:
            missing = sum(
                1 for r in result.rows if str(r.get(f"{name}_error") or "").startswith("not judged")
            )
            if missing:
                raise OfflineMiss(
                    f"--offline: {missing} of {len(result.rows)} rows of {data} have no cached "
                    f"{name} judgment from {model}; run without --offline to send them"
                )
        results.append(result)
    report = compare_rows(
        results[0].rows,
        results[1].rows,
        results[0].judges[0],
        names=(models[0], models[1]),
        threshold=threshold,
        top=top,
    )
    return report, results


def load_judged(path: str | Path, layout: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and sample ids of a judged file (ids pair rows across files whatever their order)."""
    from winnow.data import load

    dataset = load(path, layout=layout)
    return [s.row for s in dataset.samples], [s.id for s in dataset.samples]


def compare_files(
    file_a: str | Path,
    file_b: str | Path,
    judge: str,
    *,
    threshold: float | None = None,
    top: int = 5,
    layout: str | None = None,
) -> dict[str, Any]:
    from winnow.audit.compare import compare_rows

    rows_a, ids_a = load_judged(file_a, layout)
    rows_b, ids_b = load_judged(file_b, layout)
    name = judge.replace("-", "_")
    for path, rows in ((file_a, rows_a), (file_b, rows_b)):
        if rows and not any(
            f"{name}_status" in r or f"{name}_score" in r or f"{name}_tags" in r for r in rows
        ):
            raise ValueError(f"{path}: no {name}_* columns; was it rated with --judge {judge}?")
    return compare_rows(
        rows_a,
        rows_b,
        judge,
        names=(Path(file_a).name, Path(file_b).name),
        ids_a=ids_a,
        ids_b=ids_b,
        threshold=threshold,
        top=top,
    )


def print_spend(models: Sequence[str], rated: Sequence[Any]) -> None:
    """What comparing cost, as rate's summary says it: compare sends requests and spends money
    too, and a run that prints no count looks free when it was not."""
    lines = []
    total = 0.0
    for name, result in zip(models, rated, strict=True):
        s = result.stats.as_dict()
        total += float(s["cost"])
        lines.append(f"  {name}: {s['cache_hits']} judgments from cache, {s['calls']} new ({s['requests']} requests, "
                     f"{s['retries']} retries); tokens {s['prompt_tokens']} in, {s['completion_tokens']} out; "
                     f"cost ${float(s['cost']):.4f}")
    err("\n".join([f"compare: cost ${total:.4f} in all", *lines]))


@app.command()
def compare(
    files: list[Path] = typer.Argument(
        ..., help="DATA (with two --model) or FILE_A FILE_B (two judged files)."
    ),
    judge: str = typer.Option(..., "--judge", "-j", help="The judge whose outputs are compared."),
    model: list[str] | None = typer.Option(None, "--model", "-m", help="Two models to compare on DATA."),
    api_base: str | None = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible server."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key (default: provider's env variable)."),
    threshold: float | None = typer.Option(
        None, "--threshold", callback=finite("--threshold"), help="Compare the subsets kept at score >= this."
    ),
    top: int = typer.Option(5, "--top", min=0, help="Largest disagreements to show."),
    offline: bool = typer.Option(
        False, "--offline", help="Use only cached judgments; fail if any is missing."
    ),
    report: Path | None = typer.Option(None, "--report", help="Also write an HTML report of the comparison."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder."
    ),
    transport: str = typer.Option("auto", "--transport", help="auto, fast or litellm."),
    concurrency: int = typer.Option(32, "--concurrency", "-c", min=1, help="Requests in flight at most."),
    layout: str | None = layout_option(),
) -> None:
    """Agreement between two models (or two judged files) for one judge, from the cache when possible."""
    from winnow.audit.compare import format_comparison
    from winnow.engine import EngineSettings

    models = model or []
    if report is not None:  # before the work: comparing two models sends requests
        check_output(report, inputs=list(files), option="--report")
    rows_a: list[dict[str, Any]] = []
    rated: list[Any] = []
    try:
        with user_errors(on_bad_row=False):  # Ctrl-C: exit 130 with the resume command, as rate does
            if len(files) == 2 and not models:
                result = compare_files(files[0], files[1], judge, threshold=threshold, top=top, layout=layout)
                rows_a, _ = load_judged(files[0], layout)
            elif len(files) == 1 and len(models) == 2:
                result, rated = compare_models(
                    files[0],
                    judge,
                    models,
                    api_base=api_base,
                    api_key=api_key,
                    cache_dir=cache_dir,
                    offline=offline,
                    threshold=threshold,
                    top=top,
                    transport=transport,
                    settings=EngineSettings(concurrency=concurrency),
                    layout=layout,
                )
                rows_a = rated[0].rows
            else:
                fail("give DATA with two --model, or two judged files FILE_A FILE_B (and no --model)")
    except OfflineMiss as exc:
        fail(str(exc), code=1)
    if rated:
        print_spend(models, rated)
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(format_comparison(result))
    if report is not None:
        from winnow.audit.report import write_report

        with user_errors(on_bad_row=False):  # an OutputError is one line, not a traceback
            write_report(
                rows_a,
                judges=[result["judge"]],
                settings={
                    "command": "compare",
                    "judge": judge,
                    "models": models or [str(f) for f in files],
                    "threshold": threshold,
                },
                compare={result["judge"]: result},
                output=report,
            )
        err(f"wrote {report}")
