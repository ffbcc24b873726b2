"""not-null-add's forms on real databases, beyond the golden scenarios: a computed backfill
that fails half-way (a typo, NULLs it leaves) and the rerun that finishes it, offline ``--sql``,
``alembic check``, ``transaction_per_migration``, and the constant form where a dialect limits
it (SQLite without batch mode, MariaDB's TEXT)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import AlembicProject, body_lines, revision_text
from test_hook_behaviour import columns, current, models, started

ID = 'sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)'
LINE_V1 = f'"line", metadata, {ID}, sa.Column("price", sa.Integer), sa.Column("qty", sa.Integer)'
LINE_V2 = f'{LINE_V1}, sa.Column("total", sa.Integer, nullable=False)'
SEED = "INSERT INTO line (id, price, qty) VALUES (1, 3, 2), (2, 5, 1), (3, 2, 2), (7, 1, 9)"
FILLED = [(1, 6), (2, 5), (3, 4), (7, 9)]
TOTALS = "SELECT id, total FROM line ORDER BY id"
CHECKS = ("SELECT conname FROM pg_constraint WHERE conrelid = 'line'::regclass "
          "AND contype = 'c'")


def computed(root: Path, url: str, backfill: str) -> tuple[AlembicProject, list[Path]]:
    """v1 with rows; v2 adds line.total NOT NULL, filled with ``backfill`` 2 rows a batch."""
    project = started(root, url, LINE_V1, seed=SEED)
    project.write_models(models(LINE_V2))
    files = project.revision("v2", x=[f"backfill=line.total={backfill}",
                                      "migrafix.backfill_batch_size=2"])
    return project, files


def nullable(project: AlembicProject, table: str, column: str) -> bool:
    found = {c["name"]: c for c in sa.inspect(project.engine).get_columns(table)}
    return bool(found[column]["nullable"])


@pytest.mark.parametrize(("database", "error"), [
    pytest.param("pg_url", 'column "qtty" does not exist', marks=pytest.mark.postgres,
                 id="postgresql"),
    # MySQL commits each DDL statement on its own: without the split, the column would stay
    # added while alembic_version stayed behind.
    pytest.param("mysql_url", "Unknown column 'qtty'", marks=pytest.mark.mysql, id="mariadb"),
])
def test_a_failed_backfill_leaves_a_clean_revision_and_the_rerun_finishes(
    database: str, error: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A typo in the backfill SQL: the upgrade fails in 0002_post, the database is at 0002 (the
    column added, nullable, recorded). Fix the revision file, `upgrade head` finishes."""
    project, files = computed(tmp_path, request.getfixturevalue(database), "price * qtty")
    assert [f.name for f in files] == ["0002_post_v2_backfill_line_total.py", "0002_v2.py"]
    failed = project.alembic("upgrade", "head", check=False)
    assert failed.returncode != 0
    assert error in failed.stderr
    assert current(project) == ["0002"]
    assert nullable(project, "line", "total")

    post = files[0]
    post.write_text(post.read_text().replace("qtty", "qty"))
    project.alembic("upgrade", "head")
    assert current(project) == ["0002_post"]
    assert project.rows(TOTALS) == FILLED
    assert not nullable(project, "line", "total")
    if database == "pg_url":
        assert project.rows(CHECKS) == []  # the temporary CHECK is gone
    assert project.diffs() == []


@pytest.mark.postgres
def test_nulls_left_by_the_backfill_stop_it_at_validate_and_the_rerun_finishes(
    tmp_path: Path, pg_url: str
) -> None:
    """A backfill that yields NULL for a row: the upgrade stops at 0002 naming the check, and
    drops that NOT VALID check first (left, it would refuse every write to the row: the fix
    of the data below would fail). Once the data is fixed, the rerun finishes."""
    project, _ = computed(tmp_path, pg_url, "price * qty")
    project.execute("UPDATE line SET qty = NULL WHERE id = 3")
    failed = project.alembic("upgrade", "head", check=False)
    assert failed.returncode != 0
    assert 'violates check constraint "ck_line_total_not_null"' in failed.stderr
    assert current(project) == ["0002"]
    assert project.rows(CHECKS) == []

    project.execute("UPDATE line SET qty = 2 WHERE id = 3")
    project.alembic("upgrade", "head")
    assert project.rows(TOTALS) == FILLED
    assert project.rows(CHECKS) == []
    assert not nullable(project, "line", "total")


@pytest.mark.postgres
def test_a_backfill_stopped_half_way_resumes(tmp_path: Path, pg_url: str) -> None:
    """Rows already filled (a run killed mid-loop) are left as they are; the rest is filled."""
    project, _ = computed(tmp_path, pg_url, "price * qty")
    project.alembic("upgrade", "0002")
    project.execute("UPDATE line SET total = -1 WHERE id <= 2")  # as a first batch left them
    project.alembic("upgrade", "head")
    assert project.rows(TOTALS) == [(1, -1), (2, -1), (3, 4), (7, 9)]


