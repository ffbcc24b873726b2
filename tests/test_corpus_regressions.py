"""What the corpus review (tests/corpus_review.md) found wrong in src/, each as the smallest
revision file that shows it. Each was written as a strict xfail and fixed since; they stay as
regression tests. Each docstring says what went wrong, and where.
"""

from __future__ import annotations

import textwrap

import pytest

from migrafix.codemod import Options, fix_source
from migrafix.settings import Settings

HEADER = '''\
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"

'''


def revision(body: str) -> str:
    return HEADER + textwrap.dedent(body)


# --- wrong fixes ------------------------------------------------------------------------------

BATCH_INDEX_ALONE = revision('''
    def upgrade():
        op.add_column("t", sa.Column("b", sa.Integer(), nullable=True))
        with op.batch_alter_table("t", schema=None) as batch_op:
            batch_op.create_index("ix_t_a", ["a"], unique=False, postgresql_concurrently=True)


    def downgrade():
        with op.batch_alter_table("t", schema=None) as batch_op:
            batch_op.drop_index("ix_t_a", postgresql_concurrently=True)
        op.drop_column("t", "b")
''')


def test_a_new_autocommit_block_is_never_taken_for_a_batch_block() -> None:
    """A concurrent index op alone in a batch block (what autogenerate writes in batch mode for
    an index on an existing table). concurrent-index empties the batch group and drops it;
    the AutocommitBlockOp it then creates often lands at the freed group's address. The
    reader's maps (ReadFunction.statement_of, keyed by id(op)) and the writer's snapshot
    (writer._structure: ids) were never told the group died, so at random (about 19 runs in
    20 on CPython 3.11) the writer either sees "nothing changed" and leaves the file as it
    was while reporting the finding [fixable], or writes the block under the dead group's
    header, `with op.batch_alter_table("t") as batch_op:` around `op.create_index(...,
    postgresql_concurrently=True)`: CONCURRENTLY inside the transaction again.
    Fix: keep every op the reader built alive for the ReadFunction's lifetime (a list on it),
    or key those maps by the op objects themselves."""
    options = Options(Settings(), "postgresql", "convention")
    for _ in range(10):
        result = fix_source(BATCH_INDEX_ALONE, options)
        # the blocks are split off into 0002_post; in one revision (unsplit), they stay
        assert result.unsplit is not None
        for source in (result.new_revisions[0].source or "", result.unsplit.source):
            assert source.count("with op.get_context().autocommit_block():") == 2
            assert "as batch_op:\n        op." not in source


EMPTIED_FIRST = revision('''
    def upgrade():
        op.add_column("t", sa.Column("b", sa.Integer(), nullable=True))
        with op.get_context().autocommit_block():
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_t_b ON t (b)")


    def downgrade():
        with op.get_context().autocommit_block():
            op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_t_b")
        op.drop_column("t", "b")
''')


@pytest.mark.parametrize("how", ["setting", "select", "file comment", "statement comment"])
def test_ignoring_concurrent_index_silences_the_autocommit_block_report(how: str) -> None:
    """fixer.fix_source appends _autocommit_findings(...) (rule "concurrent-index") whatever
    the settings say: `ignore = ["concurrent-index"]` (project, per-path, --ignore),
    `--select` of other rules, `# migrafix: ignore-file[concurrent-index]` and
    `# migrafix: ignore[concurrent-index]` on the `with` line do not silence it; only a bare
    `# migrafix: ignore-file` does. A project that runs on an AUTOCOMMIT connection (dagster)
    is told to ignore the rule, and `migrafix check` still exits 1 on every such file.
    Fix: call _autocommit_findings only when settings.rule_enabled("concurrent-index"), and
    skip blocks whose statement carries the ignore comment."""
    source, settings = EMPTIED_FIRST, Settings()
    if how == "setting":
        settings = Settings(ignore=("concurrent-index",))
    elif how == "select":
        settings = Settings(select=("not-null-add",))
    elif how == "file comment":
        source = "# migrafix: ignore-file[concurrent-index]\n" + source
    else:
        source = source.replace("autocommit_block():\n        op.execute(\"CREATE",
                                "autocommit_block():  # migrafix: ignore[concurrent-index]\n"
                                "        op.execute(\"CREATE")
        assert "ignore[concurrent-index]" in source
    result = fix_source(source, Options(settings, "postgresql", "database"))
    assert result.findings == ()


NONE_FK = revision('''
    def upgrade():
        op.add_column("order", sa.Column("invoice_id", sa.Integer(), nullable=True))
        op.create_foreign_key(None, "order", "invoice", ["invoice_id"], ["id"])


    def downgrade():
        op.drop_constraint(None, "order", type_="foreignkey")
        op.drop_column("order", "invoice_id")
''')


