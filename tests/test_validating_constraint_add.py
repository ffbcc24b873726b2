"""validating-constraint-add where no database is needed: what the codemod writes and reports
for files, what it leaves alone, and the forms the hook's trees get. Its effect on a real
PostgreSQL (locks, a failed VALIDATE, the rerun) is in tests/test_lock_behaviour.py."""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

from migrafix.codemod import fix_source
from migrafix.codemod.api import Options
from migrafix.engine import fix_revision
from migrafix.ops import AutocommitBlockOp
from migrafix.revision import part_of
from migrafix.rules import RuleContext
from migrafix.settings import Settings

RULE = "validating-constraint-add"


def revision(upgrade: str, downgrade: str = "pass") -> str:
    return (
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        "revision = 'b2'\ndown_revision = 'a1'\n\n\n"
        f"def upgrade():\n{textwrap.indent(textwrap.dedent(upgrade).strip(), '    ')}\n\n\n"
        f"def downgrade():\n{textwrap.indent(textwrap.dedent(downgrade).strip(), '    ')}\n"
    )


FK = revision(
    "op.create_foreign_key('fk_order_invoice', 'order', 'invoice', ['invoice_id'], ['id'])",
    "op.drop_constraint('fk_order_invoice', 'order', type_='foreignkey')",
)
CHECK = revision("op.create_check_constraint('ck_order_price', 'order', 'price > 0')",
                 "op.drop_constraint('ck_order_price', 'order', type_='check')")


# The lock step lock-timeout writes before each transaction is that rule's business
# (tests/test_lock_timeout.py): silenced here, so these files show this rule's change alone.
ALONE = Settings(ignore=("lock-timeout",))
ONE_REVISION = ALONE.merged({"split_concurrent_revisions": False}, "test")


def findings(source: str, **options: object) -> list[tuple[str, bool, bool]]:
    """(message, fixable, note) of the rule's findings; the file must come back unchanged."""
    options.setdefault("settings", ALONE)
    result = fix_source(source, Options(**options))  # type: ignore[arg-type]
    assert result.source == source and result.new_revisions == ()
    return [(f.message, f.fixable, f.note) for f in result.findings if f.rule == RULE]


@pytest.mark.parametrize(("source", "statement", "validate"), [
    (FK, "op.create_foreign_key('fk_order_invoice', 'order', 'invoice', ['invoice_id'], ['id'], "
         "postgresql_not_valid=True)", "fk_order_invoice"),
    (CHECK, "op.create_check_constraint('ck_order_price', 'order', 'price > 0', "
            "postgresql_not_valid=True)", "ck_order_price"),
], ids=["foreign key", "check"])
def test_a_file_that_has_not_run_is_split(source: str, statement: str, validate: str) -> None:
    """The statement edited in place, the VALIDATE in a `<rev>_post` file beside it."""
    result = fix_source(source, Options(ALONE))
    assert statement in result.source
    assert result.source.replace(", postgresql_not_valid=True", "") == source
    [post] = result.new_revisions
    assert (post.part, post.revision) == ("post", "b2_post")
    assert post.source is not None
    assert "with op.get_context().autocommit_block():\n        op.execute(" \
        f"'ALTER TABLE \"order\" VALIDATE CONSTRAINT {validate}')" in post.source
    assert [(f.fixable, f.note) for f in result.findings if f.rule == RULE] == [(True, False)]
    again = fix_source(result.source, Options(ALONE))  # a second run changes nothing
    assert again.source == result.source and again.new_revisions == ()


@pytest.mark.parametrize("source", [FK, CHECK], ids=["foreign key", "check"])
def test_one_revision_keeps_the_form_that_is_right_in_one_with_a_note(source: str) -> None:
    [(message, fixable, note)] = findings(source, settings=ONE_REVISION)
    assert (fixable, note) == (False, True)
    assert "under a lock that stops writes" in message
    assert "left as written, since in one revision its VALIDATE would scan under the same lock" \
        in message
    assert "postgresql_not_valid=True" in message  # how to do it by hand


def test_a_revision_that_ran_is_history() -> None:
    [(message, fixable, note)] = findings(FK, naming="database")
    assert (fixable, note) == (False, True)
    assert "the revision has run, so it stays as written" in message


