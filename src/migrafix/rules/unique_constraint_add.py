"""unique-constraint-add: a unique constraint added to a table that has rows is built as a
unique index CONCURRENTLY, then attached with ADD CONSTRAINT ... USING INDEX (PostgreSQL)."""

from __future__ import annotations

from alembic.operations import ops

from migrafix.blocks import UNIQUE_USING_INDEX_OPTIONS, unique_using_index
from migrafix.ops import AutocommitBlockOp, CommentOp
from migrafix.revision import Revision, Tree
from migrafix.rules.base import Example, Finding, Rule, RuleContext, table_label

__all__ = ["UniqueConstraintAdd"]

# Above the block, in the fewest words: what it does, and what to do when the build fails.
BUILD_COMMENT = (
    "migrafix: the unique index is built CONCURRENTLY outside a transaction, then made the "
    "constraint. If the build fails (duplicates), drop the INVALID index, fix the rows, and "
    "upgrade again.",
)


class UniqueConstraintAdd(Rule):
    name = "unique-constraint-add"
    summary = ("A unique constraint added to a table with rows builds its index under a lock "
               "that stops reads and writes.")
    why = (
        "On PostgreSQL, `ADD CONSTRAINT ... UNIQUE` (`op.create_unique_constraint`) builds "
        "the constraint's index while it holds ACCESS EXCLUSIVE on the table, and Alembic "
        "keeps the lock until the migration commits: every read and write of the table waits "
        "for the whole build (measured with a busy client: 1.7 s at 1M rows, 8.2 s at 4M, "
        "growing "
        "with the table). migrafix writes it as the field recommends: `op.create_index(name, "
        "table, columns, unique=True, postgresql_concurrently=True)` (`CREATE UNIQUE INDEX "
        "CONCURRENTLY`: SHARE UPDATE EXCLUSIVE, reads and writes go on), then `ALTER TABLE "
        "... ADD CONSTRAINT name UNIQUE USING INDEX name`, which only attaches the built "
        "index (60 ms and 114-181 ms of stall in all, tests/benchmark_results.md). The "
        "constraint ends as written: its name, "
        "columns, `deferrable`, `initially`, `postgresql_include` and "
        "`postgresql_nulls_not_distinct`.\n\n"
        "CONCURRENTLY refuses a transaction block, so the build runs in an autocommit block "
        "(`IF NOT EXISTS`: a rerun after a failed ALTER goes straight to it), and the ALTER "
        "after it, in a transaction of its own whose lock lock-timeout takes first. The hook "
        "writes both in a revision of its own, `<rev>_post`, which runs after "
        "the rest of the revision (its columns exist by then); its downgrade drops the "
        "constraint (`drop_constraint(name, table, type_='unique')`, which drops the index "
        "with it) before `<rev>`'s downgrade runs. `migrafix rewrite` does the same for a "
        "revision that has not run, in a `<rev>_post` file beside it. Should the build fail "
        "(rows that are not unique), the database stays at `<rev>` with an INVALID index of "
        "that name: drop it (`DROP INDEX CONCURRENTLY name`), fix the rows, `alembic upgrade "
        "head`.\n\n"
        "It is left as written, with a `[note]` (`migrafix check` does not fail on it):\n"
        "- in a revision that has run (`--naming database`): it is history;\n"
        "- where the revision cannot be split (`split_concurrent_revisions = false`; a file "
        "the codemod cannot split, its note says why), unless adding them (and dropping them "
        "in the downgrade) is all the revision does. An autocommit block among other "
        "statements commits "
        "them on its own, and a failure after it leaves them applied while `alembic_version` "
        "is not updated; the constraint as written stops reads and writes while it builds, "
        "but fails whole;\n"
        "- in a batch block (`render_as_batch`: the revision may run on SQLite too, which "
        "has no `USING INDEX`);\n"
        "- without a name (the index becomes the constraint by it), or with options the form "
        "does not carry.\n\n"
        "Tables the revision creates or drops are left alone (nothing to build over).\n\n"
        "MySQL and MariaDB: InnoDB adds a unique index online already (`ALGORITHM=INPLACE, "
        "LOCK=NONE`: reads and writes go on), so the constraint is left as written. SQLite "
        "adds a constraint only by copying the table (batch mode): unchanged."
    )
    fix_safety = (
        "Safe: the constraint ends as written, under its name. Until the second statement "
        "runs, uniqueness is enforced by the index alone (the same check); a failed build "
        "leaves an INVALID index, which writes keep up to date (and may already check) until "
        "it is dropped. "
        "Projects that run migrations on an AUTOCOMMIT connection, or in a transaction "
        "env.py opens, should silence it (and concurrent-index). A revision that already ran "
        "is history: reported as a note, never rewritten."
    )
    options = (
        "`split_concurrent_revisions = false` keeps every revision whole: the constraint is "
        "then left as written, unless it is all the revision does. Silence with "
        "`ignore = [\"unique-constraint-add\"]` or `# migrafix: ignore[unique-constraint-add]` "
        "on the statement."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        if context.dialect_name != "postgresql":
            return
        adds = {tree.direction: [
            op for _, op in tree.walk() if isinstance(op, ops.CreateUniqueConstraintOp)
            and (op.schema, op.table_name) not in revision.transient_tables]
            for tree in revision.trees()}
        # A batch block (render_as_batch) says the revision may run on SQLite too, which has
        # no ADD CONSTRAINT ... USING INDEX.
        batched = {id(op) for tree in revision.trees() for group in tree.table_groups()
                   if context.in_batch(group) for op in group.ops}
        formable = {id(op) for each in adds.values() for op in each
                    if op.constraint_name is not None and id(op) not in batched
                    and set(op.kw) <= UNIQUE_USING_INDEX_OPTIONS}
        # Kept whole, the revision may still be these constraints alone (and their drops):
        # then the form commits nothing else, and a split would make no other revision.
        moving = formable | {id(drop) for tree in revision.trees()
                             for op in adds[tree.direction] if id(op) in formable
                             for drop in _drops_of(op, revision.other(tree))}
        alone = all(id(op) in moving or isinstance(op, CommentOp)
                    for tree in revision.trees() for _, op in tree.walk())
        for tree in revision.trees():
            self._apply(revision, tree, adds[tree.direction], batched, formable, alone,
                        context)

    def _apply(
        self, revision: Revision, tree: Tree, adds: list[ops.CreateUniqueConstraintOp],
        batched: set[int], formable: set[int], alone: bool, context: RuleContext,
    ) -> None:
        if not adds:
            return
        other = revision.other(tree)
        replaced: dict[int, list[ops.MigrateOperation]] = {}
        builds: list[ops.MigrateOperation] = []
        attaches: list[ops.MigrateOperation] = []
        undo: list[ops.MigrateOperation] = []
        for op in adds:
            table = table_label(op)
            what = (f"create_unique_constraint {op.constraint_name or '(unnamed)'} builds its "
                    f"index under an ACCESS EXCLUSIVE lock that stops reads and writes to "
                    f"{table}")
            if context.released:
                context.report(Finding(self.name, tree.direction, table,
                    f"{what}; the revision has run, so it stays as written",
                    fixed=False, note=True, op=op))
            elif op.constraint_name is None:
                context.report(Finding(self.name, tree.direction, table,
                    f"{what}; left as written, since without a name no index built before "
                    "can become it", fixed=False, note=True, op=op,
                    hint="name it to have its index built concurrently first"))
            elif id(op) in batched:
                context.report(Finding(self.name, tree.direction, table,
                    f"{what}; left as written, since a batch block may run on SQLite too, "
                    "which has no ADD CONSTRAINT ... USING INDEX", fixed=False, note=True,
                    op=op))
            elif id(op) not in formable:
                options = ", ".join(sorted(set(op.kw) - UNIQUE_USING_INDEX_OPTIONS))
                context.report(Finding(self.name, tree.direction, table,
                    f"{what}; left as written, since migrafix does not carry its options "
                    f"({options}) over to an index built before", fixed=False, note=True,
                    op=op))
            elif not context.separate_revisions and not alone:
                context.report(Finding(self.name, tree.direction, table,
                    f"{what}; left as written, since in one revision its autocommit block "
                    "would commit the other statements on its own", fixed=False, note=True,
                    op=op, hint=("migrafix's autogenerate hook builds a unique index "
                                 "CONCURRENTLY and adds the constraint USING it, in a "
                                 "revision of its own; split it so by hand on a large table")))
            else:
                replaced[id(op)] = []
                index, attach = unique_using_index(op, context.dialect)
                builds.append(index)
                attaches.append(attach)
                undo += _drops_of(op, other)
                context.report(Finding(self.name, tree.direction, table,
                    f"create_unique_constraint {op.constraint_name} built as a unique index "
                    "CONCURRENTLY, then added USING it, in a revision of its own: reads and "
                    f"writes to {table} go on", fixed=True, op=op))
        if not builds:
            return
        place = {id(op): index for index, (_, op) in enumerate(other.walk())}
        undo.sort(key=lambda op: place[id(op)])  # as the other direction had them
        tree.replace_all(replaced)
        other.replace_all({id(op): [] for op in undo})
        for each in (tree, other):
            each.top[:] = [op for op in each.top
                           if not (isinstance(op, ops.ModifyTableOps) and not op.ops)]
        # the builds outside a transaction; the ALTERs that attach them, in one after it
        block = AutocommitBlockOp(builds, BUILD_COMMENT, purpose="add unique constraints")
        revision.run_after_main(tree, [block, *attaches], undo)


def _drops_of(add: ops.CreateUniqueConstraintOp, other: Tree) -> list[ops.MigrateOperation]:
    """The drop of ``add``'s constraint in the other direction: it belongs to the revision the
    constraint is added in, whose undo runs first."""
    return [op for _, op in other.walk()
            if isinstance(op, ops.DropConstraintOp)
            and op.constraint_type in ("unique", None)
            and str(op.constraint_name) == str(add.constraint_name)
            and (op.schema, op.table_name) == (add.schema, add.table_name)]


UniqueConstraintAdd.examples = (
    Example(
        title="a new column that must be unique, on a table that has rows",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
            )
        """,
        after="""
            metadata = sa.MetaData()
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("code", sa.String(20), unique=True),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('order', sa.Column('code', sa.String(length=20), nullable=True))
            op.create_unique_constraint(None, 'order', ['code'])
        """,
        fixed_upgrade=r"""
            # revision rev
            op.add_column('order', sa.Column('code', sa.String(length=20), nullable=True))

            # revision rev_post
            # migrafix: the unique index is built CONCURRENTLY outside a transaction, then made the
            # constraint. If the build fails (duplicates), drop the INVALID index, fix the rows, and
            # upgrade again.
            with op.get_context().autocommit_block():
                op.create_index(op.f('uq_order_code'), 'order', ['code'], unique=True, postgresql_concurrently=True, if_not_exists=True)

            op.execute('ALTER TABLE "order" ADD CONSTRAINT uq_order_code UNIQUE USING INDEX uq_order_code')
        """,
        fixed_downgrade=r"""
            # revision rev_post
            op.drop_constraint(op.f('uq_order_code'), 'order', type_='unique')

            # revision rev
            op.drop_column('order', 'code')
        """,
    ),
)
