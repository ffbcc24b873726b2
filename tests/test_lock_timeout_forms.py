"""lock-timeout where no database is needed: where it writes nothing, what its settings write,
and the locks it takes for each kind of statement (what tests/test_lock_timeout.py runs on a
real PostgreSQL, and fixtures/codemod/lock_timeout_* show as files)."""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa
from alembic.operations import ops

from migrafix.blocks import table_locks
from migrafix.codemod import fix_source
from migrafix.codemod.api import Options
from migrafix.settings import Settings, SettingsError

RULE = "lock-timeout"


def revision(upgrade: str, downgrade: str = "pass") -> str:
    return (
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        "revision = 'b2'\ndown_revision = 'a1'\n\n\n"
        f"def upgrade():\n{textwrap.indent(textwrap.dedent(upgrade).strip(), '    ')}\n\n\n"
        f"def downgrade():\n{textwrap.indent(textwrap.dedent(downgrade).strip(), '    ')}\n"
    )


NOTE = revision("op.add_column('order', sa.Column('note', sa.Text(), nullable=True))",
                "op.drop_column('order', 'note')")


@pytest.mark.parametrize("dialect", ["mysql", "mariadb", "sqlite"])
def test_other_databases_get_nothing(dialect: str) -> None:
    """MySQL's DDL commits each statement (lock_wait_timeout belongs in env.py); SQLite locks
    the whole file."""
    result = fix_source(NOTE, Options(dialect=dialect))
    assert result.source == NOTE and result.findings == ()


def test_a_revision_that_ran_is_left_as_it_is() -> None:
    result = fix_source(NOTE, Options(naming="database"))
    assert result.source == NOTE and result.findings == ()


def test_a_revision_that_sets_its_own_lock_timeout_is_left_alone() -> None:
    own = NOTE.replace("    op.add_column(", "    op.execute(\"SET LOCAL lock_timeout = '3s'\")\n"
                       "    op.add_column(")
    result = fix_source(own, Options())
    assert [f.message.split(":")[0] for f in result.findings if f.rule == RULE] == [
        "downgrade"]
    assert result.source.count("LOCK TABLE") == 1  # the downgrade's only


def test_the_settings_are_what_the_block_says() -> None:
    settings = Settings().merged({"lock_timeout": "2s", "lock_retries": 0,
                                  "lock_retry_delay": 0.5}, "test")
    written = fix_source(NOTE, Options(settings=settings)).source
    assert "SET LOCAL lock_timeout = '2s';" in written
    assert "FOR attempt IN 1..1 LOOP" in written and "PERFORM pg_sleep(0.5);" in written
    assert "at most 2s a try, one try, then the migration" in written
    again = fix_source(written, Options(settings=settings))
    assert again.source == written and not any(f.fixable for f in again.findings)


@pytest.mark.parametrize(("key", "value"), [
    ("lock_timeout", "1.5s"), ("lock_timeout", "0"), ("lock_timeout", 1200),
    ("lock_timeout", "1200 ms'; DROP TABLE x; --"), ("lock_retries", -1),
    ("lock_retries", True), ("lock_retry_delay", "soon"), ("lock_retry_delay", 7200),
])
def test_a_bad_setting_is_an_error_naming_it(key: str, value: object) -> None:
    """The timeout goes into SQL text: only a plain PostgreSQL duration is taken."""
    with pytest.raises(SettingsError, match=f"setting '{key}'"):
        Settings().merged({key: value}, "pyproject.toml")


FOREIGN_KEY = ops.CreateForeignKeyOp("fk", "order", "customer", ["customer_id"], ["id"],
                                     source_schema="shop")


@pytest.mark.parametrize(("op", "locks"), [
    (ops.AddColumnOp("order", sa.Column("note", sa.Text())),
     [((None, "order"), "ACCESS EXCLUSIVE")]),
    (ops.AddColumnOp("order", sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"))),
     [((None, "order"), "ACCESS EXCLUSIVE"), ((None, "customer"), "SHARE ROW EXCLUSIVE")]),
    (ops.AlterColumnOp("order", "note", modify_comment="a note"), []),  # COMMENT ON
    (FOREIGN_KEY, [(("shop", "order"), "SHARE ROW EXCLUSIVE"),
                   ((None, "customer"), "SHARE ROW EXCLUSIVE")]),
    # dropping a foreign key takes ACCESS EXCLUSIVE on the table it refers to as well
    (ops.DropConstraintOp("fk", "order", type_="foreignkey", schema="shop",
                          _reverse=FOREIGN_KEY),
     [(("shop", "order"), "ACCESS EXCLUSIVE"), ((None, "customer"), "ACCESS EXCLUSIVE")]),
    (ops.CreateIndexOp("ix", "order", ["note"]), [((None, "order"), "SHARE")]),
    (ops.CreateIndexOp("ix", "order", ["note"], postgresql_concurrently=True), []),
    (ops.CreateTableOp("line", [sa.Column("id", sa.Integer, primary_key=True),
                                sa.Column("order_id", sa.ForeignKey("shop.order.id"))]),
     [(("shop", "order"), "SHARE ROW EXCLUSIVE")]),
    (ops.ExecuteSQLOp("UPDATE x SET y = 1"), []),  # not known: the rule cuts there instead
], ids=["add column", "add column with a foreign key", "comment", "foreign key",
        "drop foreign key", "index", "concurrent index", "new table", "sql"])
def test_the_locks_each_statement_takes(op: ops.MigrateOperation, locks: list[object]) -> None:
    """As pg_locks shows them (tests/test_lock_behaviour.py and the probe in
    tests/test_lock_timeout.py check the ones the rule takes first on a real server)."""
    assert list(table_locks(op)) == locks
