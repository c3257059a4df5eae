"""Plain-Python rendering for the simple blocks most prompts are made of.

Why: a cached re-run renders every prompt only to hash it, and Jinja's per-render set-up
(a Context, a generator resumed once per piece) was the largest single cost of a re-run,
~12 us a prompt against ~3 us for joining the same pieces directly.  A block qualifies when
it holds nothing but text, ``{{ name }}``, ``{{ name | data }}`` and ``{% if name %}`` /
``elif`` / ``else`` on plain names: nothing to sandbox, nothing that could differ from Jinja.
Anything else (loops, other filters, attribute access, expressions) returns None here and
is rendered by Jinja.  A variable that is missing also goes back to Jinja, so the error
(StrictUndefined, naming the template and line) is Jinja's own.

Same output as Jinja by construction: the pieces come from Jinja's own parse (trim_blocks
and whitespace control already applied), values are written with ``str()`` and tested with
Python truthiness, exactly as Jinja's compiled code does (tested on every built-in template).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["PlainBlock", "compile_blocks"]

# An op is a str (text), ("var", name), ("data", name) or ("if", [(test, ops), ...], else_ops).
Op = Any


class _Missing(Exception):
    """A variable the block needs is not given: let Jinja render it (and raise its error)."""


class PlainBlock:
    __slots__ = ("_ops",)

    def __init__(self, ops: list[Op]) -> None:
        self._ops = ops

    def render(self, variables: dict[str, Any], data_filter: Callable[[Any], str]) -> str | None:
        """The block's text, or None when a variable is missing (Jinja then reports it)."""
        out: list[str] = []
        try:
            _run(self._ops, variables, data_filter, out)
        except _Missing:
            return None
        return "".join(out)


def _run(ops: list[Op], variables: dict[str, Any], data_filter: Callable[[Any], str], out: list[str]) -> None:
    for op in ops:
        if type(op) is str:
            out.append(op)
            continue
        kind = op[0]
        if kind == "if":
            for test, body in op[1]:
                if test not in variables:
                    raise _Missing
                if variables[test]:
                    _run(body, variables, data_filter, out)
                    break
            else:
                _run(op[2], variables, data_filter, out)
            continue
        name = op[1]
        if name not in variables:
            raise _Missing
        value = variables[name]
        out.append(str(data_filter(value)) if kind == "data" else str(value))


def compile_blocks(environment: Any, source: str, names: tuple[str, ...]) -> dict[str, PlainBlock]:
    """Plain renderers for those blocks of ``source`` that qualify (see the module docstring)."""
    from jinja2 import nodes

    tree = environment.parse(source)
    found: dict[str, PlainBlock] = {}
    for block in tree.find_all(nodes.Block):
        if block.name in names and block.name not in found:
            ops = _ops(block.body, nodes)
            if ops is not None:
                found[block.name] = PlainBlock(ops)
    return found


def _ops(body: list[Any], nodes: Any) -> list[Op] | None:
    ops: list[Op] = []
    for node in body:
        if isinstance(node, nodes.Output):
            for item in node.nodes:
                op = _output(item, nodes)
                if op is None:
                    return None
                ops.append(op)
        elif isinstance(node, nodes.If):
            branches = []
            for branch in [node, *node.elif_]:
                if not _is_name(branch.test, nodes):
                    return None
                inner = _ops(branch.body, nodes)
                if inner is None:
                    return None
                branches.append((branch.test.name, inner))
            otherwise = _ops(node.else_, nodes)
            if otherwise is None:
                return None
            ops.append(("if", branches, otherwise))
        else:
            return None
    return ops


def _output(item: Any, nodes: Any) -> Op | None:
    if isinstance(item, nodes.TemplateData):
        return str(item.data)
    if _is_name(item, nodes):
        return ("var", item.name)
    if (isinstance(item, nodes.Filter) and item.name == "data" and _is_name(item.node, nodes)
            and not item.args and not item.kwargs and item.dyn_args is None and item.dyn_kwargs is None):
        return ("data", item.node.name)
    return None


def _is_name(node: Any, nodes: Any) -> bool:
    return type(node) is nodes.Name and node.ctx == "load"