def test_database_naming_gives_the_name_the_projects_convention_gave_at_run_time() -> None:
    """Alembic builds every op's constraint on a MetaData carrying target_metadata's naming
    convention (alembic.operations.schemaobj.SchemaObjects.metadata), so in a project whose
    models have one (arize-phoenix), `create_foreign_key(None, ...)` created
    fk_order_invoice_id_invoice on every database that ran it, not PostgreSQL's
    order_invoice_id_fkey. fixer.fix_source picks DatabaseNaming whenever naming is
    "database", and DatabaseNaming never looks at the convention (settings.naming_convention,
    which `metadata = ...` fills from the models): the downgrade it writes drops a
    constraint that does not exist, and a fresh database gets a different name than the
    deployed ones. Seen in the replay of arize-phoenix's history (tests/test_corpus_replay.py).
    Fix: in database mode, name a kind the project's convention covers by that convention;
    DatabaseNaming only for the rest."""
    convention = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
    result = fix_source(NONE_FK, Options(Settings(naming_convention=convention), "postgresql",
                                         "database"))
    # The drop only: Alembic names the create by the same convention when it runs.
    assert 'op.drop_constraint(op.f("fk_order_invoice_id_invoice"), "order"' in result.source
    assert 'op.create_foreign_key(None, "order"' in result.source


# --- false positives --------------------------------------------------------------------------

EMPTIED_TABLE = revision('''
    def upgrade():
        op.execute("DELETE FROM dag_code")
        op.add_column("dag_code", sa.Column("source_code_hash", sa.String(32), nullable=False))


    def downgrade():
        op.drop_column("dag_code", "source_code_hash")
''')


def test_a_table_emptied_earlier_in_the_migration_needs_no_backfill() -> None:
    """apache-airflow-core 0047, 0064, 0093 empty the table (`op.execute("DELETE FROM ...")`)
    before adding NOT NULL columns: safe, and the corpus's most frequent not-null-add report
    (14 of 40). The rule could treat a table as empty after a literal `DELETE FROM <table>` /
    `TRUNCATE <table>` with no WHERE, earlier in the same function."""
    result = fix_source(EMPTIED_TABLE, Options(Settings(), "postgresql", "database"))
    assert result.findings == ()
    assert result.source == EMPTIED_TABLE


SAME_NAME_READDED = revision('''
    def upgrade():
        with op.batch_alter_table("callback", schema=None) as batch_op:
            batch_op.drop_column("id")
            batch_op.add_column(sa.Column("id", sa.Uuid(), nullable=True))
            batch_op.add_column(sa.Column("trigger_id", sa.Integer(), nullable=True))


    def downgrade():
        with op.batch_alter_table("callback", schema=None) as batch_op:
            batch_op.drop_column("trigger_id")
            batch_op.drop_column("id")
            batch_op.add_column(sa.Column("id", sa.INTEGER(), nullable=True))
''')


def test_a_column_dropped_and_added_again_under_its_name_is_no_rename() -> None:
    """apache-airflow-core 0093 replaces callback.id (INTEGER -> UUID) by a drop and an add
    of `id`, and adds trigger_id (INTEGER): drop-add-rename pairs the dropped `id` with
    trigger_id ("a rename?"). A column whose name is added back in the same group is a type
    change, not a rename: _look_alikes should leave it out of drops_by_type."""
    result = fix_source(SAME_NAME_READDED, Options(Settings(), "postgresql", "database"))
    assert [f for f in result.findings if f.rule == "drop-add-rename"] == []


OPAQUE_NEW_TABLE = revision('''
    import myapp


    def upgrade():
        op.create_table(
            "block_data",
            sa.Column("id", myapp.UUID(), nullable=False),
            sa.Column("name", sa.String(), nullable=False),
        )
        op.create_index("ix_block_data__name", "block_data", ["name"], unique=False)


    def downgrade():
        op.drop_index("ix_block_data__name", table_name="block_data")
        op.drop_table("block_data")
''')


def test_always_leaves_alone_an_index_on_a_table_the_revision_creates() -> None:
    """With `concurrent_indexes = "always"`, an index on a table created in the same revision
    stays a plain CREATE INDEX (the table is empty and new): revision.transient_tables. But a
    create_table with a project type in it is an OpaqueOp, so the table counts as existing:
    prefect's initial migrations get CONCURRENTLY indexes in autocommit blocks that commit
    the create_table first (and then a "[fix by hand]" report on the block migrafix wrote).
    The reader could record the table name of an opaque `op.create_table("literal", ...)`."""
    settings = Settings(concurrent_indexes="always")
    result = fix_source(OPAQUE_NEW_TABLE, Options(settings, "postgresql", "database"))
    assert result.findings == ()


# --- cosmetic ---------------------------------------------------------------------------------

MARKER_AFTER_GUARD = revision('''
    def upgrade():
        conn = op.get_bind()
        if conn.dialect.name == "sqlite":
            return

        # ### commands auto generated by Alembic - please adjust! ###
        op.create_foreign_key(None, "order", "invoice", ["invoice_id"], ["id"])
        # ### end Alembic commands ###


    def downgrade():
        op.drop_constraint(None, "order", type_="foreignkey")
''')


