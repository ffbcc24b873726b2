"""The backfill ``UPDATE`` with the dialect's preparer and compiles only the
value: the statement must be the one SQLAlchemy's compiler writes whole, byte for byte."""

from __future__ import annotations

import datetime
import decimal
import enum
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import quoted_name

from migrafix.blocks import _compiled_update, update_statement


class Lowered(sa.types.TypeDecorator[str]):
    """A type that wraps its bound value in SQL, as PostGIS types do."""

    impl = sa.String
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.func.lower(bindvalue)


class Colour(enum.Enum):
    red = "red"


DIALECTS: dict[str, Dialect] = {
    "postgresql": postgresql.dialect(),
    "mysql": mysql.dialect(),
    "mariadb": mysql.dialect(is_mariadb=True),
    "sqlite": sqlite.dialect(),
    "mssql": mssql.dialect(),
    "oracle": oracle.dialect(),
}
TABLES = ["plain", "order", "Mixed", "odd table", 'quote"d', "ünïcode", "1st",
          quoted_name("lower", True)]
SCHEMAS = [None, "billing", "Billing", "select", "odd schema"]
COLUMNS = [("status", sa.String(20)), ("from", sa.String(20)), ("Status", sa.String(20)),
           ("odd col", sa.String(20))]
VALUES: list[tuple[str, Any]] = [
    ("a string", sa.literal("placed", sa.String(20))),
    ("a quote", sa.literal("it's", sa.String(20))),
    ("a backslash", sa.literal("back\\slash", sa.String(20))),
    ("a percent and a colon", sa.literal("50% :off", sa.String(20))),
    ("unicode", sa.literal("ünïcode ✓", sa.Unicode(20))),
    ("an integer", sa.literal(0, sa.Integer())),
    ("a negative big integer", sa.literal(-(2**40), sa.BigInteger())),
    ("true", sa.literal(True, sa.Boolean())),
    ("false", sa.literal(False, sa.Boolean())),
    ("a float", sa.literal(1.5, sa.Float())),
    ("a decimal", sa.literal(decimal.Decimal("1.50"), sa.Numeric(10, 2))),
    ("a date", sa.literal(datetime.date(2024, 5, 1), sa.Date())),
    ("a datetime", sa.literal(datetime.datetime(2024, 5, 1, 12, 30), sa.DateTime())),
    ("an enum", sa.literal(Colour.red, sa.Enum(Colour))),
    ("JSON", sa.literal({"a": [1, "b"]}, sa.JSON())),
    ("a bind expression", sa.literal("X", Lowered())),
    ("SQL text", sa.text("now()")),
    ("SQL text with a colon", sa.text("'a\\:b' || other")),
    ("a function", sa.func.coalesce(sa.column("other"), 0)),
    ("the TODO placeholder", sa.literal_column("<value>")),
]


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_the_statement_is_the_one_sqlalchemy_compiles(dialect_name: str) -> None:
    dialect = DIALECTS[dialect_name]
    assert dialect.statement_compiler.visit_update is SQLCompiler.visit_update  # fast path
    compared, differ = 0, []
    for label, value in VALUES:
        for column_name, column_type in COLUMNS:
            column = sa.Column(column_name, column_type)
            for table in TABLES:
                for schema in SCHEMAS:
                    try:
                        whole = _compiled_update(table, schema, column, value, dialect)
                    except sa.exc.CompileError as exc:  # a literal this dialect cannot render
                        with pytest.raises(sa.exc.CompileError, match=str(exc)[:40]):
                            update_statement(table, schema, column, value, dialect)
                        continue
                    fast = update_statement(table, schema, column, value, dialect)
                    compared += 1
                    if fast != whole:
                        differ.append(f"{label}, {schema}.{table}.{column_name}:\n"
                                      f"  {fast}\n  {whole}")
    assert not differ, "\n".join(differ[:10])
    assert compared > len(TABLES) * len(SCHEMAS) * len(COLUMNS) * len(VALUES) * 0.8


def test_a_dialect_that_writes_update_its_own_way_gets_the_whole_compile() -> None:
    class Compiler(postgresql.dialect.statement_compiler):  # type: ignore[name-defined, misc]
        def visit_update(self, update_stmt: Any, **kw: Any) -> str:
            return "/* audited */ " + str(super().visit_update(update_stmt, **kw))

    class AuditedDialect(postgresql.dialect):  # type: ignore[misc, valid-type]
        statement_compiler = Compiler

    column = sa.Column("status", sa.String(20))
    assert update_statement("order", None, column, sa.literal("placed", sa.String(20)),
                            AuditedDialect()) == (
        "/* audited */ UPDATE \"order\" SET status='placed' WHERE \"order\".status IS NULL")
