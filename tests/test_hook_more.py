"""Hook behaviour the scenario tests do not reach: concurrent index drops and builds by default
(with the _pre revision for concurrent drops) and a SQL backfill given with sa.text()."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import AlembicProject, body_lines
from render_examples import render

from migrafix.rules import Example

HEADER = "import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"
EVENT_V1 = HEADER + """
event = sa.Table(
    "event", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(20)),
    sa.Column("code", sa.String(20)),
    sa.Index("ix_event_kind", "kind"),
)
"""
# kind (and its index) dropped; a plain index on code added; a new table with its own index.
EVENT_V2 = HEADER + """
event = sa.Table(
    "event", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(20)),
    sa.Index("ix_event_code", "code"),
)
tag = sa.Table(
    "tag", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("label", sa.String(20), index=True),
)
"""


@pytest.mark.postgres
def test_concurrent_indexes_split_drops_before_and_creates_after(
    tmp_path: Path, pg_url: str
) -> None:
    """By default every index op on a table that lives on both sides of the revision becomes
    concurrent: the drop in a revision before the column drop, the create in one after; the
    new table's index stays in the transaction. Rows survive upgrade → downgrade → upgrade."""
    project = AlembicProject(tmp_path, pg_url)
    project.write_models(EVENT_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.execute("INSERT INTO event (id, kind, code) VALUES (1, 'a', 'x'), (2, 'b', 'y')")
    project.write_models(EVENT_V2)
    files = {p.name: p.read_text() for p in project.revision("v2")}

    assert sorted(files) == ["0002_post_v2_create_indexes_concurrently.py",
                             "0002_pre_v2_drop_indexes_concurrently.py", "0002_v2.py"]
    pre = files["0002_pre_v2_drop_indexes_concurrently.py"]
    assert "down_revision: Union[str, Sequence[str], None] = '0001'" in pre
    assert body_lines(pre) == [
        "with op.get_context().autocommit_block():",
        "op.drop_index(op.f('ix_event_kind'), table_name='event', postgresql_concurrently=True)",
    ]
    main = files["0002_v2.py"]
    assert "down_revision: Union[str, Sequence[str], None] = '0002_pre'" in main
    assert "op.drop_column('event', 'kind')" in main
    assert "op.create_index(op.f('ix_tag_label'), 'tag', ['label'], unique=False)" in main
    assert "autocommit_block" not in main
    post = files["0002_post_v2_create_indexes_concurrently.py"]
    assert "op.create_index('ix_event_code', 'event', ['code'], unique=False, " \
           "postgresql_concurrently=True)" in post

    for _ in range(2):
        project.alembic("upgrade", "head")
        assert project.rows("SELECT id, code FROM event ORDER BY id") == [(1, "x"), (2, "y")]
        assert project.diffs() == []
        project.alembic("downgrade", "0001")
        assert project.rows("SELECT id, kind, code FROM event ORDER BY id") == [
            (1, None, "x"), (2, None, "y")]
        assert project.rows(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'event' AND indexname LIKE 'ix%'"
        ) == [("ix_event_kind",)]


@pytest.mark.postgres
def test_explicit_keeps_the_index_ops_the_model_does_not_mark(
    tmp_path: Path, pg_url: str
) -> None:
    """`concurrent_indexes = "explicit"`: index ops are written as autogenerate writes them."""
    project = AlembicProject(tmp_path, pg_url)
    (project.root / "pyproject.toml").write_text(
        '[tool.migrafix]\nconcurrent_indexes = "explicit"\n')
    project.write_models(EVENT_V1)
    project.revision("v1")
    project.write_models(EVENT_V2)
    project.alembic("upgrade", "head")
    [main] = project.revision("v2")
    text = main.read_text()
    assert "autocommit_block" not in text and "postgresql_concurrently" not in text
    assert "op.drop_index(op.f('ix_event_kind'), table_name='event')" in text
    assert "op.create_index('ix_event_code', 'event', ['code'], unique=False)" in text


# env.py of a project that opens the migrations' transaction itself (as arize-phoenix does)
ALEMBIC_MANAGES = """\
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
"""
ITS_OWN = """\
        with connection.begin():
            context.configure(connection=connection, **OPTIONS)
            context.run_migrations()
"""
EVENT_V3 = EVENT_V2.replace('sa.Column("code", sa.String(20)),',
                            'sa.Column("code", sa.String(20), unique=True),', 1)


@pytest.mark.postgres
def test_an_env_py_with_a_transaction_of_its_own_gets_revisions_it_can_run(
    tmp_path: Path, pg_url: str
) -> None:
    """Alembic's autocommit_block() cannot end a transaction env.py opened: a revision with
    one fails there (the negative control). The hook sees that transaction, says so, and
    writes the index and the unique constraint in the migration's transaction, one revision,
    which upgrades and downgrades."""
    project = AlembicProject(tmp_path, pg_url)
    env = project.root / "env.py"
    assert ALEMBIC_MANAGES in env.read_text()
    project.write_models(EVENT_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.execute("INSERT INTO event (id, kind, code) VALUES (1, 'a', 'x'), (2, 'b', 'y')")
    project.write_models(EVENT_V2)
    written_by_default = project.revision("v2")  # Alembic manages the transaction here
    assert len(written_by_default) == 3
    env.write_text(env.read_text().replace(ALEMBIC_MANAGES, ITS_OWN))

    failed = project.alembic("upgrade", "head", check=False)

    assert failed.returncode != 0 and ", in autocommit_block\n" in failed.stderr
    for path in written_by_default:
        path.unlink()
    project.write_models(EVENT_V3)
    files = {p.name: p.read_text() for p in project.revision("v2", rev_id="0003")}

    assert "env.py runs the migrations in a transaction of its own" in project.last.stderr
    assert sorted(files) == ["0003_v2.py"]
    text = files["0003_v2.py"]
    assert "autocommit_block" not in text and "postgresql_concurrently" not in text
    assert "op.create_unique_constraint(op.f('uq_event_code'), 'event', ['code'])" in text
    for _ in range(2):
        project.alembic("upgrade", "head")
        assert project.rows("SELECT id, code FROM event ORDER BY id") == [(1, "x"), (2, "y")]
        assert project.diffs() == []
        project.alembic("downgrade", "0001")


@pytest.mark.postgres
def test_backfill_from_sql_expression(tmp_path: Path, pg_url: str) -> None:
    """info={"backfill": sa.text(...)} is SQL, written as is into the UPDATEs. It reads a
    column, so it is no DEFAULT: on PostgreSQL it fills in batches, in a revision of its own."""
    project = AlembicProject(tmp_path, pg_url)
    v1 = HEADER + 'item = sa.Table("item", metadata, sa.Column("id", sa.Integer, ' \
        'primary_key=True, autoincrement=False))\n'
    project.write_models(v1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.execute("INSERT INTO item (id) VALUES (1), (2)")
    project.write_models(v1.replace("autoincrement=False)", "autoincrement=False), sa.Column("
        '"slug", sa.String(20), nullable=False, info={"backfill": sa.text("\'item-\' || id")})'))
    [path, _] = project.revision("v2")
    assert path.name == "0002_post_v2_backfill_item_slug.py"
    assert "op.execute(\"UPDATE item SET slug='item-' || id WHERE item.slug IS NULL\")" \
        in path.read_text()
    assert "SET slug='item-' || id WHERE id > :after AND id <= :upto" in path.read_text()
    project.alembic("upgrade", "head")
    assert project.rows("SELECT id, slug FROM item ORDER BY id") == [(1, "item-1"), (2, "item-2")]
    assert project.diffs() == []
    project.alembic("downgrade", "0001")
    project.alembic("upgrade", "head")
    assert project.rows("SELECT slug FROM item ORDER BY id") == [("item-1",), ("item-2",)]


def test_naming_convention_setting_replaces_migrafix_default(sqlite_url: str) -> None:
    """`naming_convention` in [tool.migrafix] names what the project's models leave unnamed,
    in upgrade and downgrade; kinds it does not cover keep migrafix's default."""
    before = HEADER + """
invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
order = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True))
"""
    after = HEADER + """
invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
order = sa.Table(
    "order", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id")),
    sa.Column("code", sa.String(10), unique=True),
)
"""
    settings = {"naming_convention": {"fk": "fk_%(table_name)s_%(referred_table_name)s"}}
    example = Example("", before, after, "", "", "", settings=settings)
    rendered = render(example, sqlite_url)
    assert "op.create_foreign_key(op.f('fk_order_invoice'), 'order', 'invoice'" \
        in rendered.fixed_upgrade
    assert "op.create_unique_constraint(op.f('uq_order_code'), 'order', ['code'])" \
        in rendered.fixed_upgrade
    assert "op.drop_constraint(op.f('fk_order_invoice'), 'order', type_='foreignkey')" \
        in rendered.fixed_downgrade
