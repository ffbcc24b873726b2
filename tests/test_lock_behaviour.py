"""A NOT NULL column added to a populated, busy PostgreSQL table never holds a lock that stops
the application's writes while the table is scanned, rewritten or filled; proven without a
clock, from what the migration ran (tests/lock_trace.py records it through the real
``alembic upgrade``): which statement ran in which transaction, the locks that transaction
held, and what PostgreSQL said it did (``client_min_messages = debug1``). The same checks
catch migrafix 0.1.0's form, which filled and scanned the table under its lock. So for a
foreign key (scanned while writes go on) and for indexes and unique constraints (built while
writes go on), each against what autogenerate writes alone."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import lock_trace
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from harness import AlembicProject

pytestmark = pytest.mark.postgres

ROWS = 230  # several batches, the last one short
BATCH = 50

V1 = """\
import sqlalchemy as sa

metadata = sa.MetaData()
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
)
"""
CONSTANT = V1.replace(
    "nullable=False),\n)",
    'nullable=False),\n    sa.Column("status", sa.String(20), nullable=False,'
    ' info={"backfill": "placed"}),\n)')
COMPUTED = V1.replace(
    "nullable=False),\n)",
    'nullable=False),\n    sa.Column("total", sa.Numeric(12, 2), nullable=False),\n)')
COMPUTED_X = ("backfill=order.total=price * quantity", f"migrafix.backfill_batch_size={BATCH}")

SEED = ('INSERT INTO "order" (id, price, quantity) '
        "SELECT g, g % 100 + 0.5, g % 7 + 1 FROM generate_series(1, :rows) AS g")
ORIGINAL = 'SELECT id, price, quantity FROM "order" ORDER BY id'

COMPUTED_DOWNGRADE = "    op.drop_column('order', 'total')\n"
# What migrafix 0.1.0 wrote, in the migration's one transaction (as Alembic renders it).
BEFORE_UPGRADE = """\
    op.add_column('order', sa.Column('total', sa.Numeric(precision=12, scale=2), nullable=True))
    op.execute('UPDATE "order" SET total=price * quantity WHERE "order".total IS NULL')
    op.alter_column('order', 'total',
               existing_type=sa.Numeric(precision=12, scale=2),
               nullable=False)
"""


def populated(tmp_path: Path, url: str) -> AlembicProject:
    """A project at revision 0001 (models V1), ROWS rows in "order", the recorder installed."""
    project = AlembicProject(tmp_path, url)
    lock_trace.install(project)
    project.write_models(V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.execute(SEED, {"rows": ROWS})
    return project


def diffs(project: AlembicProject) -> list[Any]:
    """Autogenerate's diff, comparing server defaults too: a default left behind shows."""
    with project.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, project.metadata()))


def round_trip(project: AlembicProject, original: list[tuple[Any, ...]], filled: str) -> None:
    """After the first upgrade, and after a downgrade and a second upgrade: the rows read
    before the first (``original``) are there, each has the new column filled (``filled``
    counts them), the schema is the model's; the second upgrade keeps off the rows too."""

    def as_the_model_says() -> None:
        assert project.rows(ORIGINAL) == original
        assert project.rows(filled) == [(ROWS,)]
        assert diffs(project) == []

    as_the_model_says()
    project.alembic("downgrade", "0001")
    assert project.rows(ORIGINAL) == original
    trace = lock_trace.upgrade(project)
    assert trace.blocking_work("order") == [], trace
    assert trace.unbounded_lock_waits("order") == [], trace
    as_the_model_says()


