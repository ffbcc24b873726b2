"""Building blocks the rules compose: the forms of a change that keep a busy table writable.

Each returns Alembic ops (or migrafix's own, rendered as plain Alembic code) for one dialect;
rules decide when a form applies, these say how it is written. What each costs a concurrent
client on a populated table is measured by tests/benchmark_locks.py.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.operations import ops
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import conv

from migrafix.ops import BackfillOp, BatchedBackfillOp, NotValidCheckOp, UndoOnFailureOp
from migrafix.revision import derived

__all__ = [
    "BATCHED_DIALECTS",
    "NOT_VALID_DIALECTS",
    "UNIQUE_USING_INDEX_OPTIONS",
    "ValidatedLater",
    "add_not_valid",
    "batched_backfill",
    "check_name",
    "set_not_null_online",
    "unique_using_index",
    "update_statement",
    "validate_constraint",
]

# Where a constraint can be added without checking the rows already there, and checked later
# without blocking writes: PostgreSQL's NOT VALID and VALIDATE CONSTRAINT. InnoDB has no such
# pair (it adds a foreign key in place only with foreign_key_checks=0, which never checks the
# existing rows); SQLite adds a constraint only by copying the table.
NOT_VALID_DIALECTS = frozenset({"postgresql"})
# The constraints NOT VALID applies to on PostgreSQL.
ValidatedLater = ops.CreateForeignKeyOp | ops.CreateCheckConstraintOp

# Where a backfill is written as batches: each batch a short transaction of its own.
BATCHED_DIALECTS = frozenset({"postgresql", "mysql", "mariadb"})


def update_statement(
    table: str, schema: str | None, column: sa.Column[Any], value: Any, dialect: Dialect
) -> str:
    """``UPDATE t SET c = value WHERE t.c IS NULL``, quoted and rendered for the dialect.

    The value is compiled by SQLAlchemy; the names are quoted by the dialect's preparer and
    put in the frame its compiler writes (tests/test_update_statement.py proves the two equal,
    dialect by dialect). Compiling the whole statement took 120-200 µs a column: half the
    hook's time when many columns are added."""
    if dialect.statement_compiler.visit_update is not SQLCompiler.visit_update:
        return _compiled_update(table, schema, column, value, dialect)
    target, name, rendered = _update_parts(table, schema, column, value, dialect)
    return f"UPDATE {target} SET {name}={rendered} WHERE {target}.{name} IS NULL"


def _update_parts(
    table: str, schema: str | None, column: sa.Column[Any], value: Any, dialect: Dialect
) -> tuple[str, str, str]:
    preparer = dialect.identifier_preparer
    target = preparer.format_table(sa.table(table, schema=schema))
    rendered = value.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return target, preparer.quote(column.name), str(rendered)


def _compiled_update(
    table: str, schema: str | None, column: sa.Column[Any], value: Any, dialect: Dialect
) -> str:
    """The statement compiled whole: for a dialect whose compiler writes UPDATE its own way."""
    target = sa.table(table, sa.column(column.name, column.type), schema=schema)
    statement = (
        sa.update(target).where(target.c[column.name].is_(None)).values({column.name: value})
    )
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def batched_backfill(
    table: str,
    schema: str | None,
    column: sa.Column[Any],
    value: Any,
    key: str,
    batch_size: int,
    dialect: Dialect,
) -> BatchedBackfillOp:
    """``column`` filled with ``value`` ``batch_size`` keys at a time, walking the integer
    ``key`` in order (keyset pagination: sparse keys cost no empty batches)."""
    target, name, rendered = _update_parts(table, schema, column, value, dialect)
    quoted_key = dialect.identifier_preparer.quote(key)
    return BatchedBackfillOp(
        first_key=f"SELECT min({quoted_key}) - 1 FROM {target}",
        next_upto=(f"SELECT max({quoted_key}) FROM (SELECT {quoted_key} FROM {target} "
                   f"WHERE {quoted_key} > :after ORDER BY {quoted_key} LIMIT {batch_size}) "
                   "AS batch"),
        update=(f"UPDATE {target} SET {name}={rendered} WHERE {quoted_key} > :after "
                f"AND {quoted_key} <= :upto AND {name} IS NULL"),
        table_name=table,
        column_name=column.name,
    )


