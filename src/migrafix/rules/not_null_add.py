"""not-null-add: a NOT NULL column added to an existing table is added nullable, backfilled,
then set NOT NULL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

import sqlalchemy as sa
from alembic.operations import ops
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ClauseElement

from migrafix.blocks import (
    BATCHED_DIALECTS,
    batched_backfill,
    set_not_null_online,
    update_statement,
)
from migrafix.ops import BackfillOp, CommentOp
from migrafix.revision import Revision, Tree, derived
from migrafix.rules.base import Example, Finding, Rule, RuleContext, table_spellings

__all__ = ["NotNullAdd"]

class NotNullAdd(Rule):
    name = "not-null-add"
    summary = "A NOT NULL column without a server default is added to a table that has rows."
    why = (
        "`ADD COLUMN ... NOT NULL` with no server default fails on every table that already "
        "holds rows (PostgreSQL: `column ... contains null values`). The value comes from "
        "`info={\"backfill\": ...}` on the column (a Python value, or `sa.text(...)` for SQL), "
        "else the column's scalar `default=`, else the `backfill` setting (a value with no SQL "
        "literal, such as a dict for a JSON column, is passed over). migrafix writes the form "
        "that keeps the table writable on the project's database:\n\n"
        "- **A constant** (a literal, or on PostgreSQL a function that is not volatile, such "
        "as `now()`): the column is added NOT NULL with the value as its server default, "
        "which is then dropped. PostgreSQL 11+, MySQL 8.0.12+ and MariaDB 10.3+ store it in "
        "the catalog: no UPDATE, no rewrite, the lock held for milliseconds. Not on MySQL for "
        "TEXT, BLOB and JSON columns, which take no literal DEFAULT. On SQLite outside batch "
        "mode the default stays (SQLite drops one only by copying the table).\n"
        "- **Anything else** (it reads other columns, a subquery, `gen_random_uuid()`), on "
        "PostgreSQL and MySQL/MariaDB: the column is added nullable; a "
        "revision of its own (`<rev>_post`) fills it in batches of `backfill_batch_size` rows "
        "by the table's integer primary key, each batch committed on its own, in an "
        "autocommit block; then, on PostgreSQL, `CHECK (col IS NOT NULL) NOT VALID`, a last "
        "UPDATE for rows written meanwhile, `VALIDATE CONSTRAINT` (reads and writes go on), "
        "`SET NOT NULL` (PostgreSQL 12+ skips its scan given the validated check), and the "
        "check dropped (a `VACUUM (ANALYZE)` after the batches keeps an autovacuum they would "
        "set off from holding up those ALTERs). The ALTERs run in short transactions of their "
        "own between the autocommit blocks, where lock-timeout takes their locks first under "
        "a lock timeout. Every step can be rerun: after a failure the "
        "database is at `<rev>`, and `alembic upgrade head` picks up where it stopped. "
        "`migrafix rewrite` writes `<rev>_post` as a file beside a revision that has not run, "
        "and reads the table's key from the models the `metadata` setting names.\n"
        "- **Otherwise** (SQLite; a revision that already ran, or read from standard input; "
        "a table without a single integer primary key, or one the codemod cannot read): add "
        "nullable, `UPDATE ... WHERE col IS NULL`, set NOT "
        "NULL, in the migration's transaction. In SQLite batch mode the UPDATE runs between "
        "two batch blocks, after the column exists.\n\n"
        "With no backfill known the column is still split, and the revision carries a marked "
        "TODO where the UPDATE belongs. A column added nullable and then set NOT NULL with "
        "nothing between that could fill it (written by hand, or left with that TODO) is the "
        "same hazard: it is reported, and a known backfill is written before the set NOT NULL "
        "(the codemod then removes its TODO)."
    )
    fix_safety = (
        "The default form gives every existing row the value an UPDATE would, a stable "
        "function evaluated once. The batched form commits as it goes: rows the application "
        "writes meanwhile are filled by the last UPDATE, and a row the backfill leaves NULL "
        "stops the upgrade at `<rev>` (the temporary check is dropped first, so writes to that "
        "row go on). The one-transaction form rewrites every row under the table's lock: on a "
        "large table, prefer the hook's batched form or fill it by hand. Columns added to "
        "tables created in the same revision, identity and computed columns, primary key "
        "columns and columns with a server default are left alone."
    )
    options = (
        "`backfill = {\"table.column\" = \"SQL expression\"}` in `[tool.migrafix]`, or "
        "`-x backfill=table.column=SQL` (repeatable). `backfill_batch_size = 10000`: rows per "
        "transaction in the batched form. `split_concurrent_revisions = false` keeps every "
        "revision whole, and the batched form becomes the one-transaction form."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        for tree in revision.trees():
            self._fill_before_set_not_null(tree, context)
            created = tree.created_tables()
            splits: dict[int, list[ops.MigrateOperation]] = {}
            for op, emptied in _with_emptied_tables(tree):
                if not isinstance(op, ops.ModifyTableOps):
                    continue
                group = op
                if (group.schema, group.table_name) in created or group.table_name in emptied:
                    continue
                unsafe = [op for op in group.ops
                          if isinstance(op, ops.AddColumnOp) and _needs_split(op.column)]
                if unsafe:
                    splits[id(group)] = self._split(revision, tree, group, unsafe, context)
            tree.replace_all(splits)

    def _split(
        self,
        revision: Revision,
        tree: Tree,
        group: ops.ModifyTableOps,
        unsafe: list[ops.AddColumnOp],
        context: RuleContext,
    ) -> list[ops.MigrateOperation]:
        """[..., add NOT NULL, ...rest] becomes [..., add], fills, [alters, ...rest], each
        column in the fastest form that holds on the dialect (see ``_form``).

        The fills sit between two table groups so that in batch mode they run after the
        first batch block has added the column (batch ops are queued until the block exits).
        """
        replaced: dict[int, ops.MigrateOperation] = {}
        middle: list[ops.MigrateOperation] = []
        alters: list[ops.MigrateOperation] = []
        for add in unsafe:
            value, sql, unwritable = _known_backfill(group.table_name, group.schema, add.column,
                                                     context)
            if sql is None:
                written = self._todo(tree, group, add, unwritable, context)
            else:
                form, reason = _form(value, add.column, group.table_name, group.schema,
                                         context)
                if form == "server default":
                    written = self._as_server_default(tree, group, add, value, context)
                elif form == "batches":
                    written = self._in_batches(revision, tree, group, add, value, context)
                else:
                    written = self._in_one_transaction(tree, group, add, sql, reason, context)
            replaced[id(add)], fills, afterwards = written
            middle += fills
            alters += afterwards
        last = max(index for index, op in enumerate(group.ops) if id(op) in replaced)
        head = [replaced.get(id(op), op) for op in group.ops[: last + 1]]
        tail = list(group.ops[last + 1 :])
        if not middle and not alters:
            return [derived(group, ops.ModifyTableOps(group.table_name, head + tail,
                                                      schema=group.schema))]
        return [
            derived(group, ops.ModifyTableOps(group.table_name, head, schema=group.schema)),
            *middle,
            derived(group, ops.ModifyTableOps(group.table_name, alters + tail,
                                              schema=group.schema)),
        ]

    # Each form: the add written in its place, what runs between the two table groups, what
    # runs at the start of the second.

    def _as_server_default(
        self, tree: Tree, group: ops.ModifyTableOps, add: ops.AddColumnOp, value: Any,
        context: RuleContext,
    ) -> Written:
        column = add.column
        new_add = derived(add, ops.AddColumnOp(
            group.table_name, _with_server_default(column, value, context), schema=group.schema))
        # SQLite alters a column only by copying the table, in batch mode
        if context.dialect_name == "sqlite" and not context.in_batch(group):
            context.report(Finding(self.name, tree.direction, group.table_name,
                f"NOT NULL {column.name} added with its backfill as a server default, which "
                "stays: SQLite drops a default only in batch mode", fixed=True, op=add))
            return new_add, [], []
        drop_default = ops.AlterColumnOp(
            group.table_name, column.name, schema=group.schema, existing_type=column.type,
            existing_nullable=False, existing_comment=column.comment,
            modify_server_default=None)
        context.report(Finding(self.name, tree.direction, group.table_name,
            f"NOT NULL {column.name} added with its backfill as a server default, then the "
            "default dropped: no UPDATE, no table rewrite", fixed=True, op=add))
        return new_add, [], [drop_default]

    def _in_batches(
        self, revision: Revision, tree: Tree, group: ops.ModifyTableOps, add: ops.AddColumnOp,
        value: Any, context: RuleContext,
    ) -> Written:
        """The fill and the NOT NULL in an autocommit block, in a revision after this one:
        a failure at any step leaves the database at this revision, and rerunning
        ``alembic upgrade head`` picks up where it stopped."""
        column = add.column
        table, schema, dialect = group.table_name, group.schema, context.dialect
        size = context.settings.backfill_batch_size
        key = _integer_key(column, table, schema, context)
        assert key is not None  # _form chose batches for a table that has one
        rest = BackfillOp(update_statement(table, schema, column, value, dialect),
                          table_name=table, column_name=column.name, schema=schema)
        steps = set_not_null_online(
            table, schema, column, batched_backfill(table, schema, column, value, key, size,
                                                    dialect),
            rest, dialect, comment=_batches_comment(table, column.name, size, dialect.name),
            purpose=f"backfill {table}.{column.name}")
        undo = ops.AlterColumnOp(table, column.name, schema=schema, existing_type=column.type,
                                 existing_nullable=False, existing_comment=column.comment,
                                 modify_nullable=True)
        revision.run_after_main(tree, steps, [undo])
        context.report(Finding(self.name, tree.direction, table,
            f"NOT NULL {column.name} added nullable, then filled {size} rows per transaction "
            "and set NOT NULL in a revision of its own: writes wait for one batch at most",
            fixed=True, op=add))
        return _nullable(add, group), [], []

    def _in_one_transaction(
        self, tree: Tree, group: ops.ModifyTableOps, add: ops.AddColumnOp, sql: str,
        reason: str, context: RuleContext,
    ) -> Written:
        column = add.column
        context.report(Finding(self.name, tree.direction, group.table_name,
            f"NOT NULL {column.name} split into add nullable / backfill / set NOT NULL",
            fixed=True, op=add, hint=reason or None))
        fill = BackfillOp(sql, table_name=group.table_name, column_name=column.name,
                          schema=group.schema)
        return _nullable(add, group), [fill], [_set_not_null(group, column)]

    def _fill_before_set_not_null(self, tree: Tree, context: RuleContext) -> None:
        """The same hazard written by hand, or left by an earlier run with a TODO: a column
        added nullable, then set NOT NULL with nothing between that could fill it. A known
        backfill goes right before the set NOT NULL; else it is reported."""
        created = tree.created_tables()
        added: dict[tuple[str | None, str, str], ops.AddColumnOp] = {}
        inserts: dict[int, list[ops.MigrateOperation]] = {}
        cuts: dict[int, list[tuple[int, ops.MigrateOperation]]] = {}  # by table group
        for op, emptied in _with_emptied_tables(tree):
            inner = op.ops if isinstance(op, ops.ModifyTableOps) else [op]
            for index, leaf in enumerate(inner):
                if not isinstance(leaf, _SCHEMA_ONLY):
                    added.clear()  # an UPDATE, a loop, anything unread: it may fill them
                elif isinstance(leaf, ops.AddColumnOp) and _added_empty(leaf.column):
                    added[(leaf.schema, leaf.table_name, leaf.column.name)] = leaf
                elif isinstance(leaf, ops.AlterColumnOp) and leaf.modify_nullable is False:
                    add = added.pop((leaf.schema, leaf.table_name, leaf.column_name), None)
                    if (add is None or (add.schema, add.table_name) in created
                            or add.table_name in emptied):
                        continue
                    fill = self._fill(tree, add, leaf, context)
                    if fill is not None and isinstance(op, ops.ModifyTableOps):
                        cuts.setdefault(id(op), []).append((index, fill))
                    elif fill is not None:
                        inserts[id(op)] = [fill, op]
            if id(op) in cuts:
                assert isinstance(op, ops.ModifyTableOps)
                inserts[id(op)] = _cut(op, cuts[id(op)])
        tree.replace_all(inserts)

    def _fill(
        self, tree: Tree, add: ops.AddColumnOp, alter: ops.AlterColumnOp, context: RuleContext
    ) -> ops.MigrateOperation | None:
        table, name = add.table_name, add.column.name
        _, sql, unwritable = _known_backfill(table, add.schema, add.column, context)
        if sql is None:
            x_hint = context.spell_option("backfill", f"{table}.{name}=<SQL>")
            why = f" (its backfill has no SQL form: {unwritable})" if unwritable else ""
            context.report(Finding(self.name, tree.direction, table,
                f"{name} is set NOT NULL with nothing filling it since it was added nullable"
                f"{why}: the set NOT NULL fails on a table with rows", fixed=False,
                hint=f"fill it with an UPDATE between them, or rerun with {x_hint}",
                fixable_with="backfill", op=alter))
            return None
        context.report(Finding(self.name, tree.direction, table,
            f"{name} backfilled before it is set NOT NULL", fixed=True, op=alter))
        return BackfillOp(sql, table_name=table, column_name=name, schema=add.schema)

    def _todo(
        self, tree: Tree, group: ops.ModifyTableOps, add: ops.AddColumnOp, unwritable: str,
        context: RuleContext,
    ) -> Written:
        """No backfill is known: the column is still split, and the revision says where its
        UPDATE belongs and how to have migrafix write it."""
        column = add.column
        table, name = group.table_name, column.name
        placeholder = update_statement(table, group.schema, column,
                                       sa.literal_column("<value>"), context.dialect)
        x_hint = context.spell_option("backfill", f"{table}.{name}=<SQL>")
        hint = f"put info={{'backfill': ...}} on {table}.{name}, or rerun with {x_hint}"
        context.report(Finding(self.name, tree.direction, table,
            f"{name} is added NOT NULL with "
            + (f"a backfill that has no SQL form ({unwritable})" if unwritable
               else "no known backfill")
            + ": the set NOT NULL fails on a table with rows", fixed=False, hint=hint,
            fixable_with="backfill", op=add))
        return _nullable(add, group), [CommentOp([
            f"TODO(migrafix): fill {table}.{name} before it becomes NOT NULL, e.g.",
            f"op.execute({placeholder!r})",
            f"To have migrafix write it, put info={{'backfill': ...}} on {table}.{name},",
            f"or {context.rerun} with",
            f"    {x_hint}",
        ])], [_set_not_null(group, column)]


_EMPTIES = re.compile(
    r"""^\s*(?:DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+[`"]?(\w+)[`"]?\s*;?\s*$""",
    re.IGNORECASE)


def _emptied_table(op: ops.MigrateOperation) -> set[str]:
    """The table a literal ``DELETE FROM t`` / ``TRUNCATE t`` (no WHERE) empties: a NOT NULL
    column added to it afterwards meets no row."""
    if isinstance(op, ops.ExecuteSQLOp) and isinstance(op.sqltext, str):
        match = _EMPTIES.match(op.sqltext)
        if match:
            return {match.group(1)}
    return set()


# Ops that change the schema and fill no row. Anything else between an add and a set NOT NULL
# (an UPDATE, a statement migrafix cannot read) may have filled the column.
_SCHEMA_ONLY = (
    ops.AddColumnOp, ops.DropColumnOp, ops.AlterColumnOp, ops.CreateIndexOp, ops.DropIndexOp,
    ops.AddConstraintOp, ops.DropConstraintOp, ops.CreateTableOp, ops.DropTableOp, CommentOp,
)


def _added_empty(column: sa.Column[Any]) -> bool:
    """A column added nullable with no server default: NULL in every existing row."""
    return column.nullable is not False and column.server_default is None and \
        column.computed is None and column.identity is None


def _cut(
    group: ops.ModifyTableOps, fills: list[tuple[int, ops.MigrateOperation]]
) -> list[ops.MigrateOperation]:
    """``group`` cut before each op at a fill's index, the fill between the parts: in batch
    mode the block before it has added the column when the UPDATE runs."""
    parts: list[ops.MigrateOperation] = []
    start = 0
    for index, fill in [*fills, (len(group.ops), None)]:
        if index > start:
            parts.append(derived(group, ops.ModifyTableOps(
                group.table_name, group.ops[start:index], schema=group.schema)))
        if fill is not None:
            parts.append(fill)
        start = index
    return parts


def _with_emptied_tables(
    tree: Tree,
) -> Iterator[tuple[ops.MigrateOperation, set[str]]]:
    """Each top-level op, with the tables a ``DELETE FROM``/``TRUNCATE`` before or at it left
    empty: a column added to such a table meets no row."""
    emptied: set[str] = set()
    for op in list(tree.top):
        emptied |= _emptied_table(op)
        if isinstance(op, ops.RenameTableOp) and op.table_name in emptied:
            emptied.add(op.new_table_name)  # still empty under its new name
        yield op, emptied


def _needs_split(column: sa.Column[Any]) -> bool:
    return (
        column.nullable is False
        and column.server_default is None
        and column.identity is None
        and column.computed is None
        and not column.primary_key
    )


def _backfill_values(
    column: sa.Column[Any], keys: list[str], context: RuleContext
) -> Iterator[Any]:
    """The known backfills, first the one to use: the column's info, its scalar default, the
    ``backfill`` setting."""
    if "backfill" in column.info:
        value = column.info["backfill"]
        yield value if isinstance(value, ClauseElement) else sa.literal(value, column.type)
    default = column.default
    if isinstance(default, sa.ColumnDefault) and default.is_scalar:
        yield sa.literal(default.arg, column.type)
    for key in reversed(keys):  # the schema-qualified one first
        if key in context.settings.backfill:
            yield sa.text(context.settings.backfill[key])
            return


def _known_backfill(
    table: str, schema: str | None, column: sa.Column[Any], context: RuleContext
) -> tuple[Any, str | None, str]:
    """The first known backfill SQLAlchemy can write as SQL, and its UPDATE. Else (None,
    None, why the known ones could not be written: "" when none is known). A dict default on
    a JSON column has no SQL literal: the next one known (the ``backfill`` setting) is used."""
    keys = [f"{spelling}.{column.name}" for spelling in table_spellings(table, schema)]
    unwritable = ""
    for value in _backfill_values(column, keys, context):
        try:
            return value, update_statement(table, schema, column, value, context.dialect), ""
        except sa.exc.CompileError as exc:
            unwritable = unwritable or str(exc)
    return None, None, unwritable


Form = Literal["server default", "batches", "one transaction"]
# How one column is written: its add, the ops between the table's two groups, the ops that open
# the second group.
Written = tuple[ops.AddColumnOp, list[ops.MigrateOperation], list[ops.MigrateOperation]]


def _form(
    value: Any, column: sa.Column[Any], table: str, schema: str | None, context: RuleContext
) -> tuple[Form, str]:
    """How a column with a known backfill is added, and why not faster ("" when the fastest).

    - "server default": a constant backfill as the column's DEFAULT, dropped afterwards. The
      database fills existing rows from its catalog, no UPDATE (PostgreSQL 11+, MySQL 8.0.12+,
      MariaDB 10.3+: instant; SQLite: the constant is written as the column's default).
    - "batches": add nullable; in a revision of its own, fill in batches of the table's integer
      key, each its own transaction; set NOT NULL without a blocking scan.
    - "one transaction": add nullable, UPDATE, set NOT NULL, in the migration's transaction,
      which holds the table's lock for the whole UPDATE.
    """
    dialect = context.dialect
    not_a_default = _why_not_a_default(value, column, dialect)
    if not not_a_default:
        return "server default", ""
    if dialect.name not in BATCHED_DIALECTS:
        return "one transaction", ""  # SQLite: the batch-block split, one writer anyway
    if not context.separate_revisions:
        return "one transaction", (
            f"{not_a_default}, so the UPDATE holds the table's lock until the migration "
            "commits; the batched form needs a revision of its own, `<rev>_post`, which is "
            "not written here")
    if _integer_key(column, table, schema, context) is None:
        return "one transaction", (
            f"{not_a_default}, and " + (context.integer_key_unknown or
            "the table has no single integer primary key to fill it in batches by: on a "
            "large table, fill it in batches by hand"))
    return "batches", ""


def _why_not_a_default(value: Any, column: sa.Column[Any], dialect: Dialect) -> str:
    """Why ``value`` cannot be the column's DEFAULT on ``dialect`` with the result an UPDATE
    would give; "" when it can: a constant, or (PostgreSQL) a function that is not volatile."""
    if dialect.name in ("mysql", "mariadb") and not getattr(dialect, "is_mariadb", False) \
            and isinstance(column.type, (sa.Text, sa.LargeBinary, sa.JSON)):
        return "MySQL takes no literal DEFAULT on a TEXT, BLOB or JSON column"
    if isinstance(value, sa.sql.elements.BindParameter):
        return ""  # a Python value, rendered as a literal
    sql = str(value.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    constant = _PG_CONSTANT if dialect.name == "postgresql" else _LITERAL
    return "" if constant.fullmatch(sql.strip()) else "its backfill is not a constant"


_LITERAL_TEXT = r"(?:[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|'(?:[^']|'')*'|TRUE|FALSE)"
_LITERAL = re.compile(_LITERAL_TEXT, re.IGNORECASE)
# A literal with a cast, or a function PostgreSQL evaluates once per statement (STABLE):
# as a DEFAULT it is stored in the catalog, as the UPDATE would have written it. VOLATILE
# ones (random(), gen_random_uuid(), clock_timestamp()) rewrite the table: not here.
_PG_CONSTANT = re.compile(
    rf"(?:{_LITERAL_TEXT}(?:\s*::\s*[a-z_][\w ]*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?)?"
    r"|now\(\)|transaction_timestamp\(\)|statement_timestamp\(\)"
    r"|current_(?:timestamp|date|time)(?:\(\d\))?|localtime(?:stamp)?(?:\(\d\))?"
    r"|current_user|session_user)",
    re.IGNORECASE)


def _with_server_default(column: sa.Column[Any], value: Any, context: RuleContext) -> Any:
    copy = column._copy()  # never the model's own column
    sql = value.compile(dialect=context.dialect, compile_kwargs={"literal_binds": True})
    copy.server_default = sa.DefaultClause(sa.text(str(sql)))
    return copy


def _nullable(add: ops.AddColumnOp, group: ops.ModifyTableOps) -> ops.AddColumnOp:
    copy = add.column._copy()  # never the model's own column
    copy.nullable = True
    return derived(add, ops.AddColumnOp(group.table_name, copy, schema=group.schema))


def _set_not_null(group: ops.ModifyTableOps, column: sa.Column[Any]) -> ops.AlterColumnOp:
    return ops.AlterColumnOp(group.table_name, column.name, schema=group.schema,
                             existing_type=column.type, existing_nullable=True,
                             existing_comment=column.comment, modify_nullable=False)


def _integer_key(
    column: sa.Column[Any], table: str, schema: str | None, context: RuleContext
) -> str | None:
    """The single integer primary key of the table ``column`` is added to: from its model
    table (the hook has it), else as the front end knows it (the codemod, from the models the
    ``metadata`` setting names)."""
    model = getattr(column, "table", None)
    if not isinstance(model, sa.Table):
        return context.integer_key(schema, table)
    key = list(model.primary_key.columns)
    if len(key) == 1 and isinstance(key[0].type, sa.Integer):
        return str(key[0].name)
    return None


def _batches_comment(table: str, column: str, size: int, dialect: str) -> str:
    not_null = ("then made NOT NULL through a CHECK validated while writes go on"
                if dialect == "postgresql" else "then made NOT NULL")
    return (f"migrafix: {table}.{column} is filled {size} rows per transaction, so writes to "
            f"{table} wait for one batch at most, {not_null}. Every step can run again: after "
            "a failure, fix its cause and run `alembic upgrade head`.")


NotNullAdd.examples = (
    Example(
        title="a required column with its backfill on the model",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            order = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True))
        """,
        after="""
            metadata = sa.MetaData()
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("status", sa.String(20), nullable=False, info={"backfill": "placed"}),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('order', sa.Column('status', sa.String(length=20), nullable=False))
        """,
        fixed_upgrade=r"""
            op.add_column('order', sa.Column('status', sa.String(length=20), server_default=sa.text("'placed'"), nullable=False))
            op.alter_column('order', 'status',
                       existing_type=sa.String(length=20),
                       server_default=None,
                       existing_nullable=False)
        """,
        fixed_downgrade=r"""
            op.drop_column('order', 'status')
        """,
    ),
    Example(
        title="a required column computed from other columns (PostgreSQL: in batches)",
        dialect="postgresql",
        settings={"backfill": {"line.total": "price * quantity"}, "ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            line = sa.Table(
                "line", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("price", sa.Integer, nullable=False),
                sa.Column("quantity", sa.Integer, nullable=False),
            )
        """,
        after="""
            metadata = sa.MetaData()
            line = sa.Table(
                "line", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("price", sa.Integer, nullable=False),
                sa.Column("quantity", sa.Integer, nullable=False),
                sa.Column("total", sa.Integer, nullable=False),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('line', sa.Column('total', sa.Integer(), nullable=False))
        """,
        fixed_upgrade=r"""
            # revision rev
            op.add_column('line', sa.Column('total', sa.Integer(), nullable=True))

            # revision rev_post
            # migrafix: line.total is filled 10000 rows per transaction, so writes to line wait for
            # one batch at most, then made NOT NULL through a CHECK validated while writes go on.
            # Every step can run again: after a failure, fix its cause and run `alembic upgrade head`.
            with op.get_context().autocommit_block():
                # offline (--sql) there are no rows to read: the UPDATE after the loop fills them all
                bind = op.get_bind()
                after = None if op.get_context().as_sql else bind.scalar(sa.text('SELECT min(id) - 1 FROM line'))
                while after is not None:
                    upto = bind.scalar(sa.text('SELECT max(id) FROM (SELECT id FROM line WHERE id > :after ORDER BY id LIMIT 10000) AS batch'), {'after': after})
                    bind.execute(sa.text('UPDATE line SET total=price * quantity WHERE id > :after AND id <= :upto AND total IS NULL'), {'after': after, 'upto': upto})
                    after = upto

                op.execute('VACUUM (ANALYZE) line')

            op.execute('ALTER TABLE line DROP CONSTRAINT IF EXISTS ck_line_total_not_null')
            op.create_check_constraint('ck_line_total_not_null', 'line', 'total IS NOT NULL', postgresql_not_valid=True)
            with op.get_context().autocommit_block():
                try:
                    op.execute('UPDATE line SET total=price * quantity WHERE line.total IS NULL')
                    op.execute('ALTER TABLE line VALIDATE CONSTRAINT ck_line_total_not_null')
                except Exception:  # a row left NULL: the check would refuse writes to it
                    op.drop_constraint('ck_line_total_not_null', 'line', type_='check')
                    raise


            op.alter_column('line', 'total',
                       existing_type=sa.Integer(),
                       nullable=False)
            op.drop_constraint('ck_line_total_not_null', 'line', type_='check')
        """,
        fixed_downgrade=r"""
            # revision rev_post
            op.alter_column('line', 'total',
                       existing_type=sa.Integer(),
                       nullable=True)

            # revision rev
            op.drop_column('line', 'total')
        """,
    ),
    Example(
        title="a required column with no known backfill",
        before="""
            metadata = sa.MetaData()
            account = sa.Table("account", metadata, sa.Column("id", sa.Integer, primary_key=True))
        """,
        after="""
            metadata = sa.MetaData()
            account = sa.Table(
                "account", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("region", sa.String(10), nullable=False),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('account', sa.Column('region', sa.String(length=10), nullable=False))
        """,
        fixed_upgrade=r"""
            op.add_column('account', sa.Column('region', sa.String(length=10), nullable=True))
            # TODO(migrafix): fill account.region before it becomes NOT NULL, e.g.
            # op.execute('UPDATE account SET region=<value> WHERE account.region IS NULL')
            # To have migrafix write it, put info={'backfill': ...} on account.region,
            # or rerun autogenerate with
            #     -x backfill=account.region=<SQL>
            op.alter_column('account', 'region',
                       existing_type=sa.String(length=10),
                       nullable=False)
        """,
        fixed_downgrade=r"""
            op.drop_column('account', 'region')
        """,
    ),
)