def test_alembic_marker_comment_stays_where_it_was() -> None:
    """writer._markers_first puts `# ### commands auto generated ...` first in any rewritten
    body, even when no statement around it moved (zenml's alembic_start.py: above its
    early-return guard). Harmless, but README promises statements no fix touches keep their
    comments byte for byte. (lock-timeout silenced: its lock step goes after the guard, above
    the marker: fixtures/codemod/lock_timeout_after_guard.)"""
    alone = Settings(ignore=("lock-timeout",))
    result = fix_source(MARKER_AFTER_GUARD, Options(alone, "postgresql", "convention"))
    assert result.source.replace('op.f("fk_order_invoice_id_invoice")', "None") \
        == MARKER_AFTER_GUARD


def test_a_guarded_revision_is_not_split() -> None:
    """A split-off revision would run its part without the guard: zenml's `if sqlite: return`
    would not protect the VALIDATE (or a concurrent build) from SQLite. The file stays whole,
    in the form safe in one revision, and a note says why."""
    result = fix_source(MARKER_AFTER_GUARD, Options(Settings(), "postgresql", "convention"))
    assert result.new_revisions == ()
    assert "postgresql_not_valid" not in result.source
    (note,) = [f for f in result.findings if f.rule == "split-revision"]
    assert note.note and "upgrade() may stop early (line 10)" in note.message


MULTILINE_CONSTRAINT = revision('''
    def upgrade():
        op.create_table(
            "t",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("a", sa.Integer(), nullable=True),
            sa.ForeignKeyConstraint(
                ["a"], ["other.id"], ondelete="cascade"
            ),
            sa.UniqueConstraint(
                "id",
                "a",
            ),
        )


    def downgrade():
        op.drop_table("t")
''')


def test_a_name_added_to_a_multiline_constraint_follows_its_layout() -> None:
    """writer._edit_call appends `name=...` after the last argument's trailing whitespace:
    `ondelete="cascade", ` + newline + `name=op.f(...)),` at the closing parenthesis's
    indentation, with trailing whitespace (lemur, airflow, zenml, phoenix). Valid Python, but
    not what black or a person writes: the keyword should be a line of its own at the
    arguments' indentation, or on the last argument's line."""
    result = fix_source(MULTILINE_CONSTRAINT, Options(Settings(), "postgresql", "convention"))
    assert "name=" in result.source
    assert not [line for line in result.source.splitlines() if line != line.rstrip()]
    assert "\n            name=" in result.source


# --- open ---------------------------------------------------------------------------------------

COMMENTED_BATCH_INDEX = revision('''
    def upgrade():
        op.add_column("t", sa.Column("b", sa.Integer(), nullable=True))
        # Index the new column.
        with op.batch_alter_table("t", schema=None) as batch_op:
            batch_op.create_index("ix_t_b", ["b"], unique=False, postgresql_concurrently=True)


    def downgrade():
        # Drop the index first.
        with op.batch_alter_table("t", schema=None) as batch_op:
            batch_op.drop_index("ix_t_b", postgresql_concurrently=True)
        op.drop_column("t", "b")
''')


def test_the_comments_of_a_batch_block_emptied_by_a_move_stay() -> None:
    """Found after 12786f3, in airflow 0036 with `concurrent_indexes = "always"`. concurrent-index
    moves every op of the batch block into an autocommit block; writer.FunctionWriter._group
    then returns [] for the empty block (`if not inner: return []`), and the comment lines
    above its `with` (batch.leading_lines) go with it: `_leaf` carries over only the comments
    of the moved op's own statement. Fix: when a batch block is written as nothing, put its
    leading lines on the next statement written (or in the footer)."""
    result = fix_source(COMMENTED_BATCH_INDEX, Options(Settings(), "postgresql", "database"))
    assert result.source.count("autocommit_block():") == 2
    assert "# Index the new column." in result.source
    assert "# Drop the index first." in result.source


EMPTIED_THEN_RENAMED = revision('''
    def upgrade():
        op.execute("DELETE FROM callback_request")
        op.rename_table("callback_request", "callback")
        op.add_column("callback", sa.Column("fetch_method", sa.String(20), nullable=False))


    def downgrade():
        op.drop_column("callback", "fetch_method")
        op.rename_table("callback", "callback_request")
''')


def test_a_table_emptied_then_renamed_needs_no_backfill() -> None:
    """What is left of the airflow false positive after 12786f3 (3 reports, airflow 0093):
    not_null_add._emptied_table records the table a `DELETE FROM t` empties, but a later
    `op.rename_table(t, new)` (a RenameTableOp in tree.top) does not carry that to `new`, so
    NOT NULL columns added to `new` are still split. Fix: in NotNullAdd.apply, when `emptied`
    holds a RenameTableOp's table_name, add its new_table_name."""
    result = fix_source(EMPTIED_THEN_RENAMED, Options(Settings(), "postgresql", "database"))
    assert result.findings == ()
