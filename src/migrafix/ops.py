"""Operations migrafix adds to Alembic's operation tree, and how they render.

Importing this module registers the renderers with Alembic (registration is process-wide),
so every module that may put one of these ops in a tree imports it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any, Literal

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import _render_gen_name, render_op
from alembic.operations import ops
from alembic.operations.ops import MigrateOperation

__all__ = [
    "AutocommitBlockOp",
    "BackfillOp",
    "BatchedBackfillOp",
    "CommentOp",
    "LockMode",
    "NotValidCheckOp",
    "RefuseInvalidIndexesOp",
    "TableSQLOp",
    "TakeLocksOp",
    "UndoOnFailureOp",
    "wrap_comment",
]


class CommentOp(ops.MigrateOperation):
    """Comment lines in the rendered revision, for the reviewer.

    ``ops`` is empty so ``alembic check`` (which walks every op with ``.ops``) sees no diff here.
    """

    ops: Sequence[ops.MigrateOperation] = ()

    def __init__(self, lines: Sequence[str], *, advisory: bool = False) -> None:
        self.lines = tuple(lines)
        # Advice about ops left as they are: right in a new revision, noise in old ones, so
        # the codemod reports it instead of writing it.
        self.advisory = advisory

    def reverse(self) -> CommentOp:
        return self

    def __repr__(self) -> str:
        return f"CommentOp({self.lines!r})"


class BackfillOp(ops.ExecuteSQLOp):
    """The UPDATE that fills a new column before it becomes NOT NULL.

    A plain SQL string, compiled for the project's dialect: Alembic cannot render a SQL
    expression object in a revision file.
    """

    def __init__(self, sqltext: str, *, table_name: str, column_name: str, schema: str | None):
        super().__init__(sqltext)
        self.table_name = table_name
        self.column_name = column_name
        self.schema = schema

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("backfill_column", self.schema, self.table_name, self.column_name)


# PostgreSQL's table locks that stop the application: ACCESS EXCLUSIVE stops reads and writes,
# the other two stop writes.
LockMode = Literal["ACCESS EXCLUSIVE", "SHARE ROW EXCLUSIVE", "SHARE"]


class TableSQLOp(ops.ExecuteSQLOp):
    """SQL text of migrafix's own on one table, with the lock it takes there that stops the
    application (None: none, e.g. VACUUM or VALIDATE CONSTRAINT); rendered as ``op.execute``.
    Text alone does not say which table it locks, and the lock-timeout rule must know."""

    def __init__(
        self, sqltext: str, *, table_name: str, schema: str | None, lock: LockMode | None
    ) -> None:
        super().__init__(sqltext)
        self.table_name = table_name
        self.schema = schema
        self.lock = lock


class BatchedBackfillOp(ops.MigrateOperation):
    """Fills a column in batches of its table's integer key, each batch committed on its own:
    a write to the table waits for one batch at most, never for the whole fill. Rerunning
    resumes (filled rows match nothing). Lives in an autocommit block.

    Rendered as a loop on ``op.get_bind()``. Offline (``--sql``) there is no connection to
    read the keys from: the loop is skipped, and the single UPDATE that follows it (for rows
    written during the loop) fills every row.
    """

    ops: Sequence[ops.MigrateOperation] = ()  # no diff for `alembic check`

    def __init__(
        self, *, first_key: str, next_upto: str, update: str, table_name: str, column_name: str
    ) -> None:
        self.first_key = first_key  # SELECT min(key) - 1
        self.next_upto = next_upto  # the batch's last key after :after
        self.update = update  # the UPDATE of keys in (:after, :upto]
        self.table_name = table_name
        self.column_name = column_name

    def reverse(self) -> CommentOp:
        return CommentOp(())  # what is filled stays filled; undoing NOT NULL is another op

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("backfill_column", None, self.table_name, self.column_name)


class NotValidCheckOp(ops.CreateCheckConstraintOp):
    """``op.create_check_constraint(..., postgresql_not_valid=True)``: existing rows are not
    checked (``VALIDATE CONSTRAINT`` does that later, without blocking writes), new ones are.

    Rendered here: Alembic renders a check constraint op only from 1.20 on."""

    def __init__(
        self, constraint_name: str, table_name: str, condition: Any, *, schema: str | None,
        **kw: Any,
    ) -> None:
        super().__init__(constraint_name, table_name, condition, schema=schema,
                         **{**kw, "postgresql_not_valid": True})


class UndoOnFailureOp(ops.MigrateOperation):
    """``try: <ops> except Exception: <undo>; raise``: a step whose failure must not leave
    behind what the steps before it put in place (a NOT VALID check refusing writes)."""

    ops: Sequence[ops.MigrateOperation] = ()  # no diff for `alembic check`

    def __init__(
        self, body: Sequence[MigrateOperation], undo: Sequence[MigrateOperation], why: str
    ) -> None:
        self.body = list(body)
        self.undo = list(undo)
        self.why = why

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("undo_on_failure", tuple(op.to_diff_tuple() for op in self.body))


class TakeLocksOp(ops.MigrateOperation):
    """The locks a transaction's statements need, taken before the first of them, under a
    lock timeout and with retries (``sql``: a PostgreSQL ``DO`` block, blocks.take_locks_first).

    Rendered as plain Alembic code, run only on PostgreSQL; a lock not had is Alembic's
    one-line ``FAILED:`` error (a ``CommandError``), not a traceback.
    """

    ops: Sequence[ops.MigrateOperation] = ()  # no diff for `alembic check`
    # Written by the codemod as rendered, not through black: black 24 splits the call around
    # its SQL where later versions do not, and the same file would come out two ways.
    rendered_as_is = True

    def __init__(self, sql: str, tables: Sequence[str], comment: Sequence[str] = ()) -> None:
        self.sql = sql
        self.tables = tuple(tables)  # (schema.)table of each table it locks, for the reader
        self.comment = tuple(comment)

    def __repr__(self) -> str:
        return f"TakeLocksOp({self.tables!r})"


class RefuseInvalidIndexesOp(ops.MigrateOperation):
    """Stops the upgrade when an index it builds was left INVALID by an earlier failed build
    (``sql``: a PostgreSQL ``DO`` block, blocks.concurrent_builds): the builds are ``IF NOT
    EXISTS``, so that a rerun skips those already built, and would skip that one too.

    Rendered as plain Alembic code, run only on PostgreSQL.
    """

    ops: Sequence[ops.MigrateOperation] = ()  # no diff for `alembic check`
    rendered_as_is = True  # see TakeLocksOp

    def __init__(self, sql: str, indexes: Sequence[str]) -> None:
        self.sql = sql
        self.indexes = tuple(indexes)

    def __repr__(self) -> str:
        return f"RefuseInvalidIndexesOp({self.indexes!r})"


class AutocommitBlockOp(ops.MigrateOperation):
    """``with op.get_context().autocommit_block():`` around work that must not run in the
    migration's transaction: what PostgreSQL refuses there (CONCURRENTLY), or what must commit
    step by step (a batched backfill).

    Deliberately not an ``OpContainer``: Alembic's Rewriter recurses into those forever.
    ``purpose`` says what it does in a split revision's message ("create indexes concurrently").
    """

    def __init__(
        self,
        ops: Sequence[ops.MigrateOperation],
        comment: Sequence[str] = (),
        purpose: str = "",
    ) -> None:
        self.ops = list(ops)
        self.comment = tuple(comment)
        self.purpose = purpose

    def reverse(self) -> AutocommitBlockOp:
        return AutocommitBlockOp([op.reverse() for op in reversed(self.ops)], self.comment,
                                 self.purpose)

    def __repr__(self) -> str:
        return f"AutocommitBlockOp({self.ops!r})"


@renderers.dispatch_for(CommentOp)
def _render_comment(autogen_context: AutogenContext, op: CommentOp) -> list[str]:
    return [f"# {line}" if line else "#" for line in wrap_comment(op.lines)]


@renderers.dispatch_for(ops.RenameTableOp)
def _render_rename_table(autogen_context: AutogenContext, op: ops.RenameTableOp) -> str:
    # Alembic can run a rename_table but has no autogenerate renderer for it.
    schema = f", schema={op.schema!r}" if op.schema else ""
    return f"op.rename_table({op.table_name!r}, {op.new_table_name!r}{schema})"


@renderers.dispatch_for(AutocommitBlockOp)
def _render_autocommit_block(autogen_context: AutogenContext, op: AutocommitBlockOp) -> list[str]:
    lines = [f"# {line}" for line in wrap_comment(op.comment)]
    lines.append("with op.get_context().autocommit_block():")
    for inner in op.ops:
        lines.extend(render_op(autogen_context, inner))
    lines.append("")  # a blank line closes the block in Alembic's printer
    return lines


@renderers.dispatch_for(BatchedBackfillOp)
def _render_batched_backfill(
    autogen_context: AutogenContext, op: BatchedBackfillOp
) -> list[str]:
    sa_ = autogen_context.opts.get("sqlalchemy_module_prefix") or "sa."
    op_ = autogen_context.opts.get("alembic_module_prefix") or "op."
    # Alembic's printer indents after a line ending in ":" and dedents at a blank line.
    return [
        "# offline (--sql) there are no rows to read: the UPDATE after the loop fills them all",
        f"bind = {op_}get_bind()",
        f"after = None if {op_}get_context().as_sql else bind.scalar({sa_}text({op.first_key!r}))",
        "while after is not None:",
        f"upto = bind.scalar({sa_}text({op.next_upto!r}), {{'after': after}})",
        f"bind.execute({sa_}text({op.update!r}), {{'after': after, 'upto': upto}})",
        "after = upto",
        "",
    ]


@renderers.dispatch_for(NotValidCheckOp)
def _render_not_valid_check(autogen_context: AutogenContext, op: NotValidCheckOp) -> str:
    op_ = autogen_context.opts.get("alembic_module_prefix") or "op."
    condition = op.condition if isinstance(op.condition, str) else str(op.condition.compile(
        dialect=autogen_context.dialect, compile_kwargs={"literal_binds": True}))
    schema = f", schema={op.schema!r}" if op.schema else ""
    # postgresql_not_valid last, where a reader looks for it
    options = "".join(f", {key}={value!r}" for key, value in op.kw.items()
                      if key != "postgresql_not_valid")
    name = _render_gen_name(autogen_context, op.constraint_name)  # op.f('...') for a conv
    return (f"{op_}create_check_constraint({name!r}, {op.table_name!r}, "
            f"{condition!r}{schema}{options}, postgresql_not_valid=True)")


@renderers.dispatch_for(TakeLocksOp)
def _render_take_locks(
    autogen_context: AutogenContext, op: TakeLocksOp
) -> list[str | None]:
    sa_ = autogen_context.opts.get("sqlalchemy_module_prefix") or "sa."
    op_ = autogen_context.opts.get("alembic_module_prefix") or "op."
    autogen_context.imports.add("from alembic.util import CommandError")
    # Alembic's printer (Mako's) indents after a line ending in ":"; a blank line, or None
    # (which writes nothing), closes a block.
    return [
        *(f"# {line}" for line in wrap_comment(op.comment)),
        f'if {op_}get_context().dialect.name == "postgresql":',
        "try:",
        *_execute_lines(op_, op.sql),
        f"except {sa_}exc.OperationalError as error:  # no lock: one line, not a traceback",
        "raise CommandError(str(error.orig).splitlines()[0]) from None",
        None,
        "",
    ]


@renderers.dispatch_for(RefuseInvalidIndexesOp)
def _render_refuse_invalid_indexes(
    autogen_context: AutogenContext, op: RefuseInvalidIndexesOp
) -> list[str | None]:
    op_ = autogen_context.opts.get("alembic_module_prefix") or "op."
    return [f'if {op_}get_context().dialect.name == "postgresql":',
            *_execute_lines(op_, op.sql), None]


def _execute_lines(op_: str, sql: str) -> list[str]:
    """``op.execute(...)`` of a multi-line SQL text in a triple-quoted string, as lines for
    Alembic's printer."""
    first, *rest = sql.splitlines()
    return [f'{op_}execute("""{first}', *rest[:-1], f'{rest[-1]}""")']


@renderers.dispatch_for(UndoOnFailureOp)
def _render_undo_on_failure(autogen_context: AutogenContext, op: UndoOnFailureOp) -> list[str]:
    lines = ["try:"]
    for inner in op.body:
        lines.extend(render_op(autogen_context, inner))
    lines.append(f"except Exception:  # {op.why}")
    for inner in op.undo:
        lines.extend(render_op(autogen_context, inner))
    lines += ["raise", ""]
    return lines


def wrap_comment(lines: Sequence[str], width: int = 88) -> list[str]:
    """Comment text folded to a width a reviewer reads without scrolling; code lines (which
    the reader may copy) are never folded."""
    folded: list[str] = []
    for line in lines:
        if line.startswith(("op.", "    ")) or len(line) <= width:
            folded.append(line)
        else:
            folded.extend(textwrap.wrap(line, width, break_long_words=False,
                                        break_on_hyphens=False))
    return folded
