"""codemod/positions.py: where a statement starts, as libcst's PositionProvider says, from ast."""

from __future__ import annotations

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from migrafix.codemod.positions import StatementPositions

CASES = {
    "plain": 'def upgrade():\n    op.drop_column("t", "c")\n    op.add_column("t", x)\n',
    "semicolons": "def upgrade():\n    a = 1; b = 2\n    op.drop_column('t', 'c')\n",
    "with blocks": (
        "def upgrade():\n"
        "    with op.batch_alter_table('t') as batch_op:\n"
        "        batch_op.drop_column('c')\n"
        "    with op.get_context().autocommit_block():\n"
        "        op.create_index('i', 't', ['c'], postgresql_concurrently=True)\n"
    ),
    "non-ASCII before a statement": "def upgrade():\n    é = 'ü'; op.drop_column('t', 'c')\n",
    "CRLF and CR": "def upgrade():\r\n    x = 1\r\n    op.drop_column('t', 'c')\r\n",
    "continuation lines": "def upgrade():\n    x = \\\n        1\n    op.f(\n'a')\n",
    "async and decorated": "@d\nasync def upgrade():\n    async with a as b:\n        pass\n",
    "form feed": "\fdef upgrade():\n    pass\n",
    "other compound statements": (
        "def upgrade():\n    if x:\n        op.drop_column('t', 'c')\n    else:\n        pass\n"
        "    for i in y:\n        pass\n    try:\n        pass\n    finally:\n        pass\n"
    ),
}


def exact(module: cst.Module) -> dict[cst.CSTNode, tuple[int, int]]:
    found = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {node: (where.start.line, where.start.column + 1) for node, where in found.items()
            if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement))}


@pytest.mark.parametrize("source", CASES.values(), ids=list(CASES))
def test_every_statement_of_the_functions_is_where_libcst_says(source: str) -> None:
    module = cst.parse_module(source)
    positions = StatementPositions(source, module)
    function = next(s for s in module.body if isinstance(s, cst.FunctionDef))
    wanted = [function, *function.body.body]  # type: ignore[union-attr]
    for statement in list(wanted):
        body = getattr(statement, "body", None)
        if isinstance(statement, cst.With) and isinstance(body, cst.IndentedBlock):
            wanted += body.body
    expected = exact(module)
    for statement in wanted[1:]:
        assert positions.start(statement) == expected[statement], module.code_for_node(statement)


@pytest.mark.parametrize("ast_source", [
    "def upgrade():\n    op.drop_column('t', 'c')\n\0",  # ast refuses null bytes
    "def upgrade():\n        op.drop_column('t', 'c')\n        pass\n",  # one more statement
], ids=["ast refuses it", "the trees do not line up"])
def test_where_ast_cannot_tell_libcst_does(ast_source: str) -> None:
    """A safety net: the positions are never guessed from a tree that does not match."""
    module = cst.parse_module("def upgrade():\n    op.drop_column('t', 'c')\n")
    positions = StatementPositions(ast_source, module)
    statement = module.body[0].body.body[0]  # type: ignore[attr-defined]
    assert positions.start(statement) == (2, 5)