def test_constant_backfill_takes_no_scan_and_no_update(tmp_path: Path, pg_url: str) -> None:
    project = populated(tmp_path, pg_url)
    original = project.rows(ORIGINAL)
    project.write_models(CONSTANT)
    assert [f.name for f in project.revision("v2")] == ["0002_v2.py"]

    trace = lock_trace.upgrade(project)

    assert trace.blocking_work("order") == [], trace
    assert trace.unbounded_lock_waits("order") == [], trace  # its lock taken first, bounded
    [add] = trace.matching(r'^ALTER TABLE "order" ADD COLUMN status .* NOT NULL')
    # It ran under ACCESS EXCLUSIVE (the probe sees it), and did nothing to the rows there:
    # no statement of the migration touched them, PostgreSQL scanned and rewrote nothing.
    assert "AccessExclusiveLock" in trace.transaction_of(add).modes("order")
    assert [s for s in trace.statements if s.touches_rows("order")] == []
    assert [s for s in trace.statements if s.scans("order")] == []
    round_trip(project, original, 'SELECT count(*) FROM "order" WHERE status = \'placed\'')


def test_computed_backfill_in_batches_outside_the_lock(tmp_path: Path, pg_url: str) -> None:
    project = populated(tmp_path, pg_url)
    original = project.rows(ORIGINAL)
    project.write_models(COMPUTED)
    files = project.revision("v2", x=COMPUTED_X)
    assert [f.name for f in files] == ["0002_post_v2_backfill_order_total.py", "0002_v2.py"]

    trace = lock_trace.upgrade(project)

    assert trace.blocking_work("order") == [], trace
    # the ALTERs after the batches too: each in a transaction of its own, its lock taken first
    assert trace.unbounded_lock_waits("order") == [], trace
    updates = [s for s in trace.statements if s.writes_rows("order")]
    for update in updates:  # each a transaction of its own, of at most a batch of rows
        assert trace.transaction_of(update).statements == (update,), trace
        assert update.rowcount is not None and update.rowcount <= BATCH, update
    batches = [u.rowcount for u in updates if u.rowcount]
    assert len(batches) == -(-ROWS // BATCH) and sum(batches) == ROWS, trace
    [validate] = trace.matching(r"VALIDATE CONSTRAINT ck_order_total_not_null")
    assert trace.transaction_of(validate).statements == (validate,)
    assert validate.scans("order") == ["verifying order"]  # the scan, under no write lock
    [set_not_null] = trace.matching(r'^ALTER TABLE "order" ALTER COLUMN total SET NOT NULL')
    assert set_not_null.said('existing constraints on column "order.total" are sufficient to '
                             "prove that it does not contain nulls"), set_not_null.notices
    assert set_not_null.scans("order") == []
    round_trip(project, original, 'SELECT count(*) FROM "order" WHERE total = price * quantity')


def test_the_trace_sees_the_0_1_0_form_hold_the_table(tmp_path: Path, pg_url: str) -> None:
    """The proof can fail: migrafix 0.1.0's add / UPDATE / SET NOT NULL in one transaction
    fills and scans the table under the ADD COLUMN's ACCESS EXCLUSIVE lock."""
    project = populated(tmp_path, pg_url)
    project.write_models(COMPUTED)
    project.hand_written("v2", BEFORE_UPGRADE, COMPUTED_DOWNGRADE)

    trace = lock_trace.upgrade(project)

    found = trace.blocking_work("order")
    assert len(found) == 2, trace
    assert len(trace.unbounded_lock_waits("order")) == 1, trace  # the ADD COLUMN's
    assert re.search(r'UPDATE "order" SET total=price \* quantity .*\[rows of order\] under '
                     r"AccessExclusiveLock", found[0]), found
    assert re.search(r"SET NOT NULL \[verifying order\] under AccessExclusiveLock", found[1])


@pytest.mark.parametrize(("statement", "mode"), [
    ('SELECT * FROM "order" WHERE id = 1', "AccessShareLock"),
    ('UPDATE "order" SET quantity = quantity WHERE id = 1', "RowExclusiveLock"),
    ('ALTER TABLE "order" VALIDATE CONSTRAINT ck_order_positive', "ShareUpdateExclusiveLock"),
    ('ALTER TABLE "order" ADD CONSTRAINT ck_order_price CHECK (price > 0) NOT VALID',
     "AccessExclusiveLock"),
    ('ALTER TABLE "order" ALTER COLUMN quantity SET NOT NULL', "AccessExclusiveLock"),
])
def test_documented_locks_are_what_postgresql_takes(
    statement: str, mode: str, tmp_path: Path, pg_url: str
) -> None:
    """Statements run in autocommit are judged by the lock PostgreSQL documents for them: here
    each, run in a transaction, holds exactly that lock on the table (no more)."""
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(V1_DDL))
    path = tmp_path / "trace.jsonl"
    lock_trace.record(engine, path)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    [run] = lock_trace.read(path).matching(re.escape(statement))
    assert lock_trace.documented_lock(statement) == mode
    assert {lock.mode for lock in run.locks if lock.relation == "order"} == {mode}


