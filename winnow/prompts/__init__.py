"""Jinja prompt templates, rendered in a sandbox.

Why a sandbox and StrictUndefined: templates may come from users (judge folders), and a
missing variable must be an error before any request is sent, never an empty string in a
paid prompt (alpaca_eval's users were bitten by exactly that, see architecture.md).
Sample text is passed to templates as *data*: Jinja never renders a variable's value, so a
sample containing ``{{ 7*7 }}`` reaches the model verbatim.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from winnow.prompts.plain import PlainBlock, compile_blocks, compile_messages

_ROLES = ("system", "user")

__all__ = ["PromptTemplate", "TemplateProblem", "builtin_template", "check_blocks", "data_block",
           "template_from_text"]

# The delimiters that fence sample text inside every built-in prompt.  A sample that
# contains them must not be able to close the fence, so ``data_block`` defuses them.
_FENCE = re.compile(r"<(/?)(data)(\b[^>]*)>", re.IGNORECASE)


def data_block(text: Any) -> str:
    """Neutralise fence markers inside sample text (the ``data`` filter).

    ``</data>`` inside a sample becomes ``</ data>``, which no longer matches the fence the
    prompt tells the judge about, so the sample cannot end the data block early.
    """
    text = str(text)
    if "<" not in text:  # most samples: no tag at all, so no regex pass (a third of rendering)
        return text
    return _FENCE.sub(_defuse, text)


def _defuse(m: re.Match[str]) -> str:
    return f"<{m.group(1)} {m.group(2)}{m.group(3)}>"


class TemplateProblem(ValueError):
    """A template that cannot be compiled or rendered; names the file and line."""


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A compiled template plus the hash of its source (a cache-key part)."""

    name: str
    source: str
    hash: str
    _template: Any
    _globals: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    _plain: dict[str, PlainBlock] | None = field(default=None, compare=False, repr=False)
    _messages: Any = field(default=None, compare=False, repr=False)  # all blocks plain: one function

    def render(self, **variables: Any) -> str:
        try:
            return str(self._template.render(**variables))
        except Exception as exc:
            problem = self._problem(exc)
            if problem is exc:
                raise
            raise problem from exc

    def render_messages(self, **variables: Any) -> list[dict[str, str]]:
        """Render to chat messages.

        A template defines ``{% block system %}`` and ``{% block user %}`` to produce two
        messages; a template without blocks is one user message.  Blocks keep the whole
        prompt in one file, so one hash covers it.
        """
        template = self._template
        blocks = template.blocks
        if not blocks:
            return [{"role": "user", "content": self.render(**variables)}]
        # What ``template.new_context(variables)`` builds, minus its per-call walk over the
        # globals ChainMap (a fifth of rendering): the globals are copied into a dict once.
        glob = self._globals
        if glob is None:
            glob = dict(template.globals)
            object.__setattr__(self, "_globals", glob)
        plain = self._plain
        if plain is None:  # blocks simple enough to render without Jinja (winnow.prompts.plain)
            plain = compile_blocks(template.environment, self.source, _ROLES)
            object.__setattr__(self, "_plain", plain)
            present = tuple(role for role in _ROLES if role in blocks)
            if all(role in plain for role in present):
                object.__setattr__(self, "_messages", compile_messages(plain, present))
        if self._messages is not None:
            try:  # the variables alone, no merge with the globals: they win over globals anyway
                messages: list[dict[str, str]] = self._messages(variables, data_block)
                return messages
            except KeyError:
                pass  # a name missing from the variables: the general path finds or reports it
        env = template.environment
        merged = {**glob, **variables}
        ctx = None
        try:
            out = []
            for role in _ROLES:
                if role in blocks:
                    fast = plain.get(role)
                    text = fast.render(merged, data_block) if fast is not None else None
                    if text is None:
                        if ctx is None:
                            ctx = env.context_class(env, merged, template.name, blocks, globals=glob)
                        text = "".join(blocks[role](ctx))
                    text = text.strip("\n")
                    if text:
                        out.append({"role": role, "content": text})
            return out
        except Exception as exc:
            _rewrite_traceback(env, self.source)
            problem = self._problem(exc)
            if problem is exc:
                raise
            raise problem from exc

    def _problem(self, exc: Exception) -> Exception:
        """The TemplateProblem for a Jinja error; any other exception is passed on unchanged.

        Called only when rendering failed, so the common path imports nothing.
        """
        from jinja2 import TemplateError
        from jinja2.sandbox import SecurityError

        if isinstance(exc, SecurityError):
            return TemplateProblem(f"{self.name}: the template tried something the sandbox forbids: {exc}")
        if isinstance(exc, OverflowError):
            return TemplateProblem(f"{self.name}: the template asked for too large a range: {exc}")
        if isinstance(exc, TemplateError):
            line = getattr(exc, "lineno", None) or _template_line(exc)
            where = f" line {line}" if line else ""
            return TemplateProblem(f"{self.name}{where}: {exc}")
        return exc


