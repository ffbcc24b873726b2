"""concurrent-index: CONCURRENTLY index builds and drops run outside the transaction."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from alembic.operations import ops

from migrafix.blocks import concurrent_builds, concurrent_drops
from migrafix.ops import AutocommitBlockOp, CommentOp
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

IndexOp = ops.CreateIndexOp | ops.DropIndexOp


class ConcurrentIndex(Rule):
    name = "concurrent-index"
    summary = ("An index built or dropped on a table with rows stops writes; CONCURRENTLY "
               "fails inside the migration's transaction.")
    why = (
        "On PostgreSQL, `CREATE INDEX` holds a SHARE lock on its table until the migration "
        "commits: every write waits for the whole build (measured with a busy client: 0.9 s "
        "at 1M rows, 4.9 s at 4M; 47 ms and 160 ms with `CREATE INDEX CONCURRENTLY`, the "
        "client's commits waiting on the disk, not a lock: tests/benchmark_results.md). `DROP "
        "INDEX` takes ACCESS EXCLUSIVE: reads and writes queue behind it while it waits for "
        "the queries already running. So an index created or dropped on a table that exists "
        "before and after the revision is written `postgresql_concurrently=True`, as when the "
        "model says so.\n\n"
        "PostgreSQL refuses `CREATE INDEX CONCURRENTLY` (and `DROP INDEX CONCURRENTLY`) inside "
        "a transaction block, and Alembic runs each migration in one. migrafix moves these "
        "ops into `with op.get_context().autocommit_block():`, creates after the table's other "
        "ops (their columns must exist) and drops before them (dropping a column drops its "
        "index, and the DROP INDEX would then fail). `autocommit_block()` commits what ran "
        "before it: if the build then fails, that DDL stays while `alembic_version` is not "
        "bumped, and the next `upgrade head` dies re-running it. So when a revision has other "
        "ops, the hook writes the concurrent drops and creates as revisions of their own, "
        "before and after it (`migrafix rewrite` writes them as files beside a revision that "
        "has not run): a failed build leaves the database at a clean revision. A block of "
        "several builds is rerun past the indexes already built (`if_not_exists=True`); it "
        "first stops while one of its indexes is INVALID, naming it (a failed build's "
        "leftover, which IF NOT EXISTS would skip); several drops are `if_exists=True`.\n\n"
        "Where the revision cannot be split (`split_concurrent_revisions = false`; a file the "
        "codemod cannot split, its note says why), an index op the model did not mark "
        "concurrent is left as written, with a `[note]`, unless index ops are all the "
        "revision does, upgrade and downgrade (nothing would be split off it then): an "
        "autocommit block among other statements commits "
        "them on its own, and a failure after it leaves them applied while `alembic_version` "
        "is not updated; a plain build stops writes while it runs, but fails whole. A "
        "revision that has run (`--naming database`) is history: its plain index ops are "
        "reported as notes, never rewritten (an explicit `postgresql_concurrently=True` is "
        "still moved: as written it cannot run). Indexes of tables the revision creates or "
        "drops stay as written (the table is empty, or going).\n\n"
        "MySQL and MariaDB: InnoDB builds and drops secondary indexes online by default "
        "(`ALGORITHM=INPLACE, LOCK=NONE`: reads and writes go on), so their index ops are "
        "left as written. SQLite: unchanged."
    )
    fix_safety = (
        "Some projects already run migrations on an AUTOCOMMIT connection or open their own "
        "transaction in env.py: silence this rule there (`ignore = [\"concurrent-index\"]`; "
        "the hook turns it off by itself where env.py opens the transaction). "
        "A concurrent build reads the table twice and takes longer; if it fails (a unique "
        "index over duplicate rows, a cancelled build) it leaves an INVALID index, to drop "
        "before upgrading again. An explicit `postgresql_concurrently=True` is moved whatever "
        "database autogenerate compared against; `autocommit_block()` is harmless on other "
        "databases."
    )
    options = (
        "`concurrent_indexes = \"always\"` (the default) makes every index created or "
        "dropped on a table that exists before and after the revision concurrent; "
        "`concurrent_indexes = \"explicit\"` only those marked "
        "`postgresql_concurrently=True`. `split_concurrent_revisions = false` keeps "
        "everything in one revision. Silence with `# migrafix: ignore[concurrent-index]` on "
        "the statement."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        # An explicit postgresql_concurrently=True is honoured whatever database autogenerate
        # compared against (a project may autogenerate on SQLite and deploy on PostgreSQL);
        # autocommit_block() is harmless elsewhere. "always" adds the flag: PostgreSQL only.
        always = (context.settings.concurrent_indexes == "always"
                  and context.dialect_name == "postgresql")
        found = {tree.direction: [op for _, op in tree.walk() if isinstance(op, IndexOp)]
                 for tree in revision.trees()}
        plain = {direction: [op for op in index_ops
                             if always and not op.kw.get("postgresql_concurrently")
                             and (op.schema, op.table_name) not in revision.transient_tables]
                 for direction, index_ops in found.items()}
        movable = {id(op) for index_ops in found.values() for op in index_ops
                   if op.kw.get("postgresql_concurrently")}
        movable |= {id(op) for index_ops in plain.values() for op in index_ops}
        flag = any(plain.values()) and self._may_make_concurrent(revision, movable, context)
        for tree in revision.trees():
            if not flag:
                for op in plain[tree.direction]:
                    context.report(self._left_as_written(op, tree, context))
            self._move(tree, found[tree.direction], plain[tree.direction] if flag else [],
                       context)

    def _move(
        self, tree: Tree, found: list[IndexOp], plain: list[IndexOp], context: RuleContext
    ) -> None:
        """Moves ``found``'s concurrent ops, and ``plain`` with the flag added, into
        autocommit blocks: drops first, creates last."""
        flagged = {id(op) for op in plain}  # the flag is added to these
        creates: list[ops.CreateIndexOp] = []
        drops: list[ops.DropIndexOp] = []
        moved: dict[int, list[ops.MigrateOperation]] = {}  # out of where they were
        for op in found:
            if not (op.kw.get("postgresql_concurrently") or id(op) in flagged):
                continue
            concurrent = op
            if id(op) in flagged:
                concurrent = derived(op, copy.copy(op))
                concurrent.kw = {**op.kw, "postgresql_concurrently": True}
            moved[id(op)] = []
            if isinstance(concurrent, ops.CreateIndexOp):
                creates.append(concurrent)
            else:
                drops.append(concurrent)
            context.report(Finding(self.name, tree.direction, table_label(concurrent),
                f"{_verb(op)} {concurrent.index_name or '(unnamed)'} CONCURRENTLY moved into "
                "an autocommit block", fixed=True, op=concurrent))
        tree.replace_all(moved)
        tree.top[:] = [op for op in tree.top
                       if not (isinstance(op, ops.ModifyTableOps) and not op.ops)]
        shared = SHARED_COMMENT if tree.top and not context.separate_revisions else ()
        drop_block: Sequence[ops.MigrateOperation] = drops
        build_block: Sequence[ops.MigrateOperation] = creates
        if context.dialect_name == "postgresql":  # IF (NOT) EXISTS: the rerun finishes
            drop_block = concurrent_drops(drops)
            build_block = concurrent_builds(creates, context.dialect)
        if drop_block:
            tree.top.insert(0, in_part(AutocommitBlockOp(
                drop_block, DROP_COMMENT, purpose="drop indexes concurrently"),
                tree.part_before_main()))
        if build_block:
            tree.top.append(in_part(AutocommitBlockOp(
                build_block, BUILD_COMMENT + shared, purpose="create indexes concurrently"),
                tree.part_after_main()))

    @staticmethod
    def _may_make_concurrent(revision: Revision, movable: set[int], context: RuleContext) -> bool:
        """Whether index ops without the flag may be made concurrent (``movable``: the ids of
        the index ops that would be moved): never in a revision that has run (it is history);
        where the revision cannot be split, only when index ops are all it does, so that their
        autocommit blocks commit nothing else (a plain build stops writes, but fails whole and
        leaves alembic_version right). Such a revision is not split either: its form is the
        same both ways, and a later run that can split finds nothing left to split off."""
        if context.released:
            return False
        if context.separate_revisions:
            return True
        return all(id(op) in movable or isinstance(op, CommentOp)
                   for tree in revision.trees() for _, op in tree.walk())

    def _left_as_written(self, op: IndexOp, tree: Tree, context: RuleContext) -> Finding:
        table = table_label(op)
        what = f"{_verb(op)} {op.index_name or '(unnamed)'}"
        if isinstance(op, ops.CreateIndexOp):
            what += f" builds the index under a SHARE lock that stops writes to {table}"
        else:
            what += f" takes an ACCESS EXCLUSIVE lock on {table}, which stops reads and writes"
        if context.released:
            return Finding(self.name, tree.direction, table,
                f"{what}; the revision has run, so it stays as written",
                fixed=False, note=True, op=op)
        return Finding(self.name, tree.direction, table,
            f"{what}; left as written, since in one revision its autocommit block would "
            "commit the other statements on its own", fixed=False, note=True, op=op,
            hint=("migrafix's autogenerate hook makes it concurrent in a revision of its own; "
                  "split it so by hand on a large table"))


def _verb(op: ops.MigrateOperation) -> str:
    return "create_index" if isinstance(op, ops.CreateIndexOp) else "drop_index"


ConcurrentIndex.examples = (
    Example(
        title="an index on a table that has rows",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            event = sa.Table(
                "event", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("kind", sa.String(20)),
            )
        """,
        after="""
            metadata = sa.MetaData()
            event = sa.Table(
                "event", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("kind", sa.String(20)),
                sa.Index("ix_event_kind", "kind"),
            )
        """,
        autogenerated_upgrade=r"""
            op.create_index('ix_event_kind', 'event', ['kind'], unique=False)
        """,
        fixed_upgrade=r"""
            # migrafix: CONCURRENTLY runs outside a transaction. If a build fails, drop the INVALID
            # index it leaves, fix the cause, and upgrade again.
            with op.get_context().autocommit_block():
                op.create_index('ix_event_kind', 'event', ['kind'], unique=False, postgresql_concurrently=True)
        """,
        fixed_downgrade=r"""
            # migrafix: CONCURRENTLY runs outside a transaction.
            with op.get_context().autocommit_block():
                op.drop_index('ix_event_kind', table_name='event', postgresql_concurrently=True)
        """,
    ),
    Example(
        title="two indexes: a rerun after a failed build goes past the one built",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            event = sa.Table(
                "event", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("kind", sa.String(20)),
                sa.Column("source", sa.String(20)),
            )
        """,
        after="""
            metadata = sa.MetaData()
            event = sa.Table(
                "event", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("kind", sa.String(20)),
                sa.Column("source", sa.String(20)),
                sa.Index("ix_event_kind", "kind"),
                sa.Index("ix_event_source", "source"),
            )
        """,
        autogenerated_upgrade=r"""
            op.create_index('ix_event_kind', 'event', ['kind'], unique=False)
            op.create_index('ix_event_source', 'event', ['source'], unique=False)
        """,
        fixed_upgrade=r'''
            # migrafix: CONCURRENTLY runs outside a transaction. If a build fails, drop the INVALID
            # index it leaves, fix the cause, and upgrade again.
            with op.get_context().autocommit_block():
                if op.get_context().dialect.name == "postgresql":
                    op.execute("""DO $$ DECLARE invalid text; BEGIN
                        SELECT string_agg(indexrelid::regclass::text, ', ') INTO invalid FROM pg_index
                            WHERE NOT indisvalid AND indexrelid IN (to_regclass('ix_event_kind'), to_regclass('ix_event_source'));
                        IF invalid IS NOT NULL THEN
                            RAISE EXCEPTION 'index % is INVALID, left by a failed build: drop it (DROP INDEX CONCURRENTLY), fix the cause, and run alembic upgrade head again', invalid;
                        END IF;
                    END $$""")
                op.create_index('ix_event_kind', 'event', ['kind'], unique=False, postgresql_concurrently=True, if_not_exists=True)
                op.create_index('ix_event_source', 'event', ['source'], unique=False, postgresql_concurrently=True, if_not_exists=True)
        ''',
        fixed_downgrade=r"""
            # migrafix: CONCURRENTLY runs outside a transaction.
            with op.get_context().autocommit_block():
                op.drop_index('ix_event_source', table_name='event', postgresql_concurrently=True, if_exists=True)
                op.drop_index('ix_event_kind', table_name='event', postgresql_concurrently=True, if_exists=True)
        """,
    ),
    Example(
        title="an index the model marks concurrent, on a new column",
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
