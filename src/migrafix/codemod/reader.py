"""A revision file, read statically, as the op trees the rules work on.

Each ``op.X(...)`` / ``batch_op.X(...)`` statement becomes the Alembic op Alembic itself would
build, provided every argument is made only of literals and names from SQLAlchemy (``sa``,
``sqlalchemy``, dialect modules) or ``op.f``: those are checked node by node first, then
evaluated with no builtins and only those names in scope. Anything else (a module constant, a
project type, a loop) becomes an ``OpaqueOp`` that rules leave alone, in its place.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from alembic.operations import BatchOperations, Operations, ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy.sql.elements import conv

from migrafix.ops import AutocommitBlockOp

__all__ = ["OpaqueOp", "ReadFunction", "ReadRevision", "read_revision", "table_of"]


class OpaqueOp(ops.MigrateOperation):
    """A statement migrafix does not read: kept as it is, in its place."""

    ops: tuple[ops.MigrateOperation, ...] = ()  # no diff for `alembic check`

    def __init__(self, statement: cst.BaseStatement, reason: str) -> None:
        self.statement = statement
        self.reason = reason
        # An unreadable op.create_table("t", ...) still creates table t: rules must know.
        self.table_name, self.table_effect = _literal_table_effect(statement)
        self.schema: str | None = None
        # Whether it sets ``lock_timeout`` (the lock-timeout rule's own block, read back, or
        # the file's): the rule leaves its transaction alone. Told by fix_source, which knows
        # whether the file says lock_timeout at all (rendering each statement to look costs).
        self.sets_lock_timeout = False


@dataclass
class ReadFunction:
    """``upgrade()`` or ``downgrade()``: its tree, and which statement each op came from."""

    function: cst.FunctionDef
    container: ops.OpContainer
    preamble: list[cst.BaseStatement] = field(default_factory=list)  # the docstring
    statement_of: dict[int, cst.BaseStatement] = field(default_factory=dict)  # id(op) -> stmt
    call_of: dict[int, cst.Call] = field(default_factory=dict)  # id(op) -> its call
    batch_of: dict[int, cst.With] = field(default_factory=dict)  # id(ModifyTableOps) -> with
    group_of: dict[int, ops.ModifyTableOps] = field(default_factory=dict)  # op in a batch block
    arguments_of: dict[int, list[tuple[cst.Arg, Any]]] = field(default_factory=dict)
    # The maps above are keyed by id(): every op read is kept alive here for as long as they
    # are used, or a new op (a rule's) could be born at a dead op's address and be taken
    # for it.
    alive: list[ops.MigrateOperation] = field(default_factory=list)


@dataclass
class ReadRevision:
    module: cst.Module
    upgrade: ReadFunction | None
    downgrade: ReadFunction | None
    op_name: str  # what the file calls alembic's op ("op")
    sa_name: str | None  # what the file calls sqlalchemy ("sa"), if it imports it as a module
    imported: Mapping[str, str] = field(default_factory=dict)  # top-level imports: name -> path


class _Capture(Operations):
    """Builds ops instead of running them. Most methods return what ``invoke`` returns;
    ``drop_table`` returns None, so the op is also kept as ``invoked``."""

    invoked: Any = None

    def invoke(self, operation: Any) -> Any:
        self.invoked = operation
        return operation


class _BatchCapture(BatchOperations):
    invoked: Any = None

    def invoke(self, operation: Any) -> Any:
        self.invoked = operation
        return operation


@dataclass
class _BatchTarget:
    table_name: str
    schema: str | None


class _OpF:
    """``op.f(name)`` as Alembic means it: a name not to pass through the convention."""

    @staticmethod
    def f(name: str) -> conv:
        return conv(name)


_SQLALCHEMY_MODULES = ("sqlalchemy",)
_CONTEXT = MigrationContext.configure(dialect_name="postgresql")


def read_revision(module: cst.Module) -> ReadRevision:
    names = _imported_names(module)
    op_name = next((n for n, v in names.items() if v == "alembic.op"), "op")
    sa_name = next((n for n, v in names.items() if v == "sqlalchemy"), None)
    scope = {name: _resolve(path) for name, path in names.items() if path != "alembic.op"}
    scope = {k: v for k, v in scope.items() if v is not None}
    scope[op_name] = _OpF
    functions: dict[str, ReadFunction] = {}
    for statement in module.body:
        if isinstance(statement, cst.FunctionDef) and statement.name.value in (
            "upgrade", "downgrade"
        ):
            reader = _FunctionReader(module, op_name, scope)
            functions[statement.name.value] = reader.read(statement)
    return ReadRevision(module, functions.get("upgrade"), functions.get("downgrade"),
                        op_name, sa_name, names)


def _imported_names(module: cst.Module) -> dict[str, str]:
    """Module-level names bound by imports: local name -> dotted path."""
    names: dict[str, str] = {}
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    path = _dotted(alias.name)
                    local = alias.asname.name.value if alias.asname else path.split(".")[0]  # type: ignore[union-attr]
                    names[local] = path if alias.asname else path.split(".")[0]
            elif isinstance(small, cst.ImportFrom) and small.module is not None and not isinstance(
                small.names, cst.ImportStar
            ):
                base = _dotted(small.module)
                for alias in small.names:
                    name = _dotted(alias.name)
                    local = alias.asname.name.value if alias.asname else name  # type: ignore[union-attr]
                    names[local] = f"{base}.{name}"
    return names


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    raise ValueError(node)


def _resolve(path: str) -> Any:
    """The SQLAlchemy module or attribute a dotted import path names; None for anything else
    (a project's own module is never imported)."""
    if path.split(".")[0] not in _SQLALCHEMY_MODULES:
        return None
    try:
        return importlib.import_module(path)
    except ImportError:
        module_path, _, attribute = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module_path), attribute, None)
        except ImportError:
            return None


