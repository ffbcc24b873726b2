"""unique-constraint-add where no database is needed: what it leaves alone, the options it
carries, and the hook's trees. The file forms are codemod fixtures
(fixtures/codemod/unique_constraint_*); on a real PostgreSQL, tests/test_hook_databases.py
and tests/test_lock_behaviour.py."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql

from migrafix.codemod import fix_source
from migrafix.codemod.api import Options
from migrafix.engine import fix_revision
from migrafix.ops import AutocommitBlockOp
from migrafix.revision import part_of
from migrafix.rules import RuleContext
from migrafix.settings import Settings

RULE = "unique-constraint-add"
DIALECT = sa.dialects.postgresql.dialect()
# The lock step lock-timeout writes before each transaction is that rule's business
# (tests/test_lock_timeout.py): silenced here, so the trees show this rule's change alone.
ALONE = Settings(ignore=("lock-timeout",))


def revision(upgrade: str, downgrade: str) -> str:
    return (
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        "revision = 'b2'\ndown_revision = 'a1'\n\n\n"
        f"def upgrade():\n{textwrap.indent(textwrap.dedent(upgrade).strip(), '    ')}\n\n\n"
        f"def downgrade():\n{textwrap.indent(textwrap.dedent(downgrade).strip(), '    ')}\n"
    )


UNIQUE = revision("op.create_unique_constraint('uq_order_code', 'order', ['code'])",
                  "op.drop_constraint('uq_order_code', 'order', type_='unique')")


def rule_findings(source: str, **options: object) -> list[tuple[str, bool, bool]]:
    """(message, fixable, note) of the rule's findings; the file must come back unchanged."""
    options.setdefault("settings", ALONE)
    result = fix_source(source, Options(**options))  # type: ignore[arg-type]
    assert result.source == source and result.new_revisions == ()
    return [(f.message, f.fixable, f.note) for f in result.findings if f.rule == RULE]


@pytest.mark.parametrize("dialect", ["mysql", "mariadb", "sqlite"])
def test_other_databases_are_left_alone(dialect: str) -> None:
    """InnoDB adds a unique index online already; SQLite copies the table (batch mode)."""
    assert rule_findings(UNIQUE, dialect=dialect) == []


def test_silenced_on_the_statement_and_by_setting() -> None:
    silenced = UNIQUE.replace("['code'])\n",
                              "['code'])  # migrafix: ignore[unique-constraint-add]\n")
    assert rule_findings(silenced) == []
    assert rule_findings(UNIQUE, settings=Settings(ignore=(RULE, "lock-timeout"))) == []


def test_tables_the_revision_creates_are_left_alone() -> None:
    source = revision("""
        op.create_table('order', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('code', sa.String(20)))
        op.create_unique_constraint('uq_order_code', 'order', ['code'])
    """, "op.drop_table('order')")
    assert rule_findings(source) == []


def test_options_it_does_not_carry_leave_it_as_written() -> None:
    source = UNIQUE.replace("['code'])", "['code'], mssql_clustered=True)", 1)
    [(message, fixable, note)] = rule_findings(source)
    assert (fixable, note) == (False, True)
    assert "does not carry its options (mssql_clustered)" in message


def test_a_revision_that_adds_only_unique_constraints_stays_whole_and_gets_the_form() -> None:
    """Kept one revision, its autocommit block is all the upgrade does: it commits nothing
    else, so the form is written there."""
    result = fix_source(UNIQUE, Options(settings=Settings(split_concurrent_revisions=False)))
    assert result.new_revisions == ()
    assert "with op.get_context().autocommit_block():" in result.source
    assert "UNIQUE USING INDEX uq_order_code" in result.source
    assert "op.drop_constraint('uq_order_code', 'order', type_='unique')" in result.source


def hook(upgrade: list[ops.MigrateOperation], downgrade: list[ops.MigrateOperation]) -> tuple[
        ops.UpgradeOps, ops.DowngradeOps, RuleContext]:
    up, down = ops.UpgradeOps(upgrade), ops.DowngradeOps(downgrade)
    context = RuleContext(settings=ALONE, dialect=DIALECT, separate_revisions=True)
    fix_revision(up, down, context)
    return up, down, context


def code(*top: ops.MigrateOperation) -> str:
    return render_python_code(ops.UpgradeOps(list(top)),
                              migration_context=MigrationContext.configure(dialect=DIALECT))