V1_DDL = """
CREATE TABLE "order" (id integer PRIMARY KEY, price numeric(10, 2) NOT NULL,
                      quantity integer NOT NULL);
ALTER TABLE "order" ADD CONSTRAINT ck_order_positive CHECK (quantity > 0) NOT VALID;
"""


# --- a foreign key added to a populated column (validating-constraint-add) -----------------

FK_V1 = """\
import sqlalchemy as sa

metadata = sa.MetaData()
invoice = sa.Table("invoice", metadata,
                   sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("invoice_id", sa.Integer),
)
"""
FK_V2 = FK_V1.replace('sa.Column("invoice_id", sa.Integer)',
                      'sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id"))')
FK_SEED = (
    "INSERT INTO invoice (id) SELECT g FROM generate_series(1, 20) AS g",
    'INSERT INTO "order" (id, invoice_id) SELECT g, g % 20 + 1 FROM generate_series(1, :rows) AS g',
)
FK_ORIGINAL = 'SELECT id, invoice_id FROM "order" ORDER BY id'
FK_VALIDATED = ("SELECT convalidated FROM pg_constraint "
                "WHERE conname = 'fk_order_invoice_id_invoice'")


def with_invoices(tmp_path: Path, url: str, hook: str | None = "default") -> AlembicProject:
    """A project at revision 0001 (models FK_V1), ROWS orders of 20 invoices, the recorder
    installed; ``hook`` None: autogenerate alone."""
    project = AlembicProject(tmp_path, url) if hook else AlembicProject(tmp_path, url, hook=None)
    lock_trace.install(project)
    project.write_models(FK_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    for statement in FK_SEED:
        project.execute(statement, {"rows": ROWS})
    project.write_models(FK_V2)
    return project


def test_foreign_key_is_validated_outside_the_lock(tmp_path: Path, pg_url: str) -> None:
    project = with_invoices(tmp_path, pg_url)
    original = project.rows(FK_ORIGINAL)
    files = project.revision("v2")
    assert [f.name for f in files] == ["0002_post_v2_validate_constraints.py", "0002_v2.py"]

    trace = lock_trace.upgrade(project)

    assert trace.blocking_work("order") == [], trace
    assert trace.blocking_work("invoice") == [], trace
    assert trace.unbounded_lock_waits("order") == trace.unbounded_lock_waits("invoice") == []
    [add] = trace.matching(r'^ALTER TABLE "order" ADD CONSTRAINT .* FOREIGN KEY')
    assert add.sql.rstrip().endswith("NOT VALID") and add.scans("order") == []
    assert trace.transaction_of(add).modes("order") >= {"ShareRowExclusiveLock"}
    [validate] = trace.matching(r'VALIDATE CONSTRAINT fk_order_invoice_id_invoice')
    # alone in its transaction, holding no lock that stops writes, and the one that scans
    assert trace.transaction_of(validate).statements == (validate,)
    assert trace.transaction_of(validate).modes("order") == {"ShareUpdateExclusiveLock"}
    assert validate.scans("order") == ["validating a foreign key of order"]
    assert [s for s in trace.statements if s.scans("order") or s.scans("invoice")] == [validate]
    assert project.rows(FK_VALIDATED) == [(True,)]
    assert project.rows(FK_ORIGINAL) == original and diffs(project) == []

    project.alembic("downgrade", "0001")
    assert project.rows(FK_ORIGINAL) == original
    assert project.rows(FK_VALIDATED) == []
    trace = lock_trace.upgrade(project)
    assert trace.blocking_work("order") == [] and trace.blocking_work("invoice") == [], trace
    assert project.rows(FK_VALIDATED) == [(True,)]
    assert project.rows(FK_ORIGINAL) == original and diffs(project) == []


def test_failed_validate_leaves_the_revision_and_the_rerun_finishes(
    tmp_path: Path, pg_url: str
) -> None:
    """An order whose invoice does not exist: the VALIDATE fails, the database is at 0002
    with the constraint NOT VALID (new writes are checked); once the row is fixed, `alembic
    upgrade head` validates it."""
    project = with_invoices(tmp_path, pg_url)
    project.execute('UPDATE "order" SET invoice_id = 999 WHERE id = 7')
    project.revision("v2")

    failed = project.alembic("upgrade", "head", check=False)

    assert failed.returncode != 0
    assert "fk_order_invoice_id_invoice" in failed.stderr
    assert "0002 (head)" not in project.alembic("current").stdout
    assert project.rows("SELECT version_num FROM alembic_version") == [("0002",)]
    assert project.rows(FK_VALIDATED) == [(False,)]
    with pytest.raises(sa.exc.IntegrityError):  # enforced for new writes meanwhile
        project.execute('UPDATE "order" SET invoice_id = 998 WHERE id = 8')

    project.execute('UPDATE "order" SET invoice_id = 1 WHERE id = 7')
    project.alembic("upgrade", "head")
    assert project.rows("SELECT version_num FROM alembic_version") == [("0002_post",)]
    assert project.rows(FK_VALIDATED) == [(True,)]
    assert diffs(project) == []


def test_the_trace_sees_autogenerate_scan_under_the_lock(tmp_path: Path, pg_url: str) -> None:
    """The proof can fail: autogenerate's create_foreign_key checks every order while its
    transaction holds SHARE ROW EXCLUSIVE on both tables."""
    project = with_invoices(tmp_path, pg_url, hook=None)
    project.revision("v2")

    trace = lock_trace.upgrade(project)

    for table in ("order", "invoice"):
        [found] = trace.blocking_work(table)
        assert re.search(rf"FOREIGN KEY.*\[validating a foreign key of {table}\] under "
                         r"ShareRowExclusiveLock", found), found


def test_validating_a_foreign_key_blocks_no_write(tmp_path: Path, pg_url: str) -> None:
    """A foreign key's VALIDATE, run in autocommit, is judged by its documented lock: here,
    in a transaction, it holds SHARE UPDATE EXCLUSIVE on its table and ROW SHARE on the one it
    references, neither of which stops a write."""
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(
            'CREATE TABLE invoice (id integer PRIMARY KEY); '
            'CREATE TABLE "order" (id integer PRIMARY KEY, invoice_id integer); '
            'ALTER TABLE "order" ADD CONSTRAINT fk FOREIGN KEY (invoice_id) '
            "REFERENCES invoice (id) NOT VALID"))
    path = tmp_path / "trace.jsonl"
    lock_trace.record(engine, path)
    statement = 'ALTER TABLE "order" VALIDATE CONSTRAINT fk'
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    [run] = lock_trace.read(path).matching(re.escape(statement))
    assert lock_trace.documented_lock(statement) == "ShareUpdateExclusiveLock"
    assert {(lock.relation, lock.mode) for lock in run.locks if lock.relation == lock.table} \
        == {("order", "ShareUpdateExclusiveLock"), ("invoice", "RowShareLock"),
            ("order", "AccessShareLock"), ("invoice", "AccessShareLock")}
    assert not {lock.mode for lock in run.locks} & lock_trace.BLOCKS_WRITES


