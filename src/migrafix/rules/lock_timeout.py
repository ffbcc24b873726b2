"""lock-timeout: a revision takes its locks first, each try waiting at most ``lock_timeout``
(PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

from alembic.operations import ops

from migrafix.blocks import TableKey, covers, table_locks, take_locks_first
from migrafix.ops import (
    AutocommitBlockOp,
    BackfillOp,
    CommentOp,
    LockMode,
    TableSQLOp,
    TakeLocksOp,
)
from migrafix.revision import Revision, Tree, in_part, part_of
from migrafix.rules.base import Example, Finding, Rule, RuleContext

__all__ = ["LockTimeout"]


class LockTimeout(Rule):
    name = "lock-timeout"
    summary = "A statement waits for its lock with no time limit, and every query queues behind it."
    why = (
        "An `ALTER TABLE` needs a lock that a long transaction (a report, a stuck worker, an "
        "autovacuum) may hold. While it waits, every query on the table queues behind it, "
        "even those the ALTER itself would not block: a nullable `add_column` behind a 5 s "
        "report stalled a busy client 4.0 s, at 1M rows as at 4M; in the form below, 1.2 s, "
        "and the upgrade went through on its second try (tests/benchmark_results.md). "
        "PostgreSQL's `lock_timeout` bounds the wait. migrafix writes it at the start of "
        "every transaction of a revision that locks a table existing before it, with the "
        "locks that "
        "transaction's statements need, taken before the first of them, strongest first, in "
        "one order (`LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`; SHARE ROW EXCLUSIVE for a "
        "foreign key's tables), in a PL/pgSQL `DO` block: a try that times out is rolled back "
        "to where it began, so nothing it waited for stays locked, and is tried again after a "
        "pause. The statements that follow then wait for nothing; any that needs a lock not "
        "taken first still waits at most `lock_timeout` (`SET LOCAL` lasts the transaction).\n\n"
        "A try is repeated only while the transaction holds no other lock that stops writes. "
        "With `transaction_per_migration` off (Alembic's default), every pending revision runs "
        "in one transaction: a revision after one that locked tables would stall queries on "
        "those while it waited again, so it tries once. When the tries run out, the upgrade "
        "stops with one line, `FAILED: could not lock \"order\" within 1200ms, try 4 of 4: once "
        "what holds it ends, run alembic upgrade head again`, the "
        "transaction is rolled back and the database is at the revision before (with "
        "`transaction_per_migration`, the revision before this one; else where the upgrade "
        "began); once the blocker ends, `alembic upgrade head` again.\n\n"
        "Autocommit blocks (`<rev>_post`'s concurrent builds, batched backfills and VALIDATE) "
        "take no lock that stops the application: each statement there that would (the "
        "`SET NOT NULL` after a batched backfill, `ADD CONSTRAINT ... USING INDEX`) is written "
        "in a transaction of its own between the blocks, which gets its locks first the same "
        "way. The block runs only on PostgreSQL (`if op.get_context().dialect.name == "
        "\"postgresql\"`), so a history that also runs on SQLite in tests keeps working.\n\n"
        "MySQL and MariaDB: their DDL commits each statement, and waits for its metadata lock "
        "up to `lock_wait_timeout` (by default a year on MySQL, a day on MariaDB), queries "
        "queuing behind it as on "
        "PostgreSQL; migrafix writes nothing there: `SET SESSION lock_wait_timeout = 2` in "
        "env.py bounds the wait (MariaDB 10.3+ also takes `ALTER TABLE ... WAIT n`). SQLite "
        "locks the whole database file: unchanged."
    )
    fix_safety = (
        "Safe: the revision does what it did, or stops before it changes anything. Locking "
        "first holds each table's lock from the start of the transaction instead of from its "
        "first statement: a few statements longer. A try that fails leaves nothing behind; "
        "tries that run out fail the upgrade, which a slow deploy may rather have waited for "
        "(raise `lock_timeout` or `lock_retries` then). A revision that already ran "
        "(`--naming database`) is left as it is: what it did is history. A project that runs "
        "its migrations on an AUTOCOMMIT connection gets nothing from it (each statement is a "
        "transaction of its own: the locks taken first are let go at once): ignore the rule "
        "there and `SET lock_timeout` on the connection in env.py."
    )
    options = (
        "`lock_timeout = \"1200ms\"` (a PostgreSQL duration: `ms`, `s`, `min`): how long the "
        "application may stall behind a waiting statement. The default sits between "
        "PostgreSQL's `deadlock_timeout` (1 s), after which it cancels an autovacuum that is "
        "in the way (at or below it, every retry meets the same autovacuum), and the 1.5 s "
        "this project holds as the most a busy client may wait; pgroll uses 500 ms, large "
        "public projects 1-5 s. `lock_retries = 3`: tries after the first; "
        "`lock_retry_delay = 5` seconds between tries (strong_migrations waits 10 s, 3 times). "
        "Silence with `ignore = [\"lock-timeout\"]`, or per statement with "
        "`# migrafix: ignore[lock-timeout]` (the locks after it are then taken after it). A "
        "revision that sets `lock_timeout` itself is left alone."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        if context.dialect_name != "postgresql" or context.released:
            return
        for tree in revision.trees():
            self._apply(revision, tree, context)

    def _apply(self, revision: Revision, tree: Tree, context: RuleContext) -> None:
        settings = context.settings
        inserts: dict[int, list[ops.MigrateOperation]] = {}
        for transaction in _transactions(tree.top):
            if any(_sets_lock_timeout(op) for op in transaction):
                continue  # the revision's own choice
            held: dict[TableKey, LockMode] = {}  # by the runs before, in this transaction
            for run in _runs(transaction):
                locks = [(key, mode, item) for key, mode, item in _locks(run, revision)
                         if key not in held or not covers(held[key], mode)]
                if not locks:
                    continue
                take = take_locks_first([(key, mode) for key, mode, _ in locks],
                                        settings.lock_timeout, settings.lock_retries,
                                        settings.lock_retry_delay, context.dialect)
                for key, mode, _ in locks:
                    if key not in held or covers(mode, held[key]):
                        held[key] = mode
                first = locks[0][2]
                part = part_of(first)
                inserts[id(first)] = [in_part(take, part) if part else take, first]
                context.report(Finding(self.name, tree.direction, ", ".join(take.tables),
                    f"{', '.join(take.tables)} locked first, each try waiting at most "
                    f"{settings.lock_timeout} ({settings.lock_retries + 1} tries): queries "
                    "queue behind a waiting statement for no longer", fixed=True,
                    op=_first_locking(first, revision)))
        tree.top[:] = [new for op in tree.top for new in inserts.get(id(op), (op,))]


def _locks(
    run: list[ops.MigrateOperation], revision: Revision
) -> list[tuple[TableKey, LockMode, ops.MigrateOperation]]:
    """The locks ``run``'s statements take on tables that exist before it, in order, with the
    top level op taking each; a table by the name it has when the run begins (one renamed in
    the run is locked by its old name)."""
    original: dict[TableKey, TableKey] = {}
    locks = []
    for item in run:
        for leaf in _leaves(item):
            for key, mode in table_locks(leaf):
                key = original.get(key, key)
                if key not in revision.transient_tables:
                    locks.append((key, mode, item))
            if isinstance(leaf, ops.RenameTableOp):
                old = (leaf.schema, leaf.table_name)
                original[(leaf.schema, leaf.new_table_name)] = original.get(old, old)
    return locks


def _transactions(top: list[ops.MigrateOperation]) -> Iterator[list[ops.MigrateOperation]]:
    """``top`` as the transactions it runs in: an autocommit block commits what ran before it,
    and a part split off is a revision (and a transaction) of its own."""
    current: list[ops.MigrateOperation] = []
    for op in top:
        if isinstance(op, AutocommitBlockOp) or (current and part_of(op) != part_of(current[0])):
            if current:
                yield current
            current = []
        if not isinstance(op, AutocommitBlockOp):
            current.append(op)
    if current:
        yield current


def _runs(transaction: list[ops.MigrateOperation]) -> Iterator[list[ops.MigrateOperation]]:
    """``transaction`` cut at each statement migrafix cannot read: SQL text, code of the
    file's own. What it does is not known (it may create the table a later statement alters),
    so the locks of the statements after it are taken after it."""
    current: list[ops.MigrateOperation] = []
    for op in transaction:
        if _unknown(op):
            if current:
                yield current
            current = []
        else:
            current.append(op)
    if current:
        yield current


def _leaves(op: ops.MigrateOperation) -> list[ops.MigrateOperation]:
    return list(op.ops) if isinstance(op, ops.ModifyTableOps) else [op]


# What migrafix can tell the locks of (or that takes none that stops anyone): anything else (SQL
# text, code of the file's own) may do anything.
_KNOWN = (
    ops.AddColumnOp, ops.DropColumnOp, ops.AlterColumnOp, ops.AddConstraintOp,
    ops.DropConstraintOp, ops.CreateIndexOp, ops.DropIndexOp, ops.CreateTableOp,
    ops.DropTableOp, ops.RenameTableOp, ops.CreateTableCommentOp, ops.DropTableCommentOp,
    BackfillOp, TableSQLOp, CommentOp,
)


def _unknown(op: ops.MigrateOperation) -> bool:
    return not all(isinstance(leaf, _KNOWN) for leaf in _leaves(op))


def _first_locking(op: ops.MigrateOperation, revision: Revision) -> ops.MigrateOperation:
    """The statement in ``op`` (a table group, or itself) that takes the first lock: where the
    codemod reports the finding."""
    return next((leaf for leaf in _leaves(op)
                 if any(key not in revision.transient_tables for key, _ in table_locks(leaf))),
                op)


def _sets_lock_timeout(op: ops.MigrateOperation) -> bool:
    """``op`` (or a statement in it) sets ``lock_timeout``: written by hand, or by an earlier
    run of migrafix (the codemod reads that back as a statement it leaves alone)."""
    if isinstance(op, TakeLocksOp):
        return True
    if isinstance(op, CommentOp):
        return False
    return any(
        (isinstance(leaf, ops.ExecuteSQLOp) and isinstance(leaf.sqltext, str)
         and "lock_timeout" in leaf.sqltext)
        or bool(getattr(leaf, "sets_lock_timeout", False))
        for leaf in _leaves(op)
    )


LockTimeout.examples = (
    Example(
        title="a column added to a table that has rows",
        dialect="postgresql",
        before="""
            metadata = sa.MetaData()
            order = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True))
        """,
        after="""
            metadata = sa.MetaData()
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("note", sa.String(200)),
            )
        """,
        autogenerated_upgrade=r'''
            op.add_column('order', sa.Column('note', sa.String(length=200), nullable=True))
        ''',
        fixed_upgrade=r'''
            # migrafix: a statement waiting for a lock stalls every query queued behind it, so the
            # locks are taken first: at most 1200ms a try, 4 tries 5 s apart, then the migration
            # stops.
            if op.get_context().dialect.name == "postgresql":
                try:
                    op.execute("""DO $$ BEGIN
                        SET LOCAL lock_timeout = '1200ms';
                        FOR attempt IN 1..4 LOOP
                            BEGIN
                                LOCK TABLE "order" IN ACCESS EXCLUSIVE MODE;
                                RETURN;
                            EXCEPTION WHEN lock_not_available THEN
                                -- no more tries while this transaction holds locks that stop writes
                                IF attempt = 4 OR EXISTS (SELECT FROM pg_locks WHERE pid = pg_backend_pid()
                                        AND locktype = 'relation' AND mode IN ('ShareLock',
                                        'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) THEN
                                    RAISE lock_not_available USING MESSAGE = 'could not lock "order" within 1200ms, try ' || attempt || ' of 4: once what holds it ends, run alembic upgrade head again';
                                END IF;
                                PERFORM pg_sleep(5);
                            END;
                        END LOOP;
                    END $$""")
                except sa.exc.OperationalError as error:  # no lock: one line, not a traceback
                    raise CommandError(str(error.orig).splitlines()[0]) from None

            op.add_column('order', sa.Column('note', sa.String(length=200), nullable=True))
        ''',
        fixed_downgrade=r'''
            # migrafix: a statement waiting for a lock stalls every query queued behind it, so the
            # locks are taken first: at most 1200ms a try, 4 tries 5 s apart, then the migration
            # stops.
            if op.get_context().dialect.name == "postgresql":
                try:
                    op.execute("""DO $$ BEGIN
                        SET LOCAL lock_timeout = '1200ms';
                        FOR attempt IN 1..4 LOOP
                            BEGIN
                                LOCK TABLE "order" IN ACCESS EXCLUSIVE MODE;
                                RETURN;
                            EXCEPTION WHEN lock_not_available THEN
                                -- no more tries while this transaction holds locks that stop writes
                                IF attempt = 4 OR EXISTS (SELECT FROM pg_locks WHERE pid = pg_backend_pid()
                                        AND locktype = 'relation' AND mode IN ('ShareLock',
                                        'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) THEN
                                    RAISE lock_not_available USING MESSAGE = 'could not lock "order" within 1200ms, try ' || attempt || ' of 4: once what holds it ends, run alembic upgrade head again';
                                END IF;
                                PERFORM pg_sleep(5);
                            END;
                        END LOOP;
                    END $$""")
                except sa.exc.OperationalError as error:  # no lock: one line, not a traceback
                    raise CommandError(str(error.orig).splitlines()[0]) from None

            op.drop_column('order', 'note')
        ''',
    ),
    Example(
        title="a foreign key between two tables that have rows",
        dialect="postgresql",
        before="""
            metadata = sa.MetaData()
            customer = sa.Table("customer", metadata, sa.Column("id", sa.Integer, primary_key=True))
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("customer_id", sa.Integer),
            )
        """,
        after="""
            metadata = sa.MetaData()
            customer = sa.Table("customer", metadata, sa.Column("id", sa.Integer, primary_key=True))
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id")),
            )
        """,
        autogenerated_upgrade=r'''
            op.create_foreign_key(None, 'order', 'customer', ['customer_id'], ['id'])
        ''',
        fixed_upgrade=r'''
            # revision rev
            # migrafix: a statement waiting for a lock stalls every query queued behind it, so the
            # locks are taken first: at most 1200ms a try, 4 tries 5 s apart, then the migration
            # stops.
            if op.get_context().dialect.name == "postgresql":
                try:
                    op.execute("""DO $$ BEGIN
                        SET LOCAL lock_timeout = '1200ms';
                        FOR attempt IN 1..4 LOOP
                            BEGIN
                                LOCK TABLE customer, "order" IN SHARE ROW EXCLUSIVE MODE;
                                RETURN;
                            EXCEPTION WHEN lock_not_available THEN
                                -- no more tries while this transaction holds locks that stop writes
                                IF attempt = 4 OR EXISTS (SELECT FROM pg_locks WHERE pid = pg_backend_pid()
                                        AND locktype = 'relation' AND mode IN ('ShareLock',
                                        'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) THEN
                                    RAISE lock_not_available USING MESSAGE = 'could not lock customer, "order" within 1200ms, try ' || attempt || ' of 4: once what holds one of them ends, run alembic upgrade head again';
                                END IF;
                                PERFORM pg_sleep(5);
                            END;
                        END LOOP;
                    END $$""")
                except sa.exc.OperationalError as error:  # no lock: one line, not a traceback
                    raise CommandError(str(error.orig).splitlines()[0]) from None

            op.create_foreign_key(op.f('fk_order_customer_id_customer'), 'order', 'customer', ['customer_id'], ['id'], postgresql_not_valid=True)

            # revision rev_post
            # migrafix: VALIDATE checks existing rows against the constraints added NOT VALID before,
            # while writes go on. If it fails, fix those rows and upgrade again.
            with op.get_context().autocommit_block():
                op.execute('ALTER TABLE "order" VALIDATE CONSTRAINT fk_order_customer_id_customer')
        ''',
        fixed_downgrade=r'''
            # revision rev_post
            pass

            # revision rev
            # migrafix: a statement waiting for a lock stalls every query queued behind it, so the
            # locks are taken first: at most 1200ms a try, 4 tries 5 s apart, then the migration
            # stops.
            if op.get_context().dialect.name == "postgresql":
                try:
                    op.execute("""DO $$ BEGIN
                        SET LOCAL lock_timeout = '1200ms';
                        FOR attempt IN 1..4 LOOP
                            BEGIN
                                LOCK TABLE customer, "order" IN ACCESS EXCLUSIVE MODE;
                                RETURN;
                            EXCEPTION WHEN lock_not_available THEN
                                -- no more tries while this transaction holds locks that stop writes
                                IF attempt = 4 OR EXISTS (SELECT FROM pg_locks WHERE pid = pg_backend_pid()
                                        AND locktype = 'relation' AND mode IN ('ShareLock',
                                        'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) THEN
                                    RAISE lock_not_available USING MESSAGE = 'could not lock customer, "order" within 1200ms, try ' || attempt || ' of 4: once what holds one of them ends, run alembic upgrade head again';
                                END IF;
                                PERFORM pg_sleep(5);
                            END;
                        END LOOP;
                    END $$""")
                except sa.exc.OperationalError as error:  # no lock: one line, not a traceback
                    raise CommandError(str(error.orig).splitlines()[0]) from None

            op.drop_constraint(op.f('fk_order_customer_id_customer'), 'order', type_='foreignkey')
        ''',
    ),
)
