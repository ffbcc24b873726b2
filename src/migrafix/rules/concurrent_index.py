"""concurrent-index: CONCURRENTLY index builds and drops run outside the transaction."""

from __future__ import annotations

import copy

from alembic.operations import ops

from migrafix.ops import AutocommitBlockOp
from migrafix.revision import Revision, Tree, derived, in_part
from migrafix.rules.base import Example, Finding, Rule, RuleContext, table_label

__all__ = ["BUILD_COMMENT", "DROP_COMMENT", "ConcurrentIndex"]

# What a reviewer needs above the block, in the fewest words: why it is there, and what to do
# when a build fails (the rule's page has the rest).
BUILD_COMMENT = (
    "migrafix: CONCURRENTLY runs outside a transaction. If a build fails, drop the INVALID "
    "index it leaves, fix the cause, and upgrade again.",
)
DROP_COMMENT = ("migrafix: CONCURRENTLY runs outside a transaction.",)
# Where the block shares its revision with other ops (no split: the setting, a revision that
# already ran, a file the codemod cannot split).
SHARED_COMMENT = (
    "autocommit_block() commits what ran before it: should the block fail, that stays applied "
    "while alembic_version is not updated.",
)


class ConcurrentIndex(Rule):
    name = "concurrent-index"
    summary = "An index is built or dropped CONCURRENTLY inside the migration's transaction."
    why = (
        "PostgreSQL refuses `CREATE INDEX CONCURRENTLY` (and `DROP INDEX CONCURRENTLY`) inside "
        "a transaction block, and Alembic runs each migration in one. migrafix moves these "
        "ops into `with op.get_context().autocommit_block():`, creates after the table's other "
        "ops (their columns must exist) and drops before them (dropping a column drops its "
        "index, and the DROP INDEX would then fail). `autocommit_block()` commits what ran "
        "before it: if the build then fails, that DDL stays while `alembic_version` is not "
        "bumped, and the next `upgrade head` dies re-running it. So when a revision has other "
        "ops, the hook writes the concurrent drops and creates as revisions of their own, "
        "before and after it (`migrafix rewrite` writes them as files beside a revision that "
        "has not run): a failed build leaves the database at a clean revision."
    )
    fix_safety = (
        "Some projects already run migrations on an AUTOCOMMIT connection or open their own "
        "transaction in env.py: silence this rule there (`ignore = [\"concurrent-index\"]`). "
        "An explicit `postgresql_concurrently=True` is moved whatever database autogenerate "
        "compared against; `autocommit_block()` is harmless on other databases."
    )
    options = (
        "`concurrent_indexes = \"always\"` makes every index created or dropped on a table "
        "that exists before and after the revision concurrent. "
        "`split_concurrent_revisions = false` keeps everything in one revision."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        for tree in revision.trees():
            self._move(tree, revision, context)

    def _move(self, tree: Tree, revision: Revision, context: RuleContext) -> None:
        # An explicit postgresql_concurrently=True is honoured whatever database autogenerate
        # compared against (a project may autogenerate on SQLite and deploy on PostgreSQL);
        # autocommit_block() is harmless elsewhere. "always" adds the flag: PostgreSQL only.
        always = (context.settings.concurrent_indexes == "always"
                  and context.dialect_name == "postgresql")
        creates: list[ops.MigrateOperation] = []
        drops: list[ops.MigrateOperation] = []
        moved: dict[int, list[ops.MigrateOperation]] = {}  # out of where they were
        for _, op in tree.walk():
            if not isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)):
                continue
            concurrent = op
            if not op.kw.get("postgresql_concurrently"):
                if not always or (op.schema, op.table_name) in revision.transient_tables:
                    continue
                concurrent = derived(op, copy.copy(op))
                concurrent.kw = {**op.kw, "postgresql_concurrently": True}
            moved[id(op)] = []
            (creates if isinstance(concurrent, ops.CreateIndexOp) else drops).append(concurrent)
            verb = "create_index" if isinstance(concurrent, ops.CreateIndexOp) else "drop_index"
            context.report(Finding(self.name, tree.direction, table_label(concurrent),
                f"{verb} {concurrent.index_name} CONCURRENTLY moved into an autocommit block",
                fixed=True, op=concurrent))
        tree.replace_all(moved)
        tree.top[:] = [op for op in tree.top
                       if not (isinstance(op, ops.ModifyTableOps) and not op.ops)]
        shared = SHARED_COMMENT if tree.top and not context.separate_revisions else ()
        if drops:
            tree.top.insert(0, in_part(AutocommitBlockOp(
                drops, DROP_COMMENT, purpose="drop indexes concurrently"),
                tree.part_before_main()))
        if creates:
            tree.top.append(in_part(AutocommitBlockOp(
                creates, BUILD_COMMENT + shared, purpose="create indexes concurrently"),
                tree.part_after_main()))


ConcurrentIndex.examples = (
    Example(
        title="a concurrent index on a new column",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            event = sa.Table("event", metadata, sa.Column("id", sa.Integer, primary_key=True))
        """,
        after="""
            metadata = sa.MetaData()
            event = sa.Table(
                "event", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("kind", sa.String(20)),
                sa.Index("ix_event_kind", "kind", postgresql_concurrently=True),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('event', sa.Column('kind', sa.String(length=20), nullable=True))
            op.create_index('ix_event_kind', 'event', ['kind'], unique=False, postgresql_concurrently=True)
        """,
        fixed_upgrade=r"""
            # revision rev
            op.add_column('event', sa.Column('kind', sa.String(length=20), nullable=True))

            # revision rev_post
            # migrafix: CONCURRENTLY runs outside a transaction. If a build fails, drop the INVALID
            # index it leaves, fix the cause, and upgrade again.
            with op.get_context().autocommit_block():
                op.create_index('ix_event_kind', 'event', ['kind'], unique=False, postgresql_concurrently=True)
        """,
        fixed_downgrade=r"""
            # revision rev_post
            # migrafix: CONCURRENTLY runs outside a transaction.
            with op.get_context().autocommit_block():
                op.drop_index('ix_event_kind', table_name='event', postgresql_concurrently=True)

            # revision rev
            op.drop_column('event', 'kind')
        """,
    ),
)
