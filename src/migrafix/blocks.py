"""Building blocks the rules compose: the forms of a change that keep a busy table writable.

Each returns Alembic ops (or migrafix's own, rendered as plain Alembic code) for one dialect;
rules decide when a form applies, these say how it is written. What each costs a concurrent
client on a populated table is measured by tests/benchmark_locks.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic.operations import ops
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import conv

from migrafix.ops import (
    AutocommitBlockOp,
    BackfillOp,
    BatchedBackfillOp,
    LockMode,
    NotValidCheckOp,
    RefuseInvalidIndexesOp,
    TableSQLOp,
    TakeLocksOp,
    UndoOnFailureOp,
)
from migrafix.revision import derived

__all__ = [
    "BATCHED_DIALECTS",
    "NOT_VALID_DIALECTS",
    "UNIQUE_USING_INDEX_OPTIONS",
    "TableKey",
    "ValidatedLater",
    "add_not_valid",
    "batched_backfill",
    "check_name",
    "concurrent_builds",
    "concurrent_drops",
    "covers",
    "set_not_null_online",
    "table_locks",
    "take_locks_first",
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
    batches: BatchedBackfillOp,
    fill_rest: BackfillOp,
    dialect: Dialect,
    comment: str,
    purpose: str,
) -> list[ops.MigrateOperation]:
    """``column`` filled by ``batches`` and made NOT NULL without blocking writes, as the top
    level ops of a revision of its own: autocommit blocks for the work that stops no one and
    must commit step by step, and short transactions of their own, between them, for the
    ALTERs that do stop the application (the lock-timeout rule takes their locks first). Each
    step can run again after a failure.

    PostgreSQL: the batches, then ``VACUUM (ANALYZE)``: they left a dead version of every row,
    and an autovacuum they would set off holds a lock the ALTERs must wait for (PostgreSQL
    cancels it only after ``deadlock_timeout``, while writes queue behind the ALTER; measured:
    a 1 s stall at 4M rows). VACUUM takes SHARE UPDATE EXCLUSIVE: reads and writes go on.
    Then ``CHECK (c IS NOT NULL) NOT VALID`` (from then on no new NULL can be written),
    ``fill_rest`` for rows written since the batches passed, ``VALIDATE`` (SHARE UPDATE
    EXCLUSIVE: reads and writes go on), ``SET NOT NULL`` (PostgreSQL 12+ takes the validated
    check as proof and skips its scan), then the check is dropped. Should a row stay NULL (the
    backfill gives NULL for it), the check is dropped before the error is raised: left in
    place, it would refuse every write to that row. Elsewhere the batches, ``fill_rest`` and
    the ALTER, in one block (InnoDB changes NULL-ability in place, with concurrent writes)."""
    set_not_null = ops.AlterColumnOp(table, column.name, schema=schema,
                                     existing_type=column.type, existing_nullable=True,
                                     existing_comment=column.comment, modify_nullable=False)
    if dialect.name != "postgresql":
        return [AutocommitBlockOp([batches, fill_rest, set_not_null], (comment,), purpose)]
    preparer = dialect.identifier_preparer
    target = preparer.format_table(sa.table(table, schema=schema))
    name = check_name(table, column.name, dialect)
    check = NotValidCheckOp(name, table, f"{preparer.quote(column.name)} IS NOT NULL",
                            schema=schema)
    drop_check = ops.DropConstraintOp(name, table, type_="check", schema=schema)
    vacuum = TableSQLOp(f"VACUUM (ANALYZE) {target}", table_name=table, schema=schema,
                        lock=None)
    # a run stopped after the check was added leaves it: the rerun starts this step again
    drop_left = TableSQLOp(f"ALTER TABLE {target} DROP CONSTRAINT IF EXISTS "
                           f"{preparer.quote(name)}", table_name=table, schema=schema,
                           lock="ACCESS EXCLUSIVE")
    validate = UndoOnFailureOp(
        [fill_rest, validate_constraint(table, schema, name, dialect)],
        [drop_check],
        why="a row left NULL: the check would refuse writes to it",
    )
    return [
        AutocommitBlockOp([batches, vacuum], (comment,), purpose),
        drop_left,
        check,
        AutocommitBlockOp([validate], purpose=purpose),
        set_not_null,
        drop_check,
    ]


def validate_constraint(
    table: str, schema: str | None, name: str, dialect: Dialect
) -> TableSQLOp:
    """``ALTER TABLE t VALIDATE CONSTRAINT c`` (PostgreSQL): checks the rows a NOT VALID
    constraint let through, under SHARE UPDATE EXCLUSIVE on ``t`` (and ROW SHARE on a foreign
    key's referenced table): reads and writes go on. Run on a valid constraint it does
    nothing, so a rerun after a failure starts where it stopped."""
    preparer = dialect.identifier_preparer
    target = preparer.format_table(sa.table(table, schema=schema))
    return TableSQLOp(f"ALTER TABLE {target} VALIDATE CONSTRAINT {preparer.quote(str(name))}",
                      table_name=table, schema=schema, lock=None)


def add_not_valid(
    add: ValidatedLater, dialect: Dialect
) -> tuple[ops.AddConstraintOp, TableSQLOp]:
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


def concurrent_builds(
    creates: Sequence[ops.CreateIndexOp], dialect: Dialect
) -> list[ops.MigrateOperation]:
    """``creates`` (``postgresql_concurrently=True``) as the body of an autocommit block that
    a rerun finishes, on PostgreSQL. A build that fails (a cancelled or killed build, a unique
    index over duplicate rows) leaves its index INVALID and the revision not applied, with the
    builds before it done. So each build is ``IF NOT EXISTS``: the rerun skips the indexes
    already built rather than stopping at the first ("already exists"). It would skip the
    INVALID one too, and the upgrade would end with an index no query uses: the block first
    stops while one of its indexes is INVALID, saying to drop it. A block of one build needs
    neither: its rerun stops at the INVALID index ("already exists") until it is dropped, as
    the block's comment says."""
    named = [create for create in creates if create.index_name is not None]
    if len(named) < 2:  # IF NOT EXISTS needs a name
        return list(creates)
    preparer = dialect.identifier_preparer
    quoted = [preparer.format_table(sa.table(str(create.index_name), schema=create.schema))
              for create in named]
    lookups = ", ".join(f"to_regclass('{name.replace(chr(39), chr(39) * 2)}')"
                        for name in quoted)
    sql = "\n".join([
        "DO $$ DECLARE invalid text; BEGIN",
        "    SELECT string_agg(indexrelid::regclass::text, ', ') INTO invalid FROM pg_index",
        f"        WHERE NOT indisvalid AND indexrelid IN ({lookups});",
        "    IF invalid IS NOT NULL THEN",
        "        RAISE EXCEPTION 'index % is INVALID, left by a failed build: drop it (DROP INDEX "
        "CONCURRENTLY), fix the cause, and run alembic upgrade head again', invalid;",
        "    END IF;",
        "END $$",
    ])
    rerunnable: list[ops.MigrateOperation] = [RefuseInvalidIndexesOp(sql, quoted)]
    for create in creates:
        if create.index_name is not None:
            create = derived(create, copy.copy(create))
            create.if_not_exists = True
        rerunnable.append(create)
    return rerunnable


def concurrent_drops(drops: Sequence[ops.DropIndexOp]) -> list[ops.MigrateOperation]:
    """``drops`` (``postgresql_concurrently=True``) for an autocommit block that a rerun
    finishes, on PostgreSQL: each ``IF EXISTS``, so that the rerun after a failed drop skips
    those already dropped (the failed one stays, INVALID, until dropped again). A block of
    one drop is rerun as it is."""
    if len(drops) < 2:
        return list(drops)
    rerunnable: list[ops.MigrateOperation] = []
    for drop in drops:
        drop = derived(drop, copy.copy(drop))
        drop.if_exists = True
        rerunnable.append(drop)
    return rerunnable


# The options of a unique constraint the form below carries: to the index, or to the ALTER.
_UNIQUE_INDEX_OPTIONS = frozenset({"postgresql_include", "postgresql_nulls_not_distinct"})
UNIQUE_USING_INDEX_OPTIONS = _UNIQUE_INDEX_OPTIONS | {"deferrable", "initially"}


def unique_using_index(
    add: ops.CreateUniqueConstraintOp, dialect: Dialect
) -> tuple[ops.CreateIndexOp, TableSQLOp]:
    """``add`` (a named unique constraint, its options among ``UNIQUE_USING_INDEX_OPTIONS``)
    as a unique index built CONCURRENTLY, then made the constraint: ``ALTER TABLE t ADD
    CONSTRAINT c UNIQUE USING INDEX c`` (PostgreSQL).

    ``ADD CONSTRAINT ... UNIQUE`` builds its index under ACCESS EXCLUSIVE: reads and writes
    wait for the whole build. ``CREATE UNIQUE INDEX CONCURRENTLY`` takes SHARE UPDATE
    EXCLUSIVE (reads and writes go on); it must run in an autocommit block, of a revision of
    its own. The ALTER only attaches the built index, under ACCESS EXCLUSIVE for a moment: in a
    transaction of its own after the block, where its lock is taken first under a lock
    timeout (lock-timeout). The index takes the constraint's name, ``IF NOT EXISTS``: should
    the ALTER fail (a lock not had), the rerun goes straight to it. A failed build (duplicate
    rows) leaves an INVALID index, to drop before a rerun."""
    name = add.constraint_name
    assert isinstance(name, str)  # a conv (op.f) stays one
    index = derived(add, ops.CreateIndexOp(
        name, add.table_name, list(add.columns), schema=add.schema, unique=True,
        if_not_exists=True,
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
    attach = TableSQLOp(
        f"ALTER TABLE {target} ADD CONSTRAINT {quoted} UNIQUE USING INDEX {quoted}{timing}",
        table_name=add.table_name, schema=add.schema, lock="ACCESS EXCLUSIVE")
    return index, attach


# --- locks ------------------------------------------------------------------------------------

# The locks that stop the application, strongest first. Each conflicts with everything the ones
# after it conflict with, so a transaction holding one is granted the ones after it at once.
_STRONGEST_FIRST: tuple[LockMode, ...] = ("ACCESS EXCLUSIVE", "SHARE ROW EXCLUSIVE", "SHARE")
TableKey = tuple[str | None, str]  # (schema, table)


def covers(held: LockMode, wanted: LockMode) -> bool:
    """Whether a transaction holding ``held`` on a table is granted ``wanted`` at once."""
    return _STRONGEST_FIRST.index(held) <= _STRONGEST_FIRST.index(wanted)


def table_locks(op: ops.MigrateOperation) -> Iterator[tuple[TableKey, LockMode]]:
    """The locks ``op`` takes on PostgreSQL that stop reads or writes, by table (what
    tests/test_lock_behaviour.py reads in pg_locks). Nothing for an op that takes none (a
    concurrent index build, a comment) or whose locks cannot be told (SQL text)."""
    if isinstance(op, TableSQLOp):
        if op.lock is not None:
            yield (op.schema, op.table_name), op.lock
    elif isinstance(op, ops.AddColumnOp):
        yield (op.schema, op.table_name), "ACCESS EXCLUSIVE"
        for key in op.column.foreign_keys:  # Alembic adds it by an ALTER of its own
            yield _referred(key.target_fullname), "SHARE ROW EXCLUSIVE"
    elif isinstance(op, ops.AlterColumnOp):
        if not _only_comment(op):  # COMMENT ON takes SHARE UPDATE EXCLUSIVE
            yield (op.schema, op.table_name), "ACCESS EXCLUSIVE"
    elif isinstance(op, ops.CreateForeignKeyOp):
        yield (op.kw.get("source_schema"), op.source_table), "SHARE ROW EXCLUSIVE"
        yield (op.kw.get("referent_schema"), op.referent_table), "SHARE ROW EXCLUSIVE"
    elif isinstance(op, ops.DropConstraintOp):
        yield (op.schema, op.table_name), "ACCESS EXCLUSIVE"
        created = op._reverse
        if isinstance(created, ops.CreateForeignKeyOp):  # its triggers on the referred table
            yield (created.kw.get("referent_schema"), created.referent_table), "ACCESS EXCLUSIVE"
    elif isinstance(op, ops.AddConstraintOp):  # unique, check, primary key, exclude
        yield (getattr(op, "schema", None), str(getattr(op, "table_name", ""))), \
            "ACCESS EXCLUSIVE"
    elif isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)):
        if not op.kw.get("postgresql_concurrently") and op.table_name:
            yield ((op.schema, op.table_name),
                   "SHARE" if isinstance(op, ops.CreateIndexOp) else "ACCESS EXCLUSIVE")
    elif isinstance(op, (ops.DropColumnOp, ops.RenameTableOp)):
        yield (op.schema, op.table_name), "ACCESS EXCLUSIVE"
    elif isinstance(op, ops.CreateTableOp):
        # the table itself is new; the tables its foreign keys refer to are not
        for key in _foreign_keys(op):
            yield _referred(key.target_fullname), "SHARE ROW EXCLUSIVE"
    elif isinstance(op, ops.DropTableOp) and isinstance(op._reverse, ops.CreateTableOp):
        for key in _foreign_keys(op._reverse):  # their triggers go with it
            yield _referred(key.target_fullname), "ACCESS EXCLUSIVE"


def _only_comment(op: ops.AlterColumnOp) -> bool:
    return (op.modify_comment is not False and op.modify_nullable is None
            and op.modify_server_default is False and op.modify_name is None
            and op.modify_type is None)


def _referred(target: str) -> TableKey:
    """The table of a foreign key's ``[schema.]table.column``."""
    parts = target.split(".")
    return (".".join(parts[:-2]) or None, parts[-2])


def _foreign_keys(op: ops.CreateTableOp) -> Iterator[sa.ForeignKey]:
    """The foreign keys of a table as ``create_table`` lists it, read without building the
    table (``to_table()`` would take the op's columns for a table of its own)."""
    for item in op.columns:
        if isinstance(item, sa.Column):
            yield from item.foreign_keys
        elif isinstance(item, sa.ForeignKeyConstraint):
            yield from item.elements


def take_locks_first(
    locks: Sequence[tuple[TableKey, LockMode]],
    timeout: str,
    retries: int,
    delay: float,
    dialect: Dialect,
) -> TakeLocksOp:
    """The locks a transaction's statements will take, taken before the first of them: while
    a statement waits for a lock, every query on that table queues behind it.

    Each try waits at most ``timeout`` (``SET LOCAL``: it stays for the statements after, in
    this transaction); one that times out is rolled back to where it began (a PL/pgSQL
    exception block is a savepoint: nothing it waited for stays locked), and tried again
    after ``delay`` seconds, ``retries`` times, but only while the transaction holds no other
    lock that stops writes (the locks of revisions run before this one in the same
    transaction, ``transaction_per_migration`` off): waiting then would stall queries on
    those tables. The last failure is raised as ``lock_not_available`` with what to do."""
    preparer = dialect.identifier_preparer
    strongest: dict[TableKey, LockMode] = {}
    for key, mode in locks:
        if key not in strongest or covers(mode, strongest[key]):
            strongest[key] = mode
    keys = sorted(strongest, key=lambda key: (key[0] or "", key[1]))  # one order: no deadlock
    quoted = {key: preparer.format_table(sa.table(key[1], schema=key[0])) for key in keys}
    statements = [
        f"LOCK TABLE {', '.join(quoted[k] for k in keys if strongest[k] == mode)} IN {mode} MODE;"
        for mode in _STRONGEST_FIRST if mode in strongest.values()
    ]
    tries = retries + 1
    names = ", ".join(quoted[k] for k in keys)
    them = "it" if len(keys) == 1 else "one of them"
    lines = [
        "DO $$ BEGIN",
        f"    SET LOCAL lock_timeout = '{timeout}';",
        f"    FOR attempt IN 1..{tries} LOOP",
        "        BEGIN",
        *(f"            {statement}" for statement in statements),
        "            RETURN;",
        "        EXCEPTION WHEN lock_not_available THEN",
        "            -- no more tries while this transaction holds locks that stop writes",
        f"            IF attempt = {tries} OR EXISTS (SELECT FROM pg_locks WHERE pid = "
        "pg_backend_pid()",
        "                    AND locktype = 'relation' AND mode IN ('ShareLock',",
        "                    'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'))"
        " THEN",
        f"                RAISE lock_not_available USING MESSAGE = 'could not lock "
        f"{names.replace(chr(39), chr(39) * 2)} within {timeout}, try ' || attempt || ' of "
        f"{tries}: once what holds {them} ends, run alembic upgrade head again';",
        "            END IF;",
        f"            PERFORM pg_sleep({delay:g});",
        "        END;",
        "    END LOOP;",
        "END $$",
    ]
    wait = (f"{tries} tries {delay:g} s apart" if tries > 1 else "one try")
    comment = (f"migrafix: a statement waiting for a lock stalls every query queued behind it, "
               f"so the locks are taken first: at most {timeout} a try, {wait}, then the "
               "migration stops.",)
    return TakeLocksOp("\n".join(lines), [_label(key) for key in keys], comment)


def _label(key: TableKey) -> str:
    return f"{key[0]}.{key[1]}" if key[0] else key[1]