class _FunctionReader:
    def __init__(self, module: cst.Module, op_name: str, scope: Mapping[str, Any]) -> None:
        self.module = module
        self.op_name = op_name
        self.scope = scope

    def read(self, function: cst.FunctionDef) -> ReadFunction:
        read = ReadFunction(function, ops.UpgradeOps(ops=[]))
        self.result = read
        body = function.body
        statements = body.body if isinstance(body, cst.IndentedBlock) else []
        top: list[ops.MigrateOperation] = []
        statements = list(statements)
        if statements and _is_docstring(statements[0]):
            read.preamble.append(statements.pop(0))  # rules insert at the top: keep it first
        for statement in statements:
            top.append(self._statement(statement))
        read.container.ops = _grouped(top)
        read.alive += [op for op in read.container.ops if isinstance(op, ops.ModifyTableOps)]
        return read

    # --- statements -----------------------------------------------------------------------

    def _statement(self, statement: cst.BaseStatement) -> ops.MigrateOperation:
        if isinstance(statement, cst.With):
            return self._with(statement)
        call = _lone_call(statement)
        if call is None or not _is_method_of(call, self.op_name):
            return self._opaque(statement, "not an op call")
        return self._call(statement, call, _Capture(_CONTEXT))

    def _call(
        self, statement: cst.BaseStatement, call: cst.Call, capture: _Capture | _BatchCapture
    ) -> ops.MigrateOperation:
        method = call.func.attr.value  # type: ignore[attr-defined]
        if method == "f" or not hasattr(capture, method):
            return self._opaque(statement, f"{method}() is not an operation")
        try:
            arguments = [(arg, self._evaluate(arg.value)) for arg in call.args]
        except _NotStatic as exc:
            return self._opaque(statement, str(exc))
        args = [value for arg, value in arguments if arg.keyword is None and not arg.star]
        kwargs = {arg.keyword.value: value for arg, value in arguments if arg.keyword is not None}
        if any(arg.star for arg, _ in arguments):
            return self._opaque(statement, "star arguments")
        capture.invoked = None
        try:
            op = getattr(capture, method)(*args, **kwargs)
        except Exception as exc:  # the call would fail at run time too: not ours to fix
            return self._opaque(statement, f"{method}() rejected its arguments: {exc}")
        if op is None:  # drop_table() invokes its op but returns nothing
            op = capture.invoked
        if not isinstance(op, ops.MigrateOperation):
            return self._opaque(statement, f"{method}() is not an operation")
        self.result.statement_of[id(op)] = statement
        self.result.call_of[id(op)] = call
        self.result.arguments_of[id(op)] = arguments
        self.result.alive.append(op)
        return op

    def _with(self, statement: cst.With) -> ops.MigrateOperation:
        if len(statement.items) != 1 or not isinstance(statement.body, cst.IndentedBlock):
            return self._opaque(statement, "with statement")
        item = statement.items[0].item
        if _is_autocommit_block(item, self.op_name):
            inner = [self._statement(s) for s in statement.body.body]
            block = AutocommitBlockOp(inner)
            self.result.statement_of[id(block)] = statement
            self.result.alive.append(block)
            return block
        if (
            isinstance(item, cst.Call)
            and _is_method_of(item, self.op_name)
            and item.func.attr.value == "batch_alter_table"  # type: ignore[attr-defined]
            and statement.items[0].asname is not None
        ):
            return self._batch(statement, item)
        return self._opaque(statement, "with statement")

    def _batch(self, statement: cst.With, call: cst.Call) -> ops.MigrateOperation:
        try:
            values = [(arg.keyword, self._evaluate(arg.value)) for arg in call.args]
        except _NotStatic as exc:
            return self._opaque(statement, str(exc))
        positional = [v for k, v in values if k is None]
        keywords = {k.value: v for k, v in values if k is not None}
        table = positional[0] if positional else keywords.get("table_name")
        if not isinstance(table, str):
            return self._opaque(statement, "batch_alter_table on a table not known statically")
        schema = keywords.get("schema")
        alias = statement.items[0].asname.name  # type: ignore[union-attr]
        if not isinstance(alias, cst.Name):
            return self._opaque(statement, "with statement")
        capture = _BatchCapture(_CONTEXT, impl=_BatchTarget(table, schema))  # type: ignore[arg-type]
        inner: list[ops.MigrateOperation] = []
        assert isinstance(statement.body, cst.IndentedBlock)
        for child in statement.body.body:
            child_call = _lone_call(child)
            if child_call is not None and _is_method_of(child_call, alias.value):
                inner.append(self._call(child, child_call, capture))
            else:
                inner.append(self._opaque(child, "not an op call"))
        group = ops.ModifyTableOps(table, inner, schema=schema)
        for op in inner:
            self.result.group_of[id(op)] = group
        self.result.batch_of[id(group)] = statement
        self.result.statement_of[id(group)] = statement
        self.result.alive.append(group)
        return group

    def _opaque(self, statement: cst.BaseStatement, reason: str) -> OpaqueOp:
        op = OpaqueOp(statement, reason)
        self.result.statement_of[id(op)] = statement
        self.result.alive.append(op)
        return op

    # --- arguments ------------------------------------------------------------------------

    def _evaluate(self, node: cst.BaseExpression) -> Any:
        _check_static(node, self.scope)
        code = self.module.code_for_node(node)
        try:
            return eval(
                compile("(\n" + code + "\n)", "<migrafix>", "eval"),
                {"__builtins__": {}},
                dict(self.scope),
            )
        except Exception as exc:
            raise _NotStatic(f"cannot evaluate {code!r}: {exc}") from None