@pytest.mark.postgres
@pytest.mark.parametrize("per_migration", [False, True], ids=["one transaction", "per migration"])
def test_upgrade_downgrade_upgrade_and_alembic_check(
    per_migration: bool, tmp_path: Path, pg_url: str
) -> None:
    project, _ = computed(tmp_path, pg_url, "price * qty")
    if per_migration:
        env = project.root / "env.py"
        env.write_text(env.read_text().replace(
            "context.configure(connection=connection, **OPTIONS)",
            "context.configure(connection=connection, transaction_per_migration=True, **OPTIONS)"))
    for _ in range(2):
        project.alembic("upgrade", "head")
        assert project.rows(TOTALS) == FILLED
        assert "No new upgrade operations detected" in project.alembic("check").stdout
        project.alembic("downgrade", "0002")
        assert nullable(project, "line", "total")
        assert project.rows(TOTALS) == FILLED  # undoing NOT NULL keeps the data
        project.alembic("downgrade", "0001")
        assert columns(project, "line") == ["id", "price", "qty"]


@pytest.mark.postgres
def test_offline_sql_fills_every_row_in_one_statement(tmp_path: Path, pg_url: str) -> None:
    """--sql has no connection to read keys from: the loop is skipped, the UPDATE after it
    fills every row, each step after a COMMIT (the autocommit block)."""
    project, _ = computed(tmp_path, pg_url, "price * qty")
    sql = project.alembic("upgrade", "0001:head", "--sql").stdout
    steps = [
        "ALTER TABLE line ADD COLUMN total INTEGER;",
        "COMMIT;",
        "VACUUM (ANALYZE) line;",
        "ALTER TABLE line DROP CONSTRAINT IF EXISTS ck_line_total_not_null;",
        "ALTER TABLE line ADD CONSTRAINT ck_line_total_not_null CHECK (total IS NOT NULL) "
        "NOT VALID;",
        "UPDATE line SET total=price * qty WHERE line.total IS NULL;",
        "ALTER TABLE line VALIDATE CONSTRAINT ck_line_total_not_null;",
        "ALTER TABLE line ALTER COLUMN total SET NOT NULL;",
        "ALTER TABLE line DROP CONSTRAINT ck_line_total_not_null;",
    ]
    positions = [sql.index(step) for step in steps]
    assert positions == sorted(positions)
    assert current(project) == ["0001"]  # offline touches nothing


@pytest.mark.postgres
@pytest.mark.parametrize("backfill", ["gen_random_uuid()::text", "md5(random()::text)"])
def test_a_volatile_backfill_is_batched_not_a_default(
    backfill: str, tmp_path: Path, pg_url: str
) -> None:
    """A volatile DEFAULT would rewrite the table under its lock: it is filled in batches."""
    project = started(tmp_path, pg_url, LINE_V1, seed=SEED)
    project.write_models(models(f'{LINE_V1}, sa.Column("code", sa.Text, nullable=False)'))
    files = project.revision("v2", x=[f"backfill=line.code={backfill}"])
    assert [f.name for f in files] == ["0002_post_v2_backfill_line_code.py", "0002_v2.py"]
    assert "server_default" not in revision_text(files[1])
    project.alembic("upgrade", "head")
    codes = project.rows("SELECT code FROM line")
    assert len({code for (code,) in codes}) == 4  # one value per row, as an UPDATE gives


@pytest.mark.postgres
def test_a_stable_function_is_a_default(tmp_path: Path, pg_url: str) -> None:
    """now() is evaluated once, as it would be by an UPDATE in one transaction."""
    project = started(tmp_path, pg_url, LINE_V1, seed=SEED)
    project.write_models(models(
        f'{LINE_V1}, sa.Column("at", sa.DateTime(timezone=True), nullable=False)'))
    [path] = project.revision("v2", x=["backfill=line.at=now()"])
    assert "server_default=sa.text('now()'), nullable=False" in revision_text(path)
    project.alembic("upgrade", "head")
    assert len(set(project.rows("SELECT at FROM line"))) == 1
    assert project.diffs() == []


def test_sqlite_without_batch_mode_keeps_the_default(tmp_path: Path, sqlite_url: str) -> None:
    """SQLite's ALTER TABLE adds a NOT NULL column with a constant default but cannot drop the
    default afterwards outside batch mode: the default stays, and the console says so."""
    project = started(tmp_path, sqlite_url, LINE_V1, seed=SEED)
    project.write_models(models(
        f'{LINE_V1}, sa.Column("unit", sa.String(5), nullable=False, info={{"backfill": "kg"}})'))
    [path] = project.revision("v2")
    assert body_lines(revision_text(path)) == [
        "op.add_column('line', sa.Column('unit', sa.String(length=5), "
        "server_default=sa.text(\"'kg'\"), nullable=False))",
    ]
    assert "which stays: SQLite drops a default only in batch mode" in project.last.stderr
    project.alembic("upgrade", "head")
    assert project.rows("SELECT DISTINCT unit FROM line") == [("kg",)]
    assert not nullable(project, "line", "unit")


@pytest.mark.mysql
def test_mariadb_takes_a_default_on_text(tmp_path: Path, mysql_url: str) -> None:
    """MariaDB (unlike MySQL) takes a literal DEFAULT on a TEXT column: the fast form holds."""
    project = started(tmp_path, mysql_url, LINE_V1, seed=SEED)
    project.write_models(models(
        f'{LINE_V1}, sa.Column("note", sa.Text, nullable=False, info={{"backfill": "none"}})'))
    [path] = project.revision("v2")
    assert "server_default=sa.text(\"'none'\")" in revision_text(path)
    project.alembic("upgrade", "head")
    assert project.rows("SELECT DISTINCT note FROM line") == [("none",)]
    assert project.diffs() == []
