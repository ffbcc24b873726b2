"""What goes wrong WITHOUT migrafix: the four dangerous autogenerate patterns on real PostgreSQL.

Each test walks the path a user walks (models v1, autogenerate, upgrade, data, models v2,
autogenerate, upgrade/downgrade) and asserts on what the user sees. Plus harness smoke tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import AlembicProject, body_lines, revision_text


def models(*tables: str) -> str:
    """Source of a models.py with the given `sa.Table(...)` definitions."""
    body = "\n".join(f"sa.Table({table})" for table in tables)
    return f"import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n{body}\n"


def start(root: Path, url: str, *tables: str, **options: bool) -> AlembicProject:
    """A project without migrafix, upgraded to a first revision of `tables`."""
    project = AlembicProject(root, url, hook=None, **options)
    project.write_models(models(*tables))
    project.revision("v1")
    project.alembic("upgrade", "head")
    return project


def columns(project: AlembicProject, table: str) -> list[str]:
    return [column["name"] for column in sa.inspect(project.engine).get_columns(table)]


PK = 'sa.Column("id", sa.Integer, primary_key=True)'


@pytest.mark.postgres
def test_rename_becomes_add_and_drop_and_loses_data(tmp_path: Path, pg_url: str) -> None:
    project = start(tmp_path, pg_url, f'"customer", metadata, {PK}, sa.Column("name", sa.Text)')
    project.execute("INSERT INTO customer (name) VALUES ('Ada'), ('Grace')")

    project.write_models(models(f'"customer", metadata, {PK}, sa.Column("full_name", sa.Text)'))
    [path] = project.revision("rename name")
    assert body_lines(revision_text(path)) == [
        "op.add_column('customer', sa.Column('full_name', sa.Text(), nullable=True))",
        "op.drop_column('customer', 'name')",
    ]
    project.alembic("upgrade", "head")

    assert project.rows("SELECT id, full_name FROM customer ORDER BY id") == [(1, None), (2, None)]
    assert project.diffs() == []


@pytest.mark.postgres
def test_not_null_column_without_default_fails_on_existing_rows(
    tmp_path: Path, pg_url: str
) -> None:
    account = f'"account", metadata, {PK}, sa.Column("email", sa.Text)'
    project = start(tmp_path, pg_url, account)
    project.execute("INSERT INTO account (email) VALUES ('a@example.com')")

    project.write_models(models(f'{account}, sa.Column("status", sa.String(20), nullable=False)'))
    [path] = project.revision("add status")
    assert body_lines(revision_text(path)) == [
        "op.add_column('account', sa.Column('status', sa.String(length=20), nullable=False))",
    ]
    result = project.alembic("upgrade", "head", check=False)

    assert result.returncode != 0
    assert 'column "status" of relation "account" contains null values' in result.stderr
    assert columns(project, "account") == ["id", "email"]
    assert "0001" in project.alembic("current").stdout


@pytest.mark.postgres
def test_unnamed_foreign_key_cannot_be_downgraded(tmp_path: Path, pg_url: str) -> None:
    invoice = f'"invoice", metadata, {PK}'
    project = start(tmp_path, pg_url, invoice, f'"order", metadata, {PK}')
    project.execute('INSERT INTO invoice (id) VALUES (1); INSERT INTO "order" (id) VALUES (1)')

    invoice_id = 'sa.Column("invoice_id", sa.ForeignKey("invoice.id"))'
    project.write_models(models(invoice, f'"order", metadata, {PK}, {invoice_id}'))
    [path] = project.revision("order invoice")
    text = revision_text(path)
    assert "op.create_foreign_key(None, 'order', 'invoice', ['invoice_id'], ['id'])" in text
    assert "op.drop_constraint(None, 'order', type_='foreignkey')" in body_lines(text, "downgrade")
    project.alembic("upgrade", "head")
    fk_sql = "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f'"
    assert project.rows(fk_sql) == [('"order"', "order_invoice_id_fkey")]

    result = project.alembic("downgrade", "-1", check=False)

    assert result.returncode != 0
    assert "Can't emit DROP CONSTRAINT for constraint ForeignKeyConstraint" in result.stderr
    assert "it has no name" in result.stderr
    assert project.rows(fk_sql) == [('"order"', "order_invoice_id_fkey")]


@pytest.mark.postgres
def test_concurrent_index_fails_inside_the_migration_transaction(
    tmp_path: Path, pg_url: str
) -> None:
    event = f'"event", metadata, {PK}, sa.Column("kind", sa.Text)'
    project = start(tmp_path, pg_url, event)
    project.execute("INSERT INTO event (kind) VALUES ('click'), ('view')")

    index = 'sa.Index("ix_event_kind", "kind", postgresql_concurrently=True)'
    project.write_models(models(f"{event}, {index}"))
    [path] = project.revision("index kind")
    assert body_lines(revision_text(path)) == [
        "op.create_index('ix_event_kind', 'event', ['kind'], unique=False,"
        " postgresql_concurrently=True)",
    ]
    script = project.alembic("upgrade", "0001:head", "--sql").stdout
    assert re.search(r"BEGIN;.*CREATE INDEX CONCURRENTLY ix_event_kind.*COMMIT;", script, re.S)

    result = project.alembic("upgrade", "head", check=False)

    assert result.returncode != 0
    assert "CREATE INDEX CONCURRENTLY cannot run inside a transaction block" in result.stderr
    assert project.rows("SELECT indexname FROM pg_indexes WHERE tablename = 'event'") == [
        ("event_pkey",)
    ]


def test_sqlite_batch_smoke(tmp_path: Path, sqlite_url: str) -> None:
    item = f'"item", metadata, {PK}'
    project = start(
        tmp_path, sqlite_url, f'{item}, sa.Column("name", sa.Text)', render_as_batch=True
    )
    project.execute("INSERT INTO item (name) VALUES ('pen')")

    project.write_models(models(f'{item}, sa.Column("price", sa.Integer)'))
    [path] = project.revision("price")
    assert body_lines(revision_text(path)) == [
        "with op.batch_alter_table('item', schema=None) as batch_op:",
        "batch_op.add_column(sa.Column('price', sa.Integer(), nullable=True))",
        "batch_op.drop_column('name')",
    ]
    project.alembic("upgrade", "head")
    assert project.rows("SELECT id, price FROM item") == [(1, None)]
    assert project.diffs() == []

    project.alembic("downgrade", "base")
    tables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    assert project.rows(tables) == [("alembic_version",)]


def test_harness_evaluates_the_hook_expression(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "hooks.py").write_text(
        "def retitle(message):\n"
        "    def hook(context, revision, directives):\n"
        "        directives[0].message = message\n"
        "    return hook\n"
    )
    project = AlembicProject(tmp_path, sqlite_url, hook="hooks.retitle('retitled by hook')")
    project.write_models(models(f'"item", metadata, {PK}'))

    [path] = project.revision("original title")

    assert path.name == "0001_retitled_by_hook.py"
    assert revision_text(path).startswith('"""retitled by hook\n')


@pytest.mark.mysql
def test_mysql_smoke(tmp_path: Path, mysql_url: str) -> None:
    product = f'"product", metadata, {PK}, sa.Column("name", sa.String(50))'
    project = start(tmp_path, mysql_url, product)
    project.execute("INSERT INTO product (name) VALUES ('pen')")

    sku = 'sa.Column("sku", sa.String(20)), sa.Index("ix_product_sku", "sku")'
    project.write_models(models(f"{product}, {sku}"))
    [path] = project.revision("sku")
    assert body_lines(revision_text(path)) == [
        "op.add_column('product', sa.Column('sku', sa.String(length=20), nullable=True))",
        "op.create_index('ix_product_sku', 'product', ['sku'], unique=False)",
    ]
    project.alembic("upgrade", "head")
    assert project.rows("SELECT name, sku FROM product") == [("pen", None)]
    assert project.diffs() == []

    project.alembic("downgrade", "-1")
    assert columns(project, "product") == ["id", "name"]
    assert project.rows("SELECT name FROM product") == [("pen",)]
