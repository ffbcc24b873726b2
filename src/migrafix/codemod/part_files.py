"""A revision file's split-off parts as revision files of their own, in the file's own shape.

The hook writes autocommit work as ``<rev>_pre`` / ``<rev>_post`` (autogen/split.py); the
codemod writes the same parts beside a revision file that has not run. A part's file is the
original's module with only what a revision needs: its header comments, its docstring (the
message, ``Revision ID:`` and ``Revises:`` lines changed), the import lines the part uses (and
Alembic's template's own), the revision identifiers (``revision``, ``down_revision`` chained,
no branch label; ``depends_on`` only on ``<rev>_pre``, which runs first), and ``upgrade()`` /
``downgrade()`` holding the part. The original file itself gets one more edit when a
``<rev>_pre`` exists: its ``down_revision`` names it. Nothing of the file is executed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import libcst as cst

__all__ = ["Header", "empty_body", "part_module", "read_header", "with_down_revision"]

_IDENTIFIERS = ("revision", "down_revision", "branch_labels", "depends_on")
# Always kept, as Alembic's script.py.mako writes them whatever the revision uses.
_TEMPLATE_IMPORTS = frozenset({"alembic.op", "sqlalchemy", "__future__"})


@dataclass(frozen=True)
class Header:
    """The module-level revision identifiers: each name's statement, and ``revision``'s
    literal."""

    revision: str
    quote: str  # the literal's quotes and prefix, for the ids written in this file: ("", "'")
    prefix: str
    statements: dict[str, cst.SimpleStatementLine]


def read_header(module: cst.Module) -> Header | str:
    """The file's revision identifiers, or why a split-off part cannot be chained to them: a
    ``revision`` that is not one string literal, a ``down_revision`` missing or assigned
    twice."""
    found: dict[str, list[cst.SimpleStatementLine]] = {}
    for statement in module.body:
        name = _assigned_name(statement)
        if name in _IDENTIFIERS:
            assert isinstance(statement, cst.SimpleStatementLine)
            found.setdefault(name, []).append(statement)
    revisions = found.get("revision", [])
    if len(revisions) != 1:
        return ("its header assigns `revision` more than once" if revisions
                else "its header has no module-level `revision = ...`")
    value = _value(revisions[0])
    if not isinstance(value, cst.SimpleString) or not isinstance(value.evaluated_value, str) \
            or not value.evaluated_value:
        return "its `revision` is not one string literal"
    downs = found.get("down_revision", [])
    if len(downs) != 1:
        return ("its header assigns `down_revision` more than once" if downs
                else "its header has no module-level `down_revision = ...`")
    if any(len(statements) > 1 for statements in found.values()):
        return "its header assigns a revision identifier more than once"
    return Header(value.evaluated_value, value.quote, value.prefix,
                  {name: statements[0] for name, statements in found.items()})


def with_down_revision(module: cst.Module, header: Header, down: str) -> cst.Module:
    """``module`` with its ``down_revision`` set to ``down``, nothing else touched."""
    old = header.statements["down_revision"]
    new = _with_value(old, _literal(header, down))
    return module.with_changes(body=[new if s is old else s for s in module.body])


def part_module(
    module: cst.Module,
    header: Header,
    revision: str,
    down_revision: str | None,
    message: str,
    functions: dict[str, cst.FunctionDef],
) -> cst.Module:
    """The revision file of one part: ``module``'s shape, ``functions`` in place of its
    ``upgrade()`` / ``downgrade()``. ``down_revision`` None: the original's (``<rev>_pre``,
    which runs first, takes over its place in the history and its dependencies)."""
    first = module.body[0] if module.body else None
    body: list[cst.BaseStatement] = []
    for statement in module.body:
        name = _assigned_name(statement)
        if statement is first and _docstring(statement) is not None:
            body.append(_docstring_for(statement, header, revision, down_revision, message))
        elif name == "revision":
            body.append(_with_value(statement, _literal(header, revision)))
        elif name == "down_revision":
            body.append(statement if down_revision is None
                        else _with_value(statement, _literal(header, down_revision)))
        elif name == "branch_labels" or (name == "depends_on" and down_revision is not None):
            body.append(_with_value(statement, cst.Name("None")))
        elif name == "depends_on":
            body.append(statement)
        elif isinstance(statement, cst.FunctionDef) and statement.name.value in functions:
            body.append(functions[statement.name.value])
        elif _is_import(statement):
            body.append(statement)
        # anything else (module constants, helpers) is the original's: moved ops read
        # statically use none of it
    used = _names_used(s for s in body if not _is_import(s))
    kept = [s for s in body if not _is_import(s) or _import_used(s, used)]
    return module.with_changes(body=kept)


def empty_body(function: cst.FunctionDef, lines: Sequence[cst.EmptyLine]) -> cst.FunctionDef:
    """``function`` with ``pass`` (after its docstring) for a body, as Alembic writes a
    revision with no commands: ``lines`` (its marker) above it."""
    body = function.body
    assert isinstance(body, cst.IndentedBlock)
    statements = list(body.body)
    kept = statements[:1] if statements and _docstring(statements[0]) is not None else []
    return function.with_changes(body=body.with_changes(body=[
        *kept, cst.SimpleStatementLine([cst.Pass()], leading_lines=list(lines))]))


# --- the pieces -------------------------------------------------------------------------------


def _assigned_name(statement: cst.BaseStatement) -> str | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
    elif isinstance(small, cst.AnnAssign) and small.value is not None:
        target = small.target
    else:
        return None
    return target.value if isinstance(target, cst.Name) else None


def _value(statement: cst.SimpleStatementLine) -> cst.BaseExpression:
    small = statement.body[0]
    assert isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None
    return small.value


def _with_value(
    statement: cst.BaseStatement, value: cst.BaseExpression
) -> cst.SimpleStatementLine:
    """``name = value`` (or ``name: annotation = value``) with another value."""
    assert isinstance(statement, cst.SimpleStatementLine)
    small = statement.body[0]
    return statement.with_changes(body=[small.with_changes(value=value)])


def _literal(header: Header, text: str) -> cst.SimpleString:
    """``text`` as a string literal quoted as the file's ``revision`` is."""
    return cst.SimpleString(f"{header.prefix}{header.quote}{text}{header.quote}")


