"""lock-timeout on a real PostgreSQL, as a deploy meets it: a long report holds a table the
revision alters. The revision takes its locks first, each try waiting at most `lock_timeout`
(PostgreSQL then gives up the wait, and the queries queued behind it go on); it tries again
while it holds no other lock, then stops with one line, the database at a revision Alembic
knows; `upgrade head` after the report finishes. Proven without a clock: the trace says under
which `lock_timeout` each lock was taken, pg_stat_activity that a retry paused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lock_trace
import pytest
import sqlalchemy as sa
from harness import AlembicProject, body_lines
from test_hook_behaviour import columns, current, models, started

pytestmark = pytest.mark.postgres

ID = 'sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)'
ORDER_V1 = f'"order", metadata, {ID}, sa.Column("qty", sa.Integer)'
ORDER_V2 = f'{ORDER_V1}, sa.Column("note", sa.String(20))'
ITEM_V1 = f'"item", metadata, {ID}, sa.Column("name", sa.String(20))'
ITEM_V2 = f'{ITEM_V1}, sa.Column("sku", sa.String(20))'
SEED = 'INSERT INTO "order" (id, qty) VALUES (1, 3), (2, 5)'
# Short waits, so a test that waits for every try costs a second, not a deploy's patience.
QUICK = ("migrafix.lock_timeout=100ms", "migrafix.lock_retries=2",
         "migrafix.lock_retry_delay=0.1")
STOPPED = ('could not lock "order" within 100ms, try {tries} of 3: once what holds it ends, '
           "run alembic upgrade head again")


@contextmanager
def report(project: AlembicProject, table: str = "order") -> Iterator[sa.Connection]:
    """A long report: a transaction that has read ``table`` and holds its ACCESS SHARE lock
    until it ends (which conflicts with every ALTER TABLE)."""
    engine = sa.create_engine(project.url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text(f'SELECT count(*) FROM "{table}"'))
        yield connection
        connection.rollback()
    engine.dispose()


def per_migration(project: AlembicProject) -> None:
    env = project.root / "env.py"
    env.write_text(env.read_text().replace(
        "context.configure(connection=connection, **OPTIONS)",
        "context.configure(connection=connection, transaction_per_migration=True, **OPTIONS)"))


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.startswith("INFO ")]


def test_the_revision_takes_its_locks_first_under_the_timeout(tmp_path: Path, pg_url: str) -> None:
    project = started(tmp_path, pg_url, ORDER_V1, seed=SEED)
    project.write_models(models(ORDER_V2))
    [path] = project.revision("v2")
    lines = body_lines(path.read_text())
    assert lines.index("LOCK TABLE \"order\" IN ACCESS EXCLUSIVE MODE;") < lines.index(
        "op.add_column('order', sa.Column('note', sa.String(length=20), nullable=True))")
    assert "SET LOCAL lock_timeout = '1200ms';" in lines
    assert "LOCK TABLE \"order\" IN ACCESS EXCLUSIVE MODE;" in body_lines(path.read_text(),
                                                                         "downgrade")
    lock_trace.install(project)
    for command, target in (("upgrade", "head"), ("downgrade", "0001"), ("upgrade", "head")):
        trace = lock_trace.upgrade(project, target, command=command)
        # every lock that stops the application was taken with the timeout set, by the lock
        # step (the ALTER after it finds it held)
        assert trace.unbounded_lock_waits("order") == [], str(trace)
        [step] = trace.matching(r"^DO \$\$")
        assert lock_trace.Lock("order", "order", "AccessExclusiveLock") in step.locks
        assert step.lock_timeout == "1200ms"
    assert project.rows('SELECT id, qty FROM "order" ORDER BY id') == [(1, 3), (2, 5)]
    assert project.diffs() == []


def test_the_trace_sees_a_wait_without_a_timeout(tmp_path: Path, pg_url: str) -> None:
    """The negative control: the rule silenced, the ALTER takes its lock with no timeout."""
    project = started(tmp_path, pg_url, ORDER_V1, seed=SEED)
    project.write_models(models(ORDER_V2))
    project.revision("v2", x=["migrafix.ignore=lock-timeout"])
    lock_trace.install(project)
    trace = lock_trace.upgrade(project)
    [wait] = trace.unbounded_lock_waits("order")
    assert 'ALTER TABLE "order" ADD COLUMN note VARCHAR(20) (took AccessExclusiveLock)' in wait


def test_a_blocked_upgrade_stops_in_one_line_and_the_rerun_finishes(
    tmp_path: Path, pg_url: str
) -> None:
    project = started(tmp_path, pg_url, ORDER_V1, seed=SEED)
    project.write_models(models(ORDER_V2))
    project.revision("v2", x=QUICK)
    with report(project):
        failed = project.alembic("upgrade", "head", check=False)
        assert failed.returncode != 0
        # Alembic's own one-line error for a CommandError: no traceback
        assert error_lines(failed) == [
            f"ERROR [alembic.util.messaging] {STOPPED.format(tries=3)}"], failed.stderr
        assert current(project) == ["0001"]
        assert columns(project, "order") == ["id", "qty"]
    project.alembic("upgrade", "head")
    assert current(project) == ["0002"]
    assert columns(project, "order") == ["id", "qty", "note"]


def test_it_tries_again_while_the_report_runs_and_goes_on_once_it_ends(
    tmp_path: Path, pg_url: str
) -> None:
    project = started(tmp_path, pg_url, ORDER_V1, seed=SEED)
    project.write_models(models(ORDER_V2))
    project.revision("v2", x=["migrafix.lock_timeout=100ms", "migrafix.lock_retries=1000",
                              "migrafix.lock_retry_delay=0.05"])
    with report(project) as held:
        upgrade = subprocess.Popen(
            [sys.executable, "-m", "alembic", "-c", str(project.ini), "upgrade", "head"],
            cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # A try timed out and the migration pauses before the next: it holds no lock then
            # (pg_locks), and the report still runs.
            pausing = sa.text(
                "SELECT count(*) FROM pg_stat_activity a WHERE a.wait_event = 'PgSleep' "
                "AND a.query LIKE 'DO $$%' AND NOT EXISTS (SELECT FROM pg_locks l "
                "WHERE l.pid = a.pid AND l.granted AND l.relation = '\"order\"'::regclass "
                "AND l.mode <> 'AccessShareLock')")
            seen = False
            for _ in range(2000):
                with project.engine.connect() as probe:
                    if probe.execute(pausing).scalar():
                        seen = True
                        break
            assert seen, "no try was repeated"
            assert upgrade.poll() is None
        finally:
            held.rollback()  # the report ends
        _, stderr = upgrade.communicate(timeout=60)
    assert upgrade.returncode == 0, stderr
    assert current(project) == ["0002"]


@pytest.mark.parametrize(("per_migration_", "tries", "at"), [
    # one transaction: the revision after 0002 would hold 0002's lock on item while it waited
    # again, so it tries once; the whole upgrade is rolled back
    pytest.param(False, 1, ["0001"], id="one transaction"),
    pytest.param(True, 3, ["0002"], id="per migration"),
])
def test_a_later_revision_retries_only_if_it_holds_no_other_lock(
    per_migration_: bool, tries: int, at: list[str], tmp_path: Path, pg_url: str
) -> None:
    project = started(tmp_path, pg_url, ORDER_V1, ITEM_V1, seed=SEED)
    if per_migration_:
        per_migration(project)
    project.write_models(models(ORDER_V1, ITEM_V2))
    project.revision("v2", x=QUICK)
    project.alembic("upgrade", "head")
    project.write_models(models(ORDER_V2, ITEM_V2))
    project.revision("v3", x=QUICK)
    project.alembic("downgrade", "0001")
    with report(project):  # on order, which 0003 alters
        failed = project.alembic("upgrade", "head", check=False)
    assert error_lines(failed) == [
        f"ERROR [alembic.util.messaging] {STOPPED.format(tries=tries)}"], failed.stderr
    assert current(project) == at
    project.alembic("upgrade", "head")
    assert current(project) == ["0003"]


def test_offline_sql_sets_the_timeout_and_takes_the_locks(tmp_path: Path, pg_url: str) -> None:
    project = started(tmp_path, pg_url, ORDER_V1)
    project.write_models(models(ORDER_V2))
    project.revision("v2")
    sql = project.alembic("upgrade", "0001:head", "--sql").stdout
    do = sql.index("DO $$ BEGIN")
    assert do < sql.index("LOCK TABLE \"order\" IN ACCESS EXCLUSIVE MODE;") < sql.index(
        'ALTER TABLE "order" ADD COLUMN note VARCHAR(20);')
    assert "SET LOCAL lock_timeout = '1200ms';" in sql[do:]


def test_a_revision_written_for_postgresql_runs_on_sqlite(
    tmp_path: Path, pg_url: str, sqlite_url: str
) -> None:
    """Projects test their history on SQLite: the lock step runs only on PostgreSQL."""
    project = started(tmp_path / "pg", pg_url, ORDER_V1)
    project.write_models(models(ORDER_V2))
    project.revision("v2")
    lite = AlembicProject(tmp_path / "lite", sqlite_url)
    for path in project.versions.glob("*.py"):
        (lite.versions / path.name).write_text(path.read_text())
    lite.write_models(models(ORDER_V2))
    lite.alembic("upgrade", "head")
    assert columns(lite, "order") == ["id", "qty", "note"]
    lite.alembic("downgrade", "base")


def test_in_one_revision_the_statements_after_an_autocommit_block_take_their_locks_again(
    tmp_path: Path, pg_url: str
) -> None:
    """Kept in one revision, a concurrent index drop runs first, in an autocommit block that
    commits: the ALTERs after it run in a new transaction, which takes its locks first again.
    With transaction_per_migration off and on."""
    indexed = f'{ORDER_V2}, sa.Index("ix_order_note", "note", postgresql_concurrently=True)'
    for per_migration_ in (False, True):
        root = tmp_path / str(per_migration_)
        project = started(root, pg_url, ORDER_V1, seed=SEED)
        if per_migration_:
            per_migration(project)
        project.write_models(models(indexed))
        project.revision("v2", x=["migrafix.split_concurrent_revisions=false"])
        lock_trace.install(project)
        for command, target in (("upgrade", "head"), ("downgrade", "0001"), ("upgrade", "head")):
            trace = lock_trace.upgrade(project, target, command=command)
            assert trace.unbounded_lock_waits("order") == [], str(trace)
            assert trace.matching(r"^DO \$\$"), str(trace)
        project.alembic("downgrade", "base")
