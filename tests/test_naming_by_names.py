"""unnamed-constraint names a foreign key, unique or primary key op from the names it carries,
without the stub table SQLAlchemy would name it on: the names must be SQLAlchemy's own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.operations import ops
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.elements import quoted_name

from migrafix.rules import unnamed_constraint
from migrafix.rules.unnamed_constraint import DEFAULT_NAMING_CONVENTION, NamingConvention

CONVENTIONS: list[Mapping[Any, str]] = [
    DEFAULT_NAMING_CONVENTION,
    {"fk": "fk_%(table_name)s_%(column_0N_name)s_%(referred_table_name)s",
     "uq": "uq_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s_%(column_0_name)s"},
    {"fk": "%(table_name)s_%(column_1_name)s_fkey", "uq": "%(column_0_name)s_%(column_2_name)s",
     "pk": "pk_%(column_0N_name)s"},
    # tokens read from the objects: SQLAlchemy's own way
    {"fk": "fk_%(table_name)s_%(referred_column_0_name)s", "uq": "uq_%(column_0_label)s",
     "pk": "pk_%(constraint_name)s"},
    {"fk": "fk_%(column_0_key)s_%(referred_table_name)s", "uq": "uq_%(column_0_key)s"},
    # names SQLAlchemy leaves empty, so unnamed
    {"fk": "fk_%(column_5_name)s", "uq": "%(column_3_name)s", "pk": "%(column_9_name)s"},
    {"uq": "uq_%%(table_name)s_%(table_name)s", "pk": "pk_%(table_name)r"},
    {"fk": "fk_%(table_name)s", "table_name": "x"},
    {"fk": "%(column_00_name)s__%(column_01_name)s", "pk": "pk_%(referred_table_name)s",
     "uq": "%(bogus)s"},
    {sa.Constraint: "c_%(table_name)s", "fk": "fk_%(table_name)s"},
    {"fk": "fk_" + "x" * 80 + "_%(table_name)s", "uq": "uq_" + "y" * 70 + "%(column_0N_name)s",
     "pk": "pk_%(table_name)s"},
    {"fk": "fk_%(column_0_Name)s", "uq": "uq_%(column_0N_key)s", "pk": "pk_%(column_1N_name)s"},
]

QUOTED = quoted_name("Odd Table", True)
OPS: list[ops.AddConstraintOp] = [
    ops.CreateForeignKeyOp(None, "order", "invoice", ["invoice_id"], ["id"]),
    ops.CreateForeignKeyOp(None, "order", "invoice", ["a", "b"], ["x", "y"],
                           source_schema="s1", referent_schema="s2"),
    ops.CreateForeignKeyOp(None, "node", "node", ["parent_id"], ["id"]),
    ops.CreateForeignKeyOp(None, QUOTED, quoted_name("Ref", True), ["Col A"], ["ID"],
                           ondelete="CASCADE", deferrable=True, initially="DEFERRED",
                           match="FULL", use_alter=True),
    ops.CreateForeignKeyOp(None, "t", "my.tbl", ["a"], ["id"]),
    ops.CreateForeignKeyOp(None, "t", "r", ["a"], ["my.id"]),
    ops.CreateForeignKeyOp(None, "t", "r", ["a", "b"], ["id"]),
    ops.CreateForeignKeyOp(None, "t", "r", ["a", "a"], ["id", "id2"]),
    ops.CreateForeignKeyOp(None, "t", "r", ["a"], ["id"], postgresql_not_valid=True),
    ops.CreateForeignKeyOp(None, "t" * 70, "r" * 70, ["c" * 70], ["id"]),
    ops.CreateForeignKeyOp(None, "ünïcode", "réf", ["çol"], ["id"]),
    ops.CreateUniqueConstraintOp(None, "product", ["sku"]),
    ops.CreateUniqueConstraintOp(None, "product", ["a", "b", "c"], schema="s"),
    ops.CreateUniqueConstraintOp(None, "product", [], deferrable=True),
    ops.CreateUniqueConstraintOp(None, "product", ["a", "a"]),
    ops.CreateUniqueConstraintOp(None, QUOTED, [quoted_name("X Y", True)]),
    ops.CreateUniqueConstraintOp(None, "p" * 80, ["a" * 80]),
    ops.CreatePrimaryKeyOp(None, "product", ["id"]),
    ops.CreatePrimaryKeyOp(None, "product", ["b", "a"], schema="s"),
    ops.CreatePrimaryKeyOp(None, "product", []),
]


def _outcome(name: Callable[[], object]) -> object:
    try:
        return name()
    except Exception as exc:  # an op SQLAlchemy cannot build: it must fail alike
        return type(exc)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect(), mysql.dialect()],
                         ids=lambda d: d.name)
@pytest.mark.parametrize("convention", CONVENTIONS, ids=lambda c: str(list(c.values())[:2]))
def test_names_from_names_are_sqlalchemys(
    convention: Mapping[Any, str], dialect: sa.engine.Dialect
) -> None:
    naming = NamingConvention(convention, dialect)
    for op in OPS:
        from_names = _outcome(lambda op=op: naming.name_for_op(op))
        from_objects = _outcome(lambda op=op: naming.name_for(op.to_constraint()))
        assert from_names == from_objects, (convention, op.__dict__)
        assert type(from_names) is type(from_objects)


def test_plain_ops_build_no_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of naming from names: no stub table (0.6 ms an op) for the common ops."""

    def built(op: object) -> None:
        raise AssertionError(f"built the stub of {op!r}")

    monkeypatch.setattr(unnamed_constraint, "_item_of", built)
    naming = NamingConvention(DEFAULT_NAMING_CONVENTION, postgresql.dialect())
    names = [naming.name_for_op(op) for op in (
        ops.CreateForeignKeyOp(None, "order", "invoice", ["invoice_id"], ["id"]),
        ops.CreateUniqueConstraintOp(None, "product", ["sku"]),
        ops.CreatePrimaryKeyOp(None, "product", ["id"]),
    )]
    assert names == ["fk_order_invoice_id_invoice", "uq_product_sku", "pk_product"]