def _rewrite_traceback(env: Any, source: str) -> None:
    """Give the exception being handled Jinja's own traceback rewrite, as ``Template.render``
    does (blocks rendered one by one skip it): its frames then carry template lines."""
    try:
        env.handle_exception(source=source)  # re-raises the exception being handled, rewritten
    except Exception:  # the same exception object, now with the rewritten traceback
        pass


def _template_line(exc: BaseException) -> int | None:
    """The template line a render error happened on.

    Why: an undefined name or attribute (``{{ row.category }}`` on a row without that column)
    is an ``UndefinedError``, which carries no line; after Jinja's traceback rewrite the frames of
    the template itself are named ``<template>`` and numbered with template lines, so the
    innermost one is where the template failed.
    """
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


MAX_RESULT_CHARS = 1_000_000  # no legitimate prompt template builds more than this by arithmetic
MAX_POWER = 10_000


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class _Environment(ImmutableSandboxedEnvironment):
        """Also refuses size bombs: ``'a' * 10**10`` or ``9 ** 10**8`` would exhaust memory
        or CPU before Jinja's own sandbox objects, so ``*`` and ``**`` are checked first."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**":
                if isinstance(right, int | float) and abs(right) > MAX_POWER:
                    raise SecurityError(f"exponent {right} is too large")
                return super().call_binop(context, operator, left, right)
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and not isinstance(count, bool):
                    if len(seq) * count > MAX_RESULT_CHARS:
                        raise SecurityError(f"repeating a sequence {count} times is too large")
            return super().call_binop(context, operator, left, right)

    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, trim_blocks=True)
    env.filters["data"] = data_block
    return env


def template_from_text(source: str, name: str) -> PromptTemplate:
    """Compile ``source``; syntax errors are reported with ``name`` and the line number."""
    from jinja2 import TemplateSyntaxError

    try:
        compiled = _environment().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"{name} line {exc.lineno}: {exc.message}") from exc
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return PromptTemplate(name=name, source=source, hash=digest, _template=compiled)


def check_blocks(template: PromptTemplate) -> None:
    """Refuse, at load time, a template whose messages would silently lose text.

    ``render_messages`` sends the ``system`` and ``user`` blocks and nothing else, so a typo'd
    block (``{% block usr %}``), an ``assistant`` block, or text written outside the blocks
    would vanish from every prompt without a word, and a template with a system block but no
    user block would send the same sample-less prompt for every row.  A template without any
    block is one user message and is always fine.
    """
    from jinja2 import nodes

    tree = _environment().parse(template.source)
    blocks = list(tree.find_all(nodes.Block))
    if not blocks:
        return
    allowed = " and ".join(f"{{% block {role} %}}" for role in _ROLES)
    for block in blocks:
        if block.name not in _ROLES:
            raise TemplateProblem(f"{template.name} line {block.lineno}: unknown block '{block.name}': only "
                                  f"{allowed} are sent to the model")
        if any(isinstance(inner, nodes.Block) for inner in block.find_all(nodes.Block)):
            raise TemplateProblem(f"{template.name} line {block.lineno}: blocks cannot be nested")
    for node in tree.body:
        line = _outside_line(node, nodes)
        if line is not None:
            raise TemplateProblem(f"{template.name} line {line}: text or tags outside {allowed} are never sent; "
                                  "move them into one of the blocks")
    if not any(block.name == "user" for block in blocks):
        raise TemplateProblem(f"{template.name}: no {{% block user %}}: the sample would never be sent "
                              "(a template without blocks is one user message)")


def _outside_line(node: Any, nodes: Any) -> int | None:
    """The line of what ``node``, a top-level node of a template with blocks, would lose: None for
    a block or blank text (the newlines between blocks)."""
    if isinstance(node, nodes.Block):
        return None
    if isinstance(node, nodes.Output):
        for item in node.nodes:
            if not isinstance(item, nodes.TemplateData):
                return int(item.lineno)
            text = item.data
            if text.strip():
                blank = text[: len(text) - len(text.lstrip())]
                return int(item.lineno) + blank.count("\n")
        return None
    return int(node.lineno)  # {% if %}, {% set %}, {% for %} around or between the blocks


@cache
def builtin_template(filename: str) -> PromptTemplate:
    """Load a template shipped in this package (compiled once per process)."""
    source = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    return template_from_text(source, f"winnow/prompts/{filename}")


def template_from_file(path: Path) -> PromptTemplate:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateProblem(f"{path}: cannot read template: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateProblem(f"{path}: template is not UTF-8 text ({exc.reason})") from exc
    return template_from_text(source, str(path))