def test_a_column_added_with_its_foreign_key_is_scanned_under_the_lock(
    tmp_path: Path, pg_url: str
) -> None:
    """Why validating-constraint-add reports add_column(sa.Column(..., sa.ForeignKey(...))):
    Alembic adds the column, then the foreign key as an ALTER of its own, and PostgreSQL checks
    every row for it (all NULL as they are) under the ADD COLUMN's ACCESS EXCLUSIVE lock. (A
    REFERENCES inside the ADD COLUMN itself would skip that scan: Alembic does not write one.)"""
    project = with_invoices(tmp_path, pg_url)
    project.hand_written(
        "v2", "    op.add_column('order', sa.Column('second_invoice_id', sa.Integer(), "
        "sa.ForeignKey('invoice.id')))\n",
        "    op.drop_column('order', 'second_invoice_id')\n")

    trace = lock_trace.upgrade(project)

    [found] = trace.blocking_work("order")
    assert re.search(r"ADD FOREIGN KEY\(second_invoice_id\).*\[validating a foreign key of "
                     r"order\] under .*AccessExclusiveLock", found), found


# --- indexes and unique constraints (concurrent-index, unique-constraint-add) --------------

IX_V1 = """\
import sqlalchemy as sa

metadata = sa.MetaData()
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(20)),
    sa.Column("quantity", sa.Integer),
)
"""
# an index and a unique constraint on columns with values, and a new column beside them
IX_V2 = IX_V1.replace(
    'sa.Column("code", sa.String(20)),\n    sa.Column("quantity", sa.Integer),\n)',
    'sa.Column("code", sa.String(20), unique=True),\n    sa.Column("quantity", sa.Integer),\n'
    '    sa.Column("note", sa.String(50)),\n    sa.Index("ix_order_quantity", "quantity"),\n)')
