"""AlpaGasus rating judge (methods.md section 1).

One call per sample; the paper's dimension is *accuracy* (pitfall P-A1) and the reply puts
the score alone on its first line (methods.md 1.2).  A JSON variant asks for
``{"score", "explanation"}`` for models with structured output.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from winnow.judges.base import CallSpec, ParseError, SingleCallJudge, combine_fingerprint
from winnow.judges.parsing import extract_json, score_from_text
from winnow.prompts import builtin_template
from winnow.types import Reply, Sample

SCORE_RANGE = (0.0, 5.0)


class AlpagasusOutput(BaseModel):
    # strict: ``true`` is no score (lax mode read it as 1.0); NaN and inf are no scores either
    score: float = Field(ge=SCORE_RANGE[0], le=SCORE_RANGE[1], strict=True, allow_inf_nan=False)
    explanation: str = Field(strict=True)


# built once: pydantic takes ~0.3 ms to build a schema, longer than judging a cached row
ALPAGASUS_SCHEMA: dict[str, Any] = AlpagasusOutput.model_json_schema()
STRUCTURED_HINT = 'a JSON object {"score": <0-5>, "explanation": "..."}'
TEXT_HINT = "the score (a number from 0 to 5) alone on the first line, then your explanation"


def triplet(sample: Sample) -> tuple[str, str, str]:
    """Instruction, input and response as AlpaGasus shows them.

    Alpaca rows keep their own input; for chat rows the last assistant reply is the
    response and everything before it is the instruction, so a multi-turn sample is
    judged on its final answer in context.
    """
    if sample.alpaca is not None:
        return sample.alpaca
    turns = [t for t in sample.turns if t.role != "system"]
    if turns and turns[-1].role == "assistant":
        answer, before = turns[-1].content, turns[:-1]
    else:
        answer, before = "", turns
    if len(before) == 1:
        return before[0].content, "", answer
    transcript = "\n\n".join(f"{t.role.upper()}: {t.content}" for t in before)
    return transcript, "", answer


class AlpagasusJudge(SingleCallJudge):
    name = "alpagasus"
    description = "AlpaGasus: rates the response's accuracy (or another dimension) on 0-5."
    columns = ("score", "explanation")

    def __init__(self, dimension: str = "accuracy", structured: bool = False) -> None:
        super().__init__()
        self.params["max_tokens"] = 256  # methods.md 1.2 decoding
        self.dimension = dimension
        self.structured = structured
        self.template = builtin_template("alpagasus.jinja")

    @property
    def fingerprint(self) -> str:
        return combine_fingerprint(self.name, self.template.hash, self.dimension, self.structured)

    def render(self, sample: Sample) -> list[dict[str, str]]:
        instruction, input_text, output = triplet(sample)
        return self.template.render_messages(
            instruction=instruction,
            input=input_text,
            output=output,
            dimension=self.dimension,
            structured=self.structured,
        )

    def parse(self, reply: Reply) -> dict[str, Any]:
        text = reply.text
        if self.structured:
            try:
                data = extract_json(text)
                if isinstance(data, dict):
                    return AlpagasusOutput.model_validate(data).model_dump()
            except (ParseError, ValueError):
                pass  # fall through to the free-text reading below
        score = score_from_text(text, *SCORE_RANGE)
        lines = text.strip().splitlines()
        explanation = "\n".join(lines[1:]).strip() if len(lines) > 1 else ""
        return {"score": score, "explanation": explanation}

    def plan(self, sample: Sample) -> CallSpec:
        return CallSpec(
            messages=self.render(sample),
            parse=self.parse,
            schema=ALPAGASUS_SCHEMA if self.structured else None,
            format_hint=STRUCTURED_HINT if self.structured else TEXT_HINT,
        )
