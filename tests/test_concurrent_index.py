"""concurrent-index's default (`concurrent_indexes = "always"`) where no database is needed:
what it leaves alone, and the hook's trees. The file forms (a revision that has not run, one
that ran, one kept whole) are codemod fixtures (fixtures/codemod/index_*); on a real
PostgreSQL, tests/test_hook_more.py and tests/test_lock_behaviour.py."""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa
from alembic.operations import ops

from migrafix.codemod import fix_source
from migrafix.codemod.api import Options
from migrafix.engine import fix_revision
from migrafix.ops import AutocommitBlockOp
from migrafix.revision import part_of
from migrafix.rules import RuleContext
from migrafix.settings import Settings

RULE = "concurrent-index"


def revision(upgrade: str, downgrade: str) -> str:
    return (
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        "revision = 'b2'\ndown_revision = 'a1'\n\n\n"
        f"def upgrade():\n{textwrap.indent(textwrap.dedent(upgrade).strip(), '    ')}\n\n\n"
        f"def downgrade():\n{textwrap.indent(textwrap.dedent(downgrade).strip(), '    ')}\n"
    )


INDEX = revision("""
    op.add_column('event', sa.Column('kind', sa.String(20)))
    op.create_index('ix_event_kind', 'event', ['kind'])
""", """
    op.drop_index('ix_event_kind', table_name='event')
    op.drop_column('event', 'kind')
""")


# The lock step lock-timeout writes before each transaction is that rule's business
# (tests/test_lock_timeout.py): silenced here, so the files show this rule's change alone.
ALONE = Settings(ignore=("lock-timeout",))


def rule_findings(source: str, **options: object) -> list[str]:
    """The rule's findings; the file must come back unchanged."""
    options.setdefault("settings", ALONE)
    result = fix_source(source, Options(**options))  # type: ignore[arg-type]
    assert result.source == source and result.new_revisions == ()
    return [f.message for f in result.findings if f.rule == RULE]


@pytest.mark.parametrize("dialect", ["mysql", "mariadb", "sqlite"])
def test_other_databases_are_left_alone(dialect: str) -> None:
    """InnoDB builds secondary indexes online already; SQLite has no concurrent build."""
    assert rule_findings(INDEX, dialect=dialect) == []


def test_explicit_leaves_plain_index_ops_alone() -> None:
    assert rule_findings(INDEX, settings=ALONE.merged({"concurrent_indexes": "explicit"},
                                                      "test")) == []


def test_silenced_on_the_statement() -> None:
    silenced = INDEX.replace("['kind'])\n", "['kind'])  # migrafix: ignore[concurrent-index]\n")
    assert rule_findings(silenced) == []


def test_tables_the_revision_creates_are_left_alone() -> None:
    source = revision("""
        op.create_table('event', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('kind', sa.String(20)))
        op.create_index('ix_event_kind', 'event', ['kind'])
    """, """
        op.drop_index('ix_event_kind', table_name='event')
        op.drop_table('event')
    """)
    assert rule_findings(source) == []


def hook_trees(separate_revisions: bool, *, with_column: bool) -> tuple[
        ops.UpgradeOps, RuleContext]:
    group = [ops.CreateIndexOp("ix_event_kind", "event", ["kind"])]
    if with_column:
        group.insert(0, ops.AddColumnOp("event", sa.Column("kind", sa.String(20))))
    upgrade = ops.UpgradeOps([ops.ModifyTableOps("event", group)])
    context = RuleContext(settings=ALONE, dialect=sa.dialects.postgresql.dialect(),
                          separate_revisions=separate_revisions)
    fix_revision(upgrade, ops.DowngradeOps([]), context)
    return upgrade, context


def test_the_hook_s_trees_get_a_concurrent_build_after_the_rest() -> None:
    upgrade, context = hook_trees(True, with_column=True)
    [group, block] = upgrade.ops
    assert isinstance(group, ops.ModifyTableOps)
    assert [type(op) for op in group.ops] == [ops.AddColumnOp]
    assert isinstance(block, AutocommitBlockOp) and part_of(block) == "post"
    [create] = block.ops
    assert isinstance(create, ops.CreateIndexOp)
    assert create.kw == {"postgresql_concurrently": True}
    assert [f.fixed for f in context.findings if f.rule == RULE] == [True]


def test_where_the_revision_stays_whole_a_build_among_other_ops_is_left_with_a_note() -> None:
    """A multi-database revision, `alembic check`, `split_concurrent_revisions = false`."""
    upgrade, context = hook_trees(False, with_column=True)
    [group] = upgrade.ops
    assert isinstance(group, ops.ModifyTableOps)
    assert [type(op) for op in group.ops] == [ops.AddColumnOp, ops.CreateIndexOp]
    assert "postgresql_concurrently" not in group.ops[1].kw  # type: ignore[attr-defined]
    [finding] = [f for f in context.findings if f.rule == RULE]
    assert (finding.fixed, finding.note) == (False, True)
    assert "under a SHARE lock that stops writes to event; left as written" in finding.message

    # ... unless it is all the revision does: its block then commits nothing else
    upgrade, context = hook_trees(False, with_column=False)
    [block] = upgrade.ops
    assert isinstance(block, AutocommitBlockOp)
    assert [f.fixed for f in context.findings if f.rule == RULE] == [True]


def test_alembic_s_marker_above_a_statement_moved_into_a_block_is_written_once() -> None:
    """The statement is edited (the flag added) and moved into the block; Alembic's marker
    above it came along, copied, and was written again for the original."""
    source = revision("""
        # ### commands auto generated by Alembic - please adjust! ###
        op.create_index('ix_event_kind', 'event', ['kind'])
        # ### end Alembic commands ###
    """, """
        # ### commands auto generated by Alembic - please adjust! ###
        op.drop_index('ix_event_kind', table_name='event')
        # ### end Alembic commands ###
    """)
    result = fix_source(source, Options(settings=Settings(concurrent_indexes="always")))
    assert result.source.count("# ### commands auto generated") == 2, result.source
    assert result.source.count("autocommit_block():") == 2
