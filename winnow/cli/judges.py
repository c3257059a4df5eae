"""``winnow judges list`` and ``winnow judges show NAME``: what each judge measures and sends.

``list`` must stay fast: it imports the judge modules (pydantic, jinja) but never litellm.
``show`` prints the template source, the output schema and the prompt rendered for one row,
so a user sees exactly what would be sent before paying for it (distilabel's ``Task.print()``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, fail, layout_option, parse_pairs

judges_app = typer.Typer(help="List the judges and show what they send.", no_args_is_help=True,
                         add_completion=False, rich_markup_mode=None)
app.add_typer(judges_app, name="judges")


@judges_app.command("list")
def list_judges() -> None:
    """Each built-in judge: its name, what it measures, and the columns it adds."""
    from winnow.judges.registry import BUILTIN, judge_class

    for name in BUILTIN:
        judge = judge_class(name)()
        reads = "the user turns and the response" if judge.needs_response else "the user turns alone"
        typer.echo(f"{name}\n  {judge.description}\n  reads: {reads}\n  columns: {', '.join(judge.output_columns())}")
    typer.echo("\nA user judge is a judge.yaml (or a folder holding one): --judge path/to/judge.yaml; "
               "see examples/judges/helpfulness.")


def _templates(judge: Any) -> list[tuple[str, str]]:
    from winnow.prompts import PromptTemplate

    if hasattr(judge, "sources"):
        return list(judge.sources())
    return [(t.name, t.source) for t in vars(judge).values() if isinstance(t, PromptTemplate)]


def _schema(judge: Any) -> dict[str, Any] | str | None:
    if hasattr(judge, "output_schema"):
        return judge.output_schema()
    schema = getattr(judge, "schema", None)
    if isinstance(schema, dict):
        return schema
    if judge.name == "alpagasus":
        from winnow.judges.alpagasus import AlpagasusOutput

        return AlpagasusOutput.model_json_schema()
    return None


def _messages(judge: Any, sample: Any) -> list[tuple[str, list[dict[str, str]]]]:
    if hasattr(judge, "preview"):
        return list(judge.preview(sample))
    return [("main", judge.render(sample))]


@judges_app.command("show")
def show(
    name: str = typer.Argument(..., help="Built-in judge name, or path to a judge.yaml or judge folder."),
    data: Path | None = typer.Option(None, "--data", help="Render the prompt for a row of this file."),
    row: int = typer.Option(1, "--row", min=1, help="Which row of --data (1 = the first)."),
    mode: str | None = typer.Option(None, "--mode", help="DEITA scoring mode: direct, evol or scorer."),
    dimension: str | None = typer.Option(None, "--dimension", help="AlpaGasus: the dimension to rate."),
    structured: bool | None = typer.Option(None, "--structured/--no-structured", help="Show the JSON variant."),
    layout: str | None = layout_option(),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map, as for rate."),
) -> None:
    """The template source, the output schema, and the prompt rendered for one example row."""
    from winnow.judges.registry import UnknownJudge, accepted_options, get_judge
    from winnow.judges.user import EXAMPLE
    from winnow.prompts import TemplateProblem

    options: dict[str, Any] = {}
    if mode:
        options["mode"] = mode
    if dimension:
        options["dimension"] = dimension
    if structured is not None:
        options["structured"] = structured
    try:
        for key in options:
            if key not in accepted_options(name):
                fail(f"--{key} does not apply to {name} (it takes: {', '.join(sorted(accepted_options(name)))})")
        judge = get_judge(name, options)
    except (UnknownJudge, TemplateProblem, ValueError) as exc:
        fail(str(exc))
    sample = EXAMPLE
    if data is not None:
        from winnow.data import DataError, load

        try:
            dataset = load(data, on_bad_row="skip", layout=layout,
                           column_map=parse_pairs(column_map, "--map") or None)
        except (DataError, FileNotFoundError) as exc:
            fail(str(exc))
        if row > len(dataset.samples):
            fail(f"{data}: --row {row} is past the last readable row ({len(dataset.samples)})")
        sample = dataset.samples[row - 1]
        if judge.needs_response and not sample.has_response:
            fail(f"{data} row {row} has no response, and {judge.name} judges one: a run would refuse it "
                 "(pick a row with a response, or a judge that reads the user turns alone: instag, deita-complexity)")
    typer.echo(f"judge: {judge.name}\n  {judge.description}\n  columns: {', '.join(judge.output_columns())}")
    for label, source in _templates(judge):
        typer.echo(f"\n--- template {label} ---\n{source.rstrip()}")
    schema = _schema(judge)
    if schema is not None:
        text = schema if isinstance(schema, str) else json.dumps(schema, indent=2, ensure_ascii=False)
        typer.echo(f"\n--- output schema ---\n{text}")
    where = f"{data} row {row}" if data is not None else "the built-in example"
    try:
        calls = _messages(judge, sample)
    except TemplateProblem as exc:
        fail(str(exc))
    for purpose, messages in calls:
        typer.echo(f"\n--- prompt for {where} ({purpose}) ---")
        for message in messages:
            typer.echo(f"[{message['role']}]\n{message['content']}\n")