def check_name(table: str, column: str, dialect: Dialect) -> str:
    """The temporary CHECK that proves ``column`` holds no NULL, within the dialect's limit."""
    preparer = dialect.identifier_preparer
    name = preparer.truncate_and_render_constraint_name(
        conv(f"ck_{table}_{column}_not_null"), _alembic_quote=False)
    return str(name)


def set_not_null_online(
    table: str,
    schema: str | None,
    column: sa.Column[Any],
    fill_rest: BackfillOp,
    dialect: Dialect,
) -> list[ops.MigrateOperation]:
    """``column`` (already filled in batches) made NOT NULL without blocking writes, in an
    autocommit block: each statement is its own transaction, and each can run again after a
    failure.

    PostgreSQL: ``VACUUM (ANALYZE)`` first: the batches left a dead version of every row, and
    an autovacuum they would set off holds a lock the ALTERs below must wait for (PostgreSQL
    cancels it only after ``deadlock_timeout``, while writes queue behind the ALTER; measured:
    a 1 s stall at 4M rows). VACUUM takes SHARE UPDATE EXCLUSIVE: reads and writes go on.
    Then ``CHECK (c IS NOT NULL) NOT VALID`` (from then on no new NULL can be written),
    ``fill_rest`` for rows written since the batches passed, ``VALIDATE`` (SHARE UPDATE
    EXCLUSIVE: reads and writes go on), ``SET NOT NULL`` (PostgreSQL 12+ takes the validated
    check as proof and skips its scan), then the check is dropped. Should a row stay NULL (the
    backfill gives NULL for it), the check is dropped before the error is raised: left in
    place, it would refuse every write to that row. Elsewhere ``fill_rest`` and the ALTER
    (InnoDB changes NULL-ability in place, with concurrent writes)."""
    set_not_null = ops.AlterColumnOp(table, column.name, schema=schema,
                                     existing_type=column.type, existing_nullable=True,
                                     existing_comment=column.comment, modify_nullable=False)
    if dialect.name != "postgresql":
        return [fill_rest, set_not_null]
    preparer = dialect.identifier_preparer
    target = preparer.format_table(sa.table(table, schema=schema))
    name = check_name(table, column.name, dialect)
    quoted = preparer.quote(name)
    check = NotValidCheckOp(name, table, f"{preparer.quote(column.name)} IS NOT NULL",
                            schema=schema)
    drop_check = ops.DropConstraintOp(name, table, type_="check", schema=schema)
    return [
        ops.ExecuteSQLOp(f"VACUUM (ANALYZE) {target}"),
        # a run killed after the check was added leaves it: the rerun starts this step again
        ops.ExecuteSQLOp(f"ALTER TABLE {target} DROP CONSTRAINT IF EXISTS {quoted}"),
        check,
        UndoOnFailureOp(
            [fill_rest, validate_constraint(table, schema, name, dialect)],
            [drop_check],
            why="a row left NULL: the check would refuse writes to it",
        ),
        set_not_null,
        drop_check,
    ]


def validate_constraint(
    table: str, schema: str | None, name: str, dialect: Dialect
) -> ops.ExecuteSQLOp:
    """``ALTER TABLE t VALIDATE CONSTRAINT c`` (PostgreSQL): checks the rows a NOT VALID
    constraint let through, under SHARE UPDATE EXCLUSIVE on ``t`` (and ROW SHARE on a foreign
    key's referenced table): reads and writes go on. Run on a valid constraint it does
    nothing, so a rerun after a failure starts where it stopped."""
    preparer = dialect.identifier_preparer
    target = preparer.format_table(sa.table(table, schema=schema))
    return ops.ExecuteSQLOp(
        f"ALTER TABLE {target} VALIDATE CONSTRAINT {preparer.quote(str(name))}")