class _NotStatic(Exception):
    pass


_LITERALS = (
    cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString,
)
_CONTAINERS = (cst.List, cst.Tuple, cst.Set, cst.Dict)


def _check_static(node: cst.CSTNode, scope: Mapping[str, Any]) -> None:
    """Raise _NotStatic unless ``node`` is literals, containers, and calls or attributes of
    names in ``scope`` (True/False/None included)."""
    if isinstance(node, _LITERALS):
        if isinstance(node, cst.ConcatenatedString):
            _check_static(node.left, scope)
            _check_static(node.right, scope)
        return
    if isinstance(node, cst.Name):
        if node.value in ("True", "False", "None") or node.value in scope:
            return
        raise _NotStatic(f"{node.value} is not known statically")
    if isinstance(node, cst.Attribute):
        _check_static(node.value, scope)
        return
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        _check_static(node.expression, scope)
        return
    if isinstance(node, _CONTAINERS):
        for element in _elements(node):
            _check_static(element, scope)
        return
    if isinstance(node, cst.Call):
        _check_static(node.func, scope)
        for arg in node.args:
            if arg.star:
                raise _NotStatic("star arguments")
            _check_static(arg.value, scope)
        return
    raise _NotStatic(f"{type(node).__name__} is not read statically")


def _elements(node: cst.CSTNode) -> Iterator[cst.BaseExpression]:
    if isinstance(node, cst.Dict):
        for element in node.elements:
            if not isinstance(element, cst.DictElement):
                raise _NotStatic("dict unpacking")
            yield element.key
            yield element.value
        return
    for element in node.elements:  # type: ignore[attr-defined]
        if not isinstance(element, cst.Element):
            raise _NotStatic("unpacking")
        yield element.value