def test_the_hook_s_trees_build_the_index_after_the_rest_and_drop_it_first() -> None:
    add = ops.AddColumnOp("order", sa.Column("note", sa.String(50)))
    unique = ops.CreateUniqueConstraintOp("uq_order_code", "order", ["code"])
    up, down, context = hook([ops.ModifyTableOps("order", [add, unique])],
                             [ops.ModifyTableOps("order", [unique.reverse(), add.reverse()])])

    [group, block, attach] = up.ops
    assert isinstance(group, ops.ModifyTableOps) and group.ops == [add]
    # the build outside a transaction; the ALTER attaching it in a transaction after it
    assert isinstance(block, AutocommitBlockOp) and part_of(block) == "post"
    assert part_of(attach) == "post"
    assert ("with op.get_context().autocommit_block():\n"
            "        op.create_index('uq_order_code', 'order', ['code'], unique=True, "
            "postgresql_concurrently=True, if_not_exists=True)\n") in code(block)
    assert ("op.execute('ALTER TABLE \"order\" ADD CONSTRAINT uq_order_code UNIQUE USING "
            "INDEX uq_order_code')") in code(attach)
    # the downgrade drops the constraint first, in the same revision as its build
    [drop, rest] = down.ops
    assert isinstance(drop, ops.DropConstraintOp) and part_of(drop) == "post"
    assert isinstance(rest, ops.ModifyTableOps) and [type(op) for op in rest.ops] \
        == [ops.DropColumnOp]
    assert [f.fixed for f in context.findings if f.rule == RULE] == [True]


def test_a_constraint_the_downgrade_adds_back_is_built_before_the_upgrade_drops_it() -> None:
    """The upgrade drops a unique constraint; its downgrade adds it back to a table with rows:
    built the same way, in the revision before (`<rev>_pre`), whose upgrade drops it."""
    unique = ops.CreateUniqueConstraintOp("uq_order_code", "order", ["code"])
    drop = unique.reverse()
    up, down, _ = hook([ops.ModifyTableOps("order", [drop])],
                       [ops.ModifyTableOps("order", [unique])])
    assert [(type(op), part_of(op)) for op in up.ops] == [(ops.DropConstraintOp, "pre")]
    assert [(type(op).__name__, part_of(op)) for op in down.ops] == [
        ("AutocommitBlockOp", "pre"), ("TableSQLOp", "pre")]


def test_drops_moved_with_their_constraints_keep_their_order() -> None:
    """Found in lemur's history: two drops in the upgrade, their creates in the downgrade in
    the other order; moved to `<rev>_pre`, the drops stay in the order they were written."""
    first, second = (ops.CreateUniqueConstraintOp(name, "certificates", ["name"])
                     for name in ("certificates_name_key", "certificates_name_key1"))
    up, _, _ = hook([first.reverse(), second.reverse()], [second, first])
    assert [op.constraint_name for op in up.ops] == [  # type: ignore[attr-defined]
        "certificates_name_key", "certificates_name_key1"]


# SQLAlchemy 2.0.0 knows no postgresql_nulls_not_distinct (a later 2.0 release added it).
_HAS_NULLS_NOT_DISTINCT = "nulls_not_distinct" in dict(
    postgresql.dialect.construct_arguments or [])[sa.Index]


@pytest.mark.parametrize(("options", "index", "constraint"), [
    ({"deferrable": True, "initially": "deferred"}, "",
     " DEFERRABLE INITIALLY DEFERRED"),
    ({"deferrable": False}, "", " NOT DEFERRABLE"),
    ({"postgresql_include": ["id"]}, ", postgresql_include=['id']", ""),
    pytest.param(
        {"postgresql_include": ["id"], "postgresql_nulls_not_distinct": True},
        ", postgresql_include=['id'], postgresql_nulls_not_distinct=True", "",
        marks=pytest.mark.skipif(not _HAS_NULLS_NOT_DISTINCT,
                                 reason="this SQLAlchemy has no postgresql_nulls_not_distinct")),
], ids=["deferrable", "not deferrable", "include", "include and nulls not distinct"])
def test_options_go_to_the_index_or_the_constraint(
    options: dict[str, Any], index: str, constraint: str
) -> None:
    unique = ops.CreateUniqueConstraintOp("uq_order_code", "order", ["code"], schema="shop",
                                          **options)
    up, _, _ = hook([unique], [])
    rendered = code(*up.ops)
    assert (f"op.create_index('uq_order_code', 'order', ['code'], unique=True, "
            f"schema='shop'{index}, postgresql_concurrently=True, if_not_exists=True)"
            ) in rendered, rendered
    assert ("op.execute('ALTER TABLE shop.\"order\" ADD CONSTRAINT uq_order_code UNIQUE "
            f"USING INDEX uq_order_code{constraint}')") in rendered, rendered


def test_in_a_batch_block_it_is_left_as_written() -> None:
    """render_as_batch: the revision may run on SQLite too, which has no USING INDEX."""
    unique = ops.CreateUniqueConstraintOp("uq_order_code", "order", ["code"])
    up = ops.UpgradeOps([ops.ModifyTableOps("order", [unique])])
    down = ops.DowngradeOps([ops.ModifyTableOps("order", [unique.reverse()])])
    context = RuleContext(settings=ALONE, dialect=DIALECT, separate_revisions=True,
                          in_batch=lambda group: True)
    fix_revision(up, down, context)
    [group] = up.ops
    assert isinstance(group, ops.ModifyTableOps) and group.ops == [unique]
    [finding] = [f for f in context.findings if f.rule == RULE]
    assert (finding.fixed, finding.note) == (False, True)
    assert "a batch block may run on SQLite too" in finding.message