def add_not_valid(
    add: ValidatedLater, dialect: Dialect
) -> tuple[ops.AddConstraintOp, ops.ExecuteSQLOp]:
    """``add`` (a named foreign key or CHECK) written NOT VALID, and the VALIDATE that checks
    the rows already there, which must run in a later transaction.

    NOT VALID: PostgreSQL checks only the rows written from then on, so the ADD holds its lock
    (SHARE ROW EXCLUSIVE on both tables of a foreign key, ACCESS EXCLUSIVE for a CHECK) for a
    moment, without a scan. The VALIDATE then scans under a lock that lets writes go on; run
    in the ADD's transaction it would scan while the ADD's lock is still held (Alembic runs
    every pending revision in one transaction unless ``transaction_per_migration``): it
    belongs in an autocommit block of a revision of its own."""
    assert add.constraint_name is not None
    not_valid: ops.AddConstraintOp
    if isinstance(add, ops.CreateForeignKeyOp):
        not_valid = derived(add, ops.CreateForeignKeyOp(
            add.constraint_name, add.source_table, add.referent_table, list(add.local_cols),
            list(add.remote_cols), **{**add.kw, "postgresql_not_valid": True}))
        table, schema = add.source_table, add.kw.get("source_schema")
    else:
        # migrafix renders it: Alembic renders a check constraint op only from 1.20 on
        not_valid = derived(add, NotValidCheckOp(str(add.constraint_name), add.table_name,
                                                 add.condition, schema=add.schema, **add.kw))
        table, schema = add.table_name, add.schema
    return not_valid, validate_constraint(table, schema, str(add.constraint_name), dialect)


# The options of a unique constraint the form below carries: to the index, or to the ALTER.
_UNIQUE_INDEX_OPTIONS = frozenset({"postgresql_include", "postgresql_nulls_not_distinct"})
UNIQUE_USING_INDEX_OPTIONS = _UNIQUE_INDEX_OPTIONS | {"deferrable", "initially"}


def unique_using_index(
    add: ops.CreateUniqueConstraintOp, dialect: Dialect
) -> list[ops.MigrateOperation]:
    """``add`` (a named unique constraint, its options among ``UNIQUE_USING_INDEX_OPTIONS``)
    as a unique index built CONCURRENTLY, then made the constraint: ``ALTER TABLE t ADD
    CONSTRAINT c UNIQUE USING INDEX c`` (PostgreSQL).

    ``ADD CONSTRAINT ... UNIQUE`` builds its index under ACCESS EXCLUSIVE: reads and writes
    wait for the whole build. ``CREATE UNIQUE INDEX CONCURRENTLY`` takes SHARE UPDATE
    EXCLUSIVE (reads and writes go on), and the ALTER only attaches the built index (ACCESS
    EXCLUSIVE for a moment); the index takes the constraint's name. Both run in an autocommit
    block (CONCURRENTLY refuses a transaction), of a revision of its own. A failed build
    (duplicate rows) leaves an INVALID index, to drop before a rerun."""
    name = add.constraint_name
    assert isinstance(name, str)  # a conv (op.f) stays one
    index = derived(add, ops.CreateIndexOp(
        name, add.table_name, list(add.columns), schema=add.schema, unique=True,
        **{key: value for key, value in add.kw.items() if key in _UNIQUE_INDEX_OPTIONS},
        postgresql_concurrently=True))
    preparer = dialect.identifier_preparer
    target = preparer.format_table(sa.table(add.table_name, schema=add.schema))
    quoted = preparer.quote(str(name))
    timing = ""
    if "deferrable" in add.kw:
        timing += " DEFERRABLE" if add.kw["deferrable"] else " NOT DEFERRABLE"
    if add.kw.get("initially"):
        timing += f" INITIALLY {str(add.kw['initially']).upper()}"
    attach = ops.ExecuteSQLOp(
        f"ALTER TABLE {target} ADD CONSTRAINT {quoted} UNIQUE USING INDEX {quoted}{timing}")
    return [index, attach]