IX_SEED = ('INSERT INTO "order" (id, code, quantity) '
           "SELECT g, 'c-' || g, g % 7 FROM generate_series(1, :rows) AS g")
IX_ORIGINAL = 'SELECT id, code, quantity FROM "order" ORDER BY id'
IX_NAMES = ("SELECT 'index', indexname FROM pg_indexes WHERE tablename = 'order' UNION ALL "
            "SELECT 'constraint ' || contype::text, conname FROM pg_constraint "
            "WHERE conrelid = '\"order\"'::regclass ORDER BY 1, 2")
IX_BUILT = [("constraint p", "pk_order"), ("constraint u", "uq_order_code"),
            ("index", "ix_order_quantity"), ("index", "pk_order"), ("index", "uq_order_code")]


def with_codes(tmp_path: Path, url: str, hook: str | None = "default") -> AlembicProject:
    """A project at revision 0001 (models IX_V1), ROWS orders, the recorder installed, models
    IX_V2 written; ``hook`` None: autogenerate alone."""
    project = AlembicProject(tmp_path, url) if hook else AlembicProject(tmp_path, url, hook=None)
    lock_trace.install(project)
    project.write_models(IX_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.execute(IX_SEED, {"rows": ROWS})
    project.write_models(IX_V2)
    return project


def test_indexes_are_built_while_writes_go_on(tmp_path: Path, pg_url: str) -> None:
    """The index and the unique constraint's index are built CONCURRENTLY, each in autocommit
    (SHARE UPDATE EXCLUSIVE: writes go on); the constraint is then added USING its index,
    which builds nothing, in a transaction that took its lock first under the lock timeout.
    Through upgrade, downgrade and upgrade again."""
    project = with_codes(tmp_path, pg_url)
    original = project.rows(IX_ORIGINAL)
    files = project.revision("v2")
    assert [f.name[:10] for f in files] == ["0002_post_", "0002_v2.py"]

    trace = lock_trace.upgrade(project)

    assert trace.blocking_work("order") == [], trace
    builds = [s for s in trace.statements if s.scans("order")]
    assert [re.sub(r" ON .*", "", " ".join(s.sql.split())) for s in builds] == [
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_order_code",
        "CREATE INDEX CONCURRENTLY ix_order_quantity"], trace
    for build in builds:
        assert build.autocommit and build.scans("order") == ["building index order"], build
    [attach] = trace.matching(r'^ALTER TABLE "order" ADD CONSTRAINT uq_order_code UNIQUE '
                              r"USING INDEX uq_order_code$")
    assert not attach.autocommit and attach.scans("order") == []
    assert trace.unbounded_lock_waits("order") == [], trace
    assert project.rows(IX_NAMES) == IX_BUILT
    assert project.rows(IX_ORIGINAL) == original and diffs(project) == []

    trace = lock_trace.upgrade(project, "0001", command="downgrade")
    assert trace.blocking_work("order") == [], trace
    assert project.rows(IX_ORIGINAL) == original
    assert project.rows(IX_NAMES) == [("constraint p", "pk_order"), ("index", "pk_order")]

    trace = lock_trace.upgrade(project)
    assert trace.blocking_work("order") == [], trace
    assert project.rows(IX_NAMES) == IX_BUILT
    assert project.rows(IX_ORIGINAL) == original and diffs(project) == []


def test_failed_unique_build_leaves_the_revision_and_the_rerun_finishes(
    tmp_path: Path, pg_url: str
) -> None:
    """Two orders of one code: the unique build fails, the database stays at 0002 with an
    INVALID index of the constraint's name; dropped, the rows fixed, `alembic upgrade head`
    adds the constraint (what the comment above the block says to do)."""
    project = with_codes(tmp_path, pg_url)
    project.execute("UPDATE \"order\" SET code = 'c-1' WHERE id = 2")
    project.revision("v2")

    failed = project.alembic("upgrade", "head", check=False)

    assert failed.returncode != 0 and "uq_order_code" in failed.stderr
    assert project.rows("SELECT version_num FROM alembic_version") == [("0002",)]
    assert project.rows("SELECT indisvalid FROM pg_index "
                        "WHERE indexrelid = 'uq_order_code'::regclass") == [(False,)]
    with project.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("DROP INDEX CONCURRENTLY uq_order_code"))
    project.execute("UPDATE \"order\" SET code = 'c-2' WHERE id = 2")
    project.alembic("upgrade", "head")
    assert project.rows(IX_NAMES) == IX_BUILT and diffs(project) == []


