"""Where the statements of ``upgrade()`` and ``downgrade()`` start, from Python's own parser.

libcst's ``PositionProvider`` generates the whole module's code again to count positions: for a
file with one finding that costs more than parsing it. Every statement a finding points at is
in ``upgrade()``/``downgrade()`` or in a ``with`` block inside them, and ``ast`` (in C) gives
each statement's line and column for a fraction of that. libcst and ``ast`` see the same
statements in the same order, except that one libcst line holds every ``;``-separated ``ast``
statement on it. Where the two trees do not line up, ``PositionProvider`` answers instead.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

__all__ = ["StatementPositions"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ast counts as a line, unlike str.splitlines()


class _Misaligned(Exception):
    pass


class StatementPositions:
    """``start(statement)``: the 1-based line and column where a statement of the revision's
    functions (or of a ``with`` block in them) starts, as ``PositionProvider`` would say."""

    def __init__(self, source: str, module: cst.Module) -> None:
        self._source = source
        self._module = module
        self._lines: list[str] | None = None
        self._starts: dict[cst.CSTNode, tuple[int, int]] = {}  # line, UTF-8 byte offset
        self._exact: dict[cst.CSTNode, tuple[int, int]] | None = None
        try:
            self._align(module.body, ast.parse(source).body)
        except (_Misaligned, SyntaxError, ValueError):
            self._exact = self._from_libcst()

    def start(self, statement: cst.CSTNode) -> tuple[int, int] | None:
        if self._exact is not None:
            return self._exact.get(statement)
        found = self._starts.get(statement)
        if found is None:
            return None
        line, offset = found
        return line, self._column(line, offset) + 1

    def _align(self, statements: Sequence[cst.BaseStatement], nodes: Sequence[ast.stmt]) -> None:
        index = 0
        for statement in statements:
            if index >= len(nodes):
                raise _Misaligned
            node = nodes[index]
            self._starts[statement] = (node.lineno, node.col_offset)
            if isinstance(statement, cst.SimpleStatementLine):
                index += len(statement.body)
                continue
            index += 1
            body = getattr(statement, "body", None)
            if isinstance(statement, (cst.FunctionDef, cst.With)):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.With,
                                         ast.AsyncWith)):
                    raise _Misaligned
                if isinstance(body, cst.IndentedBlock):
                    self._align(body.body, node.body)
        if index != len(nodes):
            raise _Misaligned

    def _column(self, line: int, offset: int) -> int:
        """A character column from ast's UTF-8 byte offset."""
        if self._lines is None:
            self._lines = _LINE_BREAK.split(self._source)
        text = self._lines[line - 1]
        if text.isascii():
            return offset
        return len(text.encode("utf-8")[:offset].decode("utf-8", errors="replace"))

    def _from_libcst(self) -> dict[cst.CSTNode, tuple[int, int]]:
        wrapper = MetadataWrapper(self._module, unsafe_skip_copy=True)  # keep node identity
        return {node: (where.start.line, where.start.column + 1)
                for node, where in wrapper.resolve(PositionProvider).items()}
