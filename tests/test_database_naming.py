"""`--naming database` against what the databases really do.

Every kind of constraint and index (primary key, foreign key, unique, check, index) is created
with no name in each place a revision creates one (inside `create_table`, by a standalone op,
in a batch block) on a real PostgreSQL and MySQL/MariaDB, and the names they gave are read
back with the inspector. `migrafix rewrite --naming database` must leave every create as it
is (a fresh build then gets the names every deployed database has) and drop each constraint,
in the downgrade, by the name its database gave it: a downgrade that names a constraint the
database does not have fails, so one that runs and leaves none behind proves every name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from harness import AlembicProject

from migrafix.codemod import FileFinding, Options, fix_source
from migrafix.settings import Settings

HEADER = '''\
"""unnamed constraints, every kind, every place

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

'''

COLUMNS = """\
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('parent_id', sa.Integer(), nullable=True),
        sa.Column('sku', sa.String(length=20), nullable=True),
        sa.Column('a', sa.Integer(), nullable=True),
        sa.Column('b', sa.Integer(), nullable=True),
        sa.Column('price', sa.Integer(), nullable=True),"""

UPGRADE = f"""\
def upgrade():
    op.create_table('parent', sa.Column('id', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    # inside create_table
    op.create_table('product',
{COLUMNS}
        sa.Column('c', sa.Integer(), nullable=True, index=True),
        sa.CheckConstraint('price < 1000'),
        sa.CheckConstraint('price > 0'),
        sa.CheckConstraint('a < b'),
        sa.CheckConstraint('1 = 1'),
        sa.ForeignKeyConstraint(['parent_id'], ['parent.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sku'),
        sa.UniqueConstraint('a', 'b'),
    )
    # standalone ops: one of each kind a table, as a drop finds its create by kind and table
    for table in ('item', 'item_2', 'item_3', 'item_4'):
        op.create_table(table,
{COLUMNS}
        )
    op.create_primary_key(None, 'item', ['id'])
    op.create_foreign_key(None, 'item', 'parent', ['parent_id'], ['id'])
    op.create_unique_constraint(None, 'item', ['a', 'b'])
    op.create_index(None, 'item', ['a', 'b'])
    op.create_unique_constraint(None, 'item_2', ['sku'])
CHECKS_UP
    # a batch block
    op.create_table('batch_item',
{COLUMNS}
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('batch_item') as batch_op:
        batch_op.create_foreign_key(None, 'parent', ['parent_id'], ['id'])
        batch_op.create_unique_constraint(None, ['sku'])
        batch_op.create_index(None, ['sku', 'price'])
BATCH_CHECK_UP
"""

CHECKS_UP = """\
    op.create_check_constraint(None, 'item', 'price < 1000')
    op.create_check_constraint(None, 'item_2', 'length(sku) > 0')
    op.create_check_constraint(None, 'item_3', 'a < b')
    op.create_check_constraint(None, 'item_4', '1 = 1')"""
BATCH_CHECK_UP = """\
        batch_op.create_check_constraint(None, 'price < 1000')"""

DOWNGRADE = """\
def downgrade():
    with op.batch_alter_table('batch_item') as batch_op:
BATCH_CHECK_DOWN
        batch_op.drop_index(None)
        batch_op.drop_constraint(None, type_='unique')
        batch_op.drop_constraint(None, type_='foreignkey')
CHECKS_DOWN
    op.drop_constraint(None, 'item_2', type_='unique')
    op.drop_index(None, table_name='item')
    op.drop_constraint(None, 'item', type_='unique')
    op.drop_constraint(None, 'item', type_='foreignkey')
    op.drop_constraint(None, 'item', type_='primary')
"""
CHECKS_DOWN = """\
    op.drop_constraint(None, 'item_4', type_='check')
    op.drop_constraint(None, 'item_3', type_='check')
    op.drop_constraint(None, 'item_2', type_='check')
    op.drop_constraint(None, 'item', type_='check')"""
BATCH_CHECK_DOWN = """\
        batch_op.drop_constraint(None, type_='check')"""

STANDALONE = ("item", "item_2", "item_3", "item_4", "batch_item")


def revision(with_checks: bool) -> str:
    """The revision, with or without the drops of its unnamed checks (MySQL numbers those)."""
    parts = {"CHECKS_UP": CHECKS_UP, "BATCH_CHECK_UP": BATCH_CHECK_UP,
             "CHECKS_DOWN": CHECKS_DOWN if with_checks else "",
             "BATCH_CHECK_DOWN": BATCH_CHECK_DOWN if with_checks else ""}
    source = HEADER + UPGRADE + "\n\n" + DOWNGRADE
    for marker, text in parts.items():
        source = source.replace(marker + "\n", text + "\n" if text else "")
    return source


def function(source: str, name: str) -> str:
    return source[source.index(f"def {name}("):].split("\n\n\n")[0]


def names(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """What the database named, table by table."""
    inspector = sa.inspect(engine)
    found = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        found[table] = {
            "pk": inspector.get_pk_constraint(table)["name"],
            "fk": sorted((fk["name"], tuple(fk["constrained_columns"]))
                         for fk in inspector.get_foreign_keys(table)),
            "uq": sorted((uq["name"], tuple(uq["column_names"]))
                         for uq in inspector.get_unique_constraints(table)),
            "ck": sorted((ck["name"], ck["sqltext"])
                         for ck in inspector.get_check_constraints(table)),
            "ix": sorted((ix["name"], tuple(ix["column_names"]))
                         for ix in inspector.get_indexes(table) if ix["name"].startswith("ix_")),
        }
    return found


def rewritten(source: str, dialect: str) -> tuple[str, tuple[FileFinding, ...]]:
    result = fix_source(source, Options(Settings(), dialect, "database"))
    return result.source, result.findings


def run(project: AlembicProject, source: str) -> dict[str, dict[str, Any]]:
    """Upgrade with ``source``; the names the database gave."""
    (project.versions / "0001_constraints.py").write_text(source)
    project.write_models("import sqlalchemy as sa\nmetadata = sa.MetaData()\n")
    project.alembic("upgrade", "head")
    return names(project.engine)


POSTGRESQL_NAMES = {
    "product": {
        "pk": "product_pkey",
        "fk": [("product_parent_id_fkey", ("parent_id",))],
        "uq": [("product_a_b_key", ("a", "b")), ("product_sku_key", ("sku",))],
        # a second check on one column, or a second of no single column: numbered
        "ck": [("product_check", "a < b"), ("product_check1", "1 = 1"),
               ("product_price_check", "price < 1000"), ("product_price_check1", "price > 0")],
        "ix": [("ix_product_c", ("c",))],
    },
    "item": {"pk": "item_pkey", "fk": [("item_parent_id_fkey", ("parent_id",))],
             "uq": [("item_a_b_key", ("a", "b"))], "ck": [("item_price_check", "price < 1000")],
             "ix": [("ix_item_a", ("a", "b"))]},
    "item_2": {"pk": None, "fk": [], "uq": [("item_2_sku_key", ("sku",))],
               "ck": [("item_2_sku_check", "length(sku::text) > 0")], "ix": []},
    "item_3": {"pk": None, "fk": [], "uq": [], "ck": [("item_3_check", "a < b")], "ix": []},
    "item_4": {"pk": None, "fk": [], "uq": [], "ck": [("item_4_check", "1 = 1")], "ix": []},
    "batch_item": {"pk": "batch_item_pkey", "fk": [("batch_item_parent_id_fkey", ("parent_id",))],
                   "uq": [("batch_item_sku_key", ("sku",))],
                   "ck": [("batch_item_price_check", "price < 1000")],
                   "ix": [("ix_batch_item_sku", ("sku", "price"))]},
}


@pytest.mark.postgres
def test_postgresql_names_every_unnamed_constraint_as_the_rewrite_drops_it(
    tmp_path: Path, pg_url: str
) -> None:
    source = revision(with_checks=True)
    fixed, findings = rewritten(source, "postgresql")
    assert function(fixed, "upgrade") == function(source, "upgrade")  # creates: untouched
    # its creates ran under locks that stopped writes (scans, index builds): history, notes
    findings = tuple(f for f in findings if not f.note)
    assert all(finding.fixable for finding in findings), findings
    assert len(findings) == 13  # every drop of the downgrade
    assert "(None" not in function(fixed, "downgrade")

    project = AlembicProject(tmp_path, pg_url, hook=None)
    given = run(project, fixed)
    assert {table: given[table] for table in POSTGRESQL_NAMES} == POSTGRESQL_NAMES

    # The names the rewrite wrote, rather than looked up, are the database's.
    written = set(re.findall(r"op\.f\('(\w+)'\)", function(fixed, "downgrade")))
    assert written == {"ix_batch_item_sku", "ix_item_a", "batch_item_price_check",
                       "item_price_check", "item_2_sku_check", "item_3_check", "item_4_check"}
    project.alembic("downgrade", "base")
    left = names(project.engine)
    for table in STANDALONE:
        assert left[table] == {"pk": "batch_item_pkey" if table == "batch_item" else None,
                               "fk": [], "uq": [], "ck": [], "ix": []}, table


MYSQL_NAMES = {
    "product": {
        "pk": None,  # MySQL's is always PRIMARY, which the inspector leaves out
        "fk": [("product_ibfk_1", ("parent_id",))],
        "uq": [("a", ("a", "b")), ("sku", ("sku",))],
        "ix": [("ix_product_c", ("c",))],
    },
    "item": {"pk": None, "fk": [("item_ibfk_1", ("parent_id",))], "uq": [("a", ("a", "b"))],
             "ix": [("ix_item_a", ("a", "b"))]},
    "batch_item": {"pk": None, "fk": [("batch_item_ibfk_1", ("parent_id",))],
                   "uq": [("sku", ("sku",))], "ix": [("ix_batch_item_sku", ("sku", "price"))]},
}


def test_mysql_names_every_unnamed_constraint_as_the_rewrite_drops_it(
    tmp_path: Path, mysql_url: str
) -> None:
    # MySQL numbers unnamed checks (MariaDB CONSTRAINT_<n>, MySQL <table>_chk_<n>): the
    # rewrite says so and leaves them; the rest it drops by the names MySQL gave.
    _, with_checks = rewritten(revision(with_checks=True), "mysql")
    by_hand = [finding for finding in with_checks if not finding.fixable]
    assert len(by_hand) == 5
    assert all("number unnamed checks" in finding.message for finding in by_hand)

    source = revision(with_checks=False)
    fixed, findings = rewritten(source, "mysql")
    assert function(fixed, "upgrade") == function(source, "upgrade")
    assert len(findings) == 8 and all(finding.fixable for finding in findings)

    project = AlembicProject(tmp_path, mysql_url, hook=None)
    given = run(project, fixed)
    for table, expected in MYSQL_NAMES.items():
        assert {kind: given[table][kind] for kind in expected} == expected, table
    checks = [name for table in STANDALONE for name, _ in given[table]["ck"]]
    assert len(checks) == 5 and not any("check" in name for name in checks), checks

    project.alembic("downgrade", "base")
    left = names(project.engine)
    for table in STANDALONE:
        assert (left[table]["fk"], left[table]["uq"], left[table]["ix"]) == ([], [], []), table


def test_sqlite_keeps_the_creates_of_a_table_as_they_are(tmp_path: Path, sqlite_url: str) -> None:
    """SQLite runs only the create_table part (it alters constraints in batch mode alone, and
    there only named ones): the rewrite leaves it as it is, so the names stay SQLite's own."""
    source = HEADER + function(UPGRADE, "upgrade").split("    # standalone")[0]
    source += "\n\ndef downgrade():\n    op.drop_table('product')\n    op.drop_table('parent')\n"
    assert fix_source(source, Options(Settings(), "sqlite", "database")).findings == ()
    assert fix_source(source, Options(Settings(), "sqlite", "database")).source == source
    project = AlembicProject(tmp_path, sqlite_url, hook=None)
    given = run(project, source)
    assert given["product"]["uq"] == [(None, ("a", "b")), (None, ("sku",))]


SECOND_CHECK = HEADER + '''\
def upgrade():
    op.create_table('dup',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('price', sa.Integer(), nullable=True),
        sa.CheckConstraint('price > 0'),
    )
    op.create_check_constraint(None, 'dup', 'price < 1000')


def downgrade():
    op.drop_constraint(None, 'dup', type_='check')
    op.drop_table('dup')
'''


def test_a_second_check_postgresql_numbers_is_left_to_fix_by_hand() -> None:
    """PostgreSQL named the one above dup_price_check1 (see product's checks above): which of
    two checks got the number cannot be told from the file."""
    fixed, findings = rewritten(SECOND_CHECK, "postgresql")
    assert fixed == SECOND_CHECK
    (finding,) = findings
    assert not finding.fixable
    assert "dup_price_check1" in finding.message