# two indexes on existing columns, built in one autocommit block of 0002_post (0002 adds a
# column)
IX_TWO = IX_V1.replace(
    '    sa.Column("quantity", sa.Integer),\n)',
    '    sa.Column("quantity", sa.Integer),\n    sa.Column("note", sa.String(50)),\n'
    '    sa.Index("ix_order_quantity", "quantity"),\n'
    '    sa.Index("ux_order_code", "code", unique=True),\n)')


def test_a_block_of_builds_is_rerun_past_those_built_and_stops_at_an_invalid_one(
    tmp_path: Path, pg_url: str
) -> None:
    """The second build of the block fails (duplicate codes): the first index is built, the
    second INVALID, the database at 0002. Rerun as it is, the upgrade stops at the INVALID
    index and says to drop it (IF NOT EXISTS alone would skip it and end with an index no
    query uses); dropped, the rows fixed, the rerun skips the built index (it would stop at
    "already exists" without IF NOT EXISTS) and builds the other."""
    project = AlembicProject(tmp_path, pg_url)
    project.write_models(IX_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.execute(IX_SEED, {"rows": ROWS})
    project.execute("UPDATE \"order\" SET code = 'c-1' WHERE id = 2")
    project.write_models(IX_TWO)
    files = project.revision("v2")
    assert [f.name[:10] for f in files] == ["0002_post_", "0002_v2.py"]
    validity = ("SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
                "WHERE indrelid = '\"order\"'::regclass AND NOT indisprimary ORDER BY 1")

    failed = project.alembic("upgrade", "head", check=False)

    assert failed.returncode != 0 and "ux_order_code" in failed.stderr
    assert project.rows("SELECT version_num FROM alembic_version") == [("0002",)]
    assert project.rows(validity) == [("ix_order_quantity", True), ("ux_order_code", False)]

    again = project.alembic("upgrade", "head", check=False)

    assert again.returncode != 0
    assert ("index ux_order_code is INVALID, left by a failed build: drop it (DROP INDEX "
            "CONCURRENTLY), fix the cause, and run alembic upgrade head again") in again.stderr
    assert project.rows("SELECT version_num FROM alembic_version") == [("0002",)]

    with project.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("DROP INDEX CONCURRENTLY ux_order_code"))
    project.execute("UPDATE \"order\" SET code = 'c-2' WHERE id = 2")
    project.alembic("upgrade", "head")
    assert project.rows("SELECT version_num FROM alembic_version") == [("0002_post",)]
    assert project.rows(validity) == [("ix_order_quantity", True), ("ux_order_code", True)]
    assert diffs(project) == []