def _docstring(statement: cst.BaseStatement) -> cst.SimpleString | None:
    if (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
            and isinstance(statement.body[0], cst.Expr)
            and isinstance(statement.body[0].value, cst.SimpleString)):
        return statement.body[0].value
    return None


def _docstring_for(
    statement: cst.BaseStatement, header: Header, revision: str, down_revision: str | None,
    message: str,
) -> cst.BaseStatement:
    """The original docstring as the part's: its first line the part's message, its
    ``Revision ID:`` and ``Revises:`` lines (Alembic's template) the part's ids."""
    literal = _docstring(statement)
    assert isinstance(statement, cst.SimpleStatementLine) and literal is not None
    opening = len(literal.prefix) + len(literal.quote)
    inner = literal.value[opening:len(literal.value) - len(literal.quote)]
    lines = inner.split("\n")
    lines[0] = _escaped(message, literal)
    for index, line in enumerate(lines):
        if re.match(r"\s*Revision ID:", line):
            lines[index] = re.sub(r"(Revision ID:\s*).*", lambda m: m[1] + revision, line)
        elif re.match(r"\s*Revises:", line) and down_revision is not None:
            lines[index] = re.sub(r"(Revises:\s*).*", lambda m: m[1] + down_revision, line)
    value = literal.value[:opening] + "\n".join(lines) + literal.quote
    expr = statement.body[0]
    return statement.with_changes(body=[expr.with_changes(value=literal.with_changes(value=value))])


def _escaped(message: str, literal: cst.SimpleString) -> str:
    """``message`` (the original's first line, as written in its source, and what the part
    does) inside ``literal``'s quotes: a quote that would close it is escaped."""
    if literal.quote not in message and not message.endswith(literal.quote[0]):
        return message
    return message.replace(literal.quote[0], "\\" + literal.quote[0])


def _is_import(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body)


def _bound(statement: cst.SimpleStatementLine) -> Iterator[tuple[str, str]]:
    """(local name, dotted path) of each name an import line binds."""
    for small in statement.body:
        if isinstance(small, cst.Import):
            for alias in small.names:
                path = _dotted(alias.name)
                local = _asname(alias) or path.split(".")[0]
                yield local, path if _asname(alias) else local
        elif isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
            base = _dotted(small.module) if small.module is not None else ""
            for alias in small.names:
                name = _dotted(alias.name)
                yield _asname(alias) or name, f"{base}.{name}"


def _asname(alias: cst.ImportAlias) -> str | None:
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    return None


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _import_used(statement: cst.BaseStatement, used: set[str]) -> bool:
    assert isinstance(statement, cst.SimpleStatementLine)
    for small in statement.body:
        if isinstance(small, cst.ImportFrom) and (
                isinstance(small.names, cst.ImportStar) or small.relative):
            return True  # what it binds is not known here: kept
    return any(local in used or path in _TEMPLATE_IMPORTS or path.startswith("__future__.")
               for local, path in _bound(statement))


class _Names(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)


def _names_used(statements: Iterator[cst.BaseStatement]) -> set[str]:
    visitor = _Names()
    for statement in statements:
        statement.visit(visitor)
    return visitor.names
