"""validating-constraint-add: a foreign key or CHECK added to a table that has rows is added
NOT VALID, then validated in a later transaction (PostgreSQL)."""

from __future__ import annotations

from alembic.operations import ops

from migrafix.blocks import NOT_VALID_DIALECTS, ValidatedLater, add_not_valid
from migrafix.ops import AutocommitBlockOp
from migrafix.revision import Revision, Tree
from migrafix.rules.base import Example, Finding, Rule, RuleContext

__all__ = ["ValidatingConstraintAdd"]

VALIDATE_COMMENT = (
    "migrafix: VALIDATE checks existing rows against the constraints added NOT VALID before, "
    "while writes go on. If it fails, fix those rows and upgrade again.",
)


class ValidatingConstraintAdd(Rule):
    name = "validating-constraint-add"
    summary = "A foreign key or CHECK added to a table with rows scans it under a lock that stops writes."
    why = (
        "On PostgreSQL, `ADD CONSTRAINT ... FOREIGN KEY` checks every row of the table while "
        "it holds SHARE ROW EXCLUSIVE on it and on the table it references, and `ADD "
        "CONSTRAINT ... CHECK` does so under ACCESS EXCLUSIVE; Alembic keeps the lock until "
        "the migration commits. Every write to those tables waits for the scan (measured with "
        "a busy client: 113 ms at 1M rows, 452 ms at 4M; 12 ms and 21 ms in the form below, "
        "tests/benchmark_results.md). migrafix adds them `NOT "
        "VALID` (`create_foreign_key(..., postgresql_not_valid=True)`, "
        "`create_check_constraint(..., postgresql_not_valid=True)`): from then on every write "
        "is checked, and the lock is held for a moment. The rows already there are checked by "
        "`ALTER TABLE ... VALIDATE CONSTRAINT`, which takes SHARE UPDATE EXCLUSIVE (ROW SHARE "
        "on the referenced table): reads and writes go on. The VALIDATE must not run in the "
        "ADD's transaction, where it would scan under the ADD's lock, and `alembic upgrade "
        "head` runs every pending revision in one transaction unless "
        "`transaction_per_migration` is set: so the hook writes it in an autocommit block of a "
        "revision of its own (`<rev>_post`). Should rows violate the constraint, that "
        "revision fails and the database stays at `<rev>`, the constraint NOT VALID; fix the "
        "rows and `alembic upgrade head` validates it.\n\n"
        "`migrafix rewrite` does the same for a revision that has not run, in a `<rev>_post` "
        "file beside it. Where the revision cannot be split (`split_concurrent_revisions = "
        "false`; a file the codemod cannot split, its note says why), or the constraint has "
        "no name, it is left as written, which is "
        "right in one revision, and a `[note]` says so (`migrafix check` does not fail on it). A column added with an inline "
        "`sa.ForeignKey(...)` (`add_column(sa.Column(..., sa.ForeignKey(...)))`, which "
        "autogenerate never writes) is the same hazard: Alembic adds the column, then the "
        "foreign key as a statement of its own, which scans the table under the ADD COLUMN's "
        "ACCESS EXCLUSIVE lock, the new column all NULL or not; it is reported. Tables the "
        "revision creates or drops are left alone (nothing to scan).\n\n"
        "MySQL and MariaDB (InnoDB) have no NOT VALID: adding a foreign key is done in place "
        "only with `foreign_key_checks=0`, which never checks the rows already there; with the "
        "checks on it copies the whole table, and writes wait for the copy. migrafix leaves "
        "those as written: skipping the check silently is not a fix. On a large table whose "
        "rows you know to be valid, `SET foreign_key_checks=0` around the `create_foreign_key` "
        "by hand. SQLite adds a constraint only by copying the table (batch mode): unchanged."
    )
    fix_safety = (
        "Safe: the constraint ends valid and enforced, as written. While it is NOT VALID "
        "(between the two revisions, or after a failed VALIDATE) new writes are checked but "
        "old rows are not; a CHECK also refuses an UPDATE of a row that violates it until the "
        "row is fixed. A revision that already ran (`--naming database`) is history: its lock "
        "is reported as a note, never rewritten."
    )
    options = (
        "`split_concurrent_revisions = false` keeps every revision whole: the constraint is "
        "then left as written. Silence with `ignore = [\"validating-constraint-add\"]` or "
        "`# migrafix: ignore[validating-constraint-add]` on the statement."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        if context.dialect_name not in NOT_VALID_DIALECTS:
            return
        for tree in revision.trees():
            self._apply(revision, tree, context)

    def _apply(self, revision: Revision, tree: Tree, context: RuleContext) -> None:
        replaced: dict[int, list[ops.MigrateOperation]] = {}
        validates: list[ops.MigrateOperation] = []
        # Autogenerate's add_column holds the model's column, ForeignKey and all, and writes
        # the foreign key as a create_foreign_key of its own: that one is the op to fix.
        written_apart = {(*_table(op), column) for _, op in tree.walk()
                         if isinstance(op, ops.CreateForeignKeyOp) for column in op.local_cols}
        for _, op in tree.walk():
            if isinstance(op, ops.AddColumnOp):
                if (op.table_name, op.schema, op.column.name) not in written_apart:
                    self._inline_foreign_key(revision, tree, op, context)
                continue
            if not isinstance(op, (ops.CreateForeignKeyOp, ops.CreateCheckConstraintOp)):
                continue
            table, schema = _table(op)
            if (schema, table) in revision.transient_tables or op.kw.get("postgresql_not_valid"):
                continue
            what = f"{_verb(op)} {op.constraint_name or '(unnamed)'}"
            if context.released:
                context.report(Finding(self.name, tree.direction, table,
                    f"{what} scanned {table} under a lock that stops writes to it; the revision "
                    "has run, so it stays as written", fixed=False, note=True, op=op))
            elif not context.separate_revisions:
                # The form that is right in one revision: a note, not a defect to fail on.
                context.report(Finding(self.name, tree.direction, table,
                    f"{what} scans {table} under a lock that stops writes to it; left as "
                    "written, since in one revision its VALIDATE would scan under the same lock",
                    fixed=False, note=True, op=op,
                    hint=("migrafix's autogenerate hook adds it with postgresql_not_valid=True "
                          "and validates it in an autocommit block of a revision of its own; "
                          "split it so by hand on a large table")))
            elif op.constraint_name is None:
                # Left unnamed on purpose (unnamed-constraint silenced): as written, right in
                # one revision; a note.
                context.report(Finding(self.name, tree.direction, table,
                    f"{what} scans {table} under a lock that stops writes to it; left as "
                    "written, since without a name it cannot be validated later", fixed=False,
                    note=True, op=op, hint="name it to have it added NOT VALID and validated "
                    "in a revision of its own"))
            else:
                not_valid, validate = add_not_valid(op, context.dialect)
                replaced[id(op)] = [not_valid]
                validates.append(validate)
                context.report(Finding(self.name, tree.direction, table,
                    f"{what} added NOT VALID and validated in a revision of its own: the rows "
                    f"of {table} are checked while writes go on", fixed=True, op=op))
        tree.replace_all(replaced)
        if validates:
            block = AutocommitBlockOp(validates, VALIDATE_COMMENT, purpose="validate constraints")
            revision.run_after_main(tree, [block], [])

    def _inline_foreign_key(
        self, revision: Revision, tree: Tree, add: ops.AddColumnOp, context: RuleContext
    ) -> None:
        """``add_column(sa.Column(..., sa.ForeignKey(...)))``: Alembic adds the foreign key
        after the column, as an ALTER of its own that scans the table (PostgreSQL skips the
        scan only for a REFERENCES inside the ADD COLUMN, which Alembic does not write)."""
        if not add.column.foreign_keys or (add.schema, add.table_name) in \
                revision.transient_tables:
            return
        table, column = add.table_name, add.column.name
        if context.released:
            context.report(Finding(self.name, tree.direction, table,
                f"the ForeignKey of {column} was added after the column, scanning {table} "
                "under its ACCESS EXCLUSIVE lock; the revision has run, so it stays as written",
                fixed=False, note=True, op=add))
            return
        context.report(Finding(self.name, tree.direction, table,
            f"the ForeignKey of {column} is added after the column, scanning {table} under its "
            "ACCESS EXCLUSIVE lock", fixed=False, note=not context.separate_revisions, op=add,
            hint=("add the column without it, then create_foreign_key(..., "
                  "postgresql_not_valid=True), and VALIDATE CONSTRAINT in an autocommit block "
                  "of a revision of its own, as migrafix's autogenerate hook writes it")))


def _table(op: ValidatedLater) -> tuple[str, str | None]:
    if isinstance(op, ops.CreateForeignKeyOp):
        return op.source_table, op.kw.get("source_schema")
    return op.table_name, op.schema


def _verb(op: ValidatedLater) -> str:
    return ("create_foreign_key" if isinstance(op, ops.CreateForeignKeyOp)
            else "create_check_constraint")


ValidatingConstraintAdd.examples = (
    Example(
        title="a foreign key on a column that holds values",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("invoice_id", sa.Integer),
            )
        """,
        after="""
            metadata = sa.MetaData()
            invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
            order = sa.Table(
                "order", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoice.id")),
            )
        """,
        autogenerated_upgrade=r"""
            op.create_foreign_key(None, 'order', 'invoice', ['invoice_id'], ['id'])
        """,
        fixed_upgrade=r"""
            # revision rev
            op.create_foreign_key(op.f('fk_order_invoice_id_invoice'), 'order', 'invoice', ['invoice_id'], ['id'], postgresql_not_valid=True)

            # revision rev_post
            # migrafix: VALIDATE checks existing rows against the constraints added NOT VALID before,
            # while writes go on. If it fails, fix those rows and upgrade again.
            with op.get_context().autocommit_block():
                op.execute('ALTER TABLE "order" VALIDATE CONSTRAINT fk_order_invoice_id_invoice')
        """,
        fixed_downgrade=r"""
            # revision rev_post
            pass

            # revision rev
            op.drop_constraint(op.f('fk_order_invoice_id_invoice'), 'order', type_='foreignkey')
        """,
    ),
)