def test_the_trace_sees_autogenerate_build_under_the_lock(tmp_path: Path, pg_url: str) -> None:
    """The proof can fail: autogenerate's create_index and create_unique_constraint build
    their indexes in the migration's transaction, under SHARE and ACCESS EXCLUSIVE."""
    project = with_codes(tmp_path, pg_url, hook=None)
    project.revision("v2")

    trace = lock_trace.upgrade(project)

    found = trace.blocking_work("order")
    assert len(found) == 2, trace
    # both in the one transaction, which holds both locks
    assert any(re.search(r"ADD UNIQUE \(code\) \[building index order\] under "
                         r"AccessExclusiveLock/ShareLock", line) for line in found), found
    assert any(re.search(r"CREATE INDEX ix_order_quantity .*\[building index order\] under "
                         r"AccessExclusiveLock/ShareLock", line) for line in found), found


@pytest.mark.parametrize("statement", [
    'CREATE UNIQUE INDEX CONCURRENTLY uq_order_price ON "order" (id, price)',
    "DROP INDEX CONCURRENTLY ix_order_quantity",
])
def test_concurrent_index_statements_hold_the_documented_lock(
    statement: str, tmp_path: Path, pg_url: str
) -> None:
    """CONCURRENTLY runs only in autocommit, where no probe of its own sees its locks. Here
    another session's transaction, which read the table, makes it wait (it waits for such
    transactions to end), and pg_locks shows what it holds meanwhile: SHARE UPDATE EXCLUSIVE
    on the table, which stops no write."""
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(V1_DDL + 'CREATE INDEX ix_order_quantity ON "order" (quantity)'))
    ddl = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    pid = ddl.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    reader = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    reader.execute(sa.text('SELECT count(*) FROM "order"'))  # its snapshot and lock stay
    runner = threading.Thread(target=ddl.execute, args=(sa.text(statement),))
    runner.start()
    try:
        waiting = ("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
        with engine.connect() as probe:
            while probe.execute(sa.text(waiting), {"pid": pid}).scalar() != "Lock":
                assert runner.is_alive(), "it ran through without waiting: nothing seen"
                time.sleep(0.01)
            held = {mode for mode, in probe.execute(sa.text(
                "SELECT mode FROM pg_locks WHERE pid = :pid AND granted "
                "AND relation = '\"order\"'::regclass"), {"pid": pid})}
    finally:
        reader.rollback()
        runner.join(timeout=60)
        reader.close()
        ddl.close()
    assert held == {lock_trace.documented_lock(statement)} == {"ShareUpdateExclusiveLock"}
    assert not held & lock_trace.BLOCKS_WRITES