def test_silenced_on_the_statement_and_by_setting() -> None:
    silenced = FK.replace("['id'])\n", "['id'])  # migrafix: ignore[validating-constraint-add]\n",
                          1)
    assert findings(silenced) == []
    # also once unnamed-constraint, which runs first, has named it
    unnamed = FK.replace("'fk_order_invoice'", "None").replace(
        "['id'])\n", "['id'])  # migrafix: ignore[validating-constraint-add]\n", 1)
    result = fix_source(unnamed, Options(ALONE))
    assert "op.f('fk_order_invoice_id_invoice')" in result.source
    assert "postgresql_not_valid" not in result.source and result.new_revisions == ()
    assert [f.rule for f in result.findings] == ["unnamed-constraint"] * 2
    assert findings(FK, settings=ALONE.merged({"ignore": [RULE, "lock-timeout"]}, "test")) == []


@pytest.mark.parametrize("dialect", ["mysql", "mariadb", "sqlite"])
def test_other_databases_are_left_alone(dialect: str) -> None:
    assert findings(FK, dialect=dialect) == []


def test_tables_the_revision_creates_are_left_alone() -> None:
    source = revision("""
        op.create_table('order', sa.Column('id', sa.Integer(), primary_key=True),
                        sa.Column('invoice_id', sa.Integer(), sa.ForeignKey('invoice.id')))
        op.create_foreign_key('fk_order_invoice', 'order', 'invoice', ['invoice_id'], ['id'])
        op.create_check_constraint('ck_order_id', 'order', 'id > 0')
    """, "op.drop_table('order')")
    assert findings(source) == []


def test_a_column_added_with_its_foreign_key_is_reported() -> None:
    """Alembic adds the column, then the foreign key as an ALTER of its own, which scans."""
    source = revision("op.add_column('order', sa.Column('invoice_id', sa.Integer(), "
                      "sa.ForeignKey('invoice.id')))", "op.drop_column('order', 'invoice_id')")
    [(message, fixable, note)] = findings(source, settings=ONE_REVISION)
    assert "the ForeignKey of invoice_id is added after the column" in message
    assert (fixable, note) == (False, True)
    [(_, fixable, note)] = findings(source)  # where it could be split: to fix by hand
    assert (fixable, note) == (False, False)
    assert findings(source.replace("sa.ForeignKey('invoice.id')", "nullable=True")) == []


def test_the_hook_s_trees_get_not_valid_and_a_validate_after_the_rest() -> None:
    """A CHECK (from another rewriter: autogenerate writes none) and a foreign key in trees that
    become revisions of their own: NOT VALID in place, each VALIDATE in one autocommit block
    marked for the revision after."""
    dialect = sa.dialects.postgresql.dialect()
    upgrade = ops.UpgradeOps([ops.ModifyTableOps("order", [
        ops.CreateCheckConstraintOp("ck_order_price", "order", "price > 0"),
        ops.CreateForeignKeyOp("fk_order_invoice", "order", "invoice", ["invoice_id"], ["id"],
                               ondelete="CASCADE"),
    ])])
    downgrade = ops.DowngradeOps([])
    context = RuleContext(settings=ALONE, dialect=dialect, separate_revisions=True)
    fix_revision(upgrade, downgrade, context)

    [group, block] = upgrade.ops
    assert isinstance(block, AutocommitBlockOp) and part_of(block) == "post"
    migration = MigrationContext.configure(dialect=dialect)
    code = render_python_code(ops.UpgradeOps([group, block]), migration_context=migration)
    assert "op.create_check_constraint('ck_order_price', 'order', 'price > 0', " \
        "postgresql_not_valid=True)" in code
    assert "op.create_foreign_key('fk_order_invoice', 'order', 'invoice', ['invoice_id'], " \
        "['id'], ondelete='CASCADE', postgresql_not_valid=True)" in code
    assert "op.execute('ALTER TABLE \"order\" VALIDATE CONSTRAINT ck_order_price')" in code
    assert "op.execute('ALTER TABLE \"order\" VALIDATE CONSTRAINT fk_order_invoice')" in code
    assert [f.fixed for f in context.findings if f.rule == RULE] == [True, True]
