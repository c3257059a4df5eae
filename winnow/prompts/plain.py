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

__all__ = ["PlainBlock", "compile_blocks", "compile_messages"]

# An op is a str (text), ("var", name), ("data", name) or ("if", [(test, ops), ...], else_ops).
Op = Any


class PlainBlock:
    """One block as a Python expression over the variables, compiled once (``render_fn``).

    Generated code, not an interpreter over the ops: walking the ops per render cost ~4 us a
    prompt, the compiled expression about a third of that.  Only text constants (held in the
    function's globals, never spliced into source) and variable names (written with ``repr``)
    go into the generated source, so no template content is ever executed.
    """

    __slots__ = ("render_fn",)

    def __init__(self, ops: list[Op]) -> None:
        scope: dict[str, Any] = {"__builtins__": {}, "str": str}
        expression = _expression(ops, scope)
        self.render_fn: Callable[[dict[str, Any], Callable[[Any], str]], str] = _compile(
            f"lambda v, _data: {expression}", scope
        )

    def render(self, variables: dict[str, Any], data_filter: Callable[[Any], str]) -> str | None:
        """The block's text, or None when a variable is missing (Jinja then reports it)."""
        try:
            return self.render_fn(variables, data_filter)
        except KeyError:
            return None


def compile_messages(
    plain: dict[str, PlainBlock], roles: tuple[str, ...]
) -> Callable[[dict[str, Any], Callable[[Any], str]], list[dict[str, str]]]:
    """One function rendering every block of ``roles`` to chat messages (blank ones left out).

    Raises KeyError when a variable is missing: the caller then takes the general path.
    """
    scope: dict[str, Any] = {"__builtins__": {}, "str": str}
    lines = ["def render(v, _data):", "    out = []"]
    for role in roles:
        block = plain[role]
        name = f"_b{len(scope)}"
        scope[name] = block.render_fn
        lines += [f"    text = {name}(v, _data).strip('\\n')",
                  f"    if text: out.append({{'role': {role!r}, 'content': text}})"]
    lines.append("    return out")
    exec("\n".join(lines), scope)  # generated from names and repr()d role strings only
    fn: Callable[[dict[str, Any], Callable[[Any], str]], list[dict[str, str]]] = scope["render"]
    return fn


def _compile(source: str, scope: dict[str, Any]) -> Any:
    return eval(source, scope)  # see PlainBlock: constants by name, names by repr()


def _expression(ops: list[Op], scope: dict[str, Any]) -> str:
    """A Python expression with the text of ``ops``: ``str()`` for names, ``_data()`` for
    the data filter, conditional expressions for if/elif/else (only the branch taken is
    evaluated, as in Jinja, so a name used only in another branch need not exist)."""
    parts: list[str] = []
    for op in ops:
        if type(op) is str:
            name = f"_c{len(scope)}"
            scope[name] = op
            parts.append(name)
        elif op[0] == "if":
            expr = _expression(op[2], scope)
            for test, body in reversed(op[1]):
                expr = f"({_expression(body, scope)} if v[{test!r}] else {expr})"
            parts.append(expr)
        elif op[0] == "data":
            parts.append(f"_data(v[{op[1]!r}])")
        else:
            parts.append(f"str(v[{op[1]!r}])")
    if not parts:
        return "''"
    if len(parts) == 1:
        return parts[0]  # every part is a str already (data_block returns one)
    return f"''.join(({', '.join(parts)},))"


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