def _literal_table_effect(statement: cst.BaseStatement) -> tuple[str | None, str | None]:
    call = _lone_call(statement)
    if call is None or not isinstance(call.func, cst.Attribute) or not call.args:
        return None, None
    effect = {"create_table": "create", "drop_table": "drop"}.get(call.func.attr.value)
    first = call.args[0].value
    if effect is None or not isinstance(first, cst.SimpleString):
        return None, None
    return str(first.evaluated_value), effect


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _lone_call(statement: cst.BaseStatement) -> cst.Call | None:
    if (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, cst.Call)
    ):
        return statement.body[0].value
    return None


def _is_method_of(call: cst.Call, receiver: str) -> bool:
    func = call.func
    return (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Name)
        and func.value.value == receiver
    )


def _is_autocommit_block(item: cst.BaseExpression, op_name: str) -> bool:
    return (
        isinstance(item, cst.Call)
        and isinstance(item.func, cst.Attribute)
        and item.func.attr.value == "autocommit_block"
        and isinstance(item.func.value, cst.Call)
        and _is_method_of(item.func.value, op_name)
        and item.func.value.func.attr.value == "get_context"  # type: ignore[attr-defined]
    )


_TABLE_LEVEL = (
    ops.AddColumnOp, ops.DropColumnOp, ops.AlterColumnOp, ops.CreateIndexOp, ops.DropIndexOp,
    ops.AddConstraintOp, ops.DropConstraintOp,
)


def _grouped(top: Sequence[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    """Consecutive ops on one table as one ModifyTableOps, the shape autogenerate gives the
    rules (a rename is a drop and an add in one table group)."""
    result: list[ops.MigrateOperation] = []
    for op in top:
        if isinstance(op, _TABLE_LEVEL):
            table = table_of(op)
            previous = result[-1] if result else None
            if (
                isinstance(previous, ops.ModifyTableOps)
                and getattr(previous, "_migrafix_plain", False)
                and (previous.schema, previous.table_name) == table
            ):
                previous.ops.append(op)
                continue
            group = ops.ModifyTableOps(table[1], [op], schema=table[0])
            group._migrafix_plain = True  # type: ignore[attr-defined]  # not a batch block
            result.append(group)
        else:
            result.append(op)
    return result


def table_of(op: ops.MigrateOperation) -> tuple[str | None, str]:
    """(schema, table) of an op on a table, whatever the op calls them."""
    table = getattr(op, "table_name", None) or getattr(op, "source_table", None)
    return (getattr(op, "schema", None) or getattr(op, "source_schema", None), str(table))

