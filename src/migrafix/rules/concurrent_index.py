"""concurrent-index: CONCURRENTLY index builds and drops run outside the transaction."""

from __future__ import annotations

import copy

from alembic.operations import ops

from migrafix.ops import AutocommitBlockOp
from migrafix.revision import Revision, Tree, replace_in
from migrafix.rules.base import Finding, Rule, RuleContext, table_label

__all__ = ["AUTOCOMMIT_COMMENT", "ConcurrentIndex"]

AUTOCOMMIT_COMMENT = (
    "migrafix: PostgreSQL cannot create or drop an index CONCURRENTLY inside a transaction.",
    "autocommit_block() first COMMITs every statement before it in this migration run: if a",
    "statement in the block fails, those stay applied while alembic_version is not updated.",
    "After a failed build, drop the INVALID index it leaves, fix the cause, and upgrade again.",
)


class ConcurrentIndex(Rule):
    name = "concurrent-index"
    summary = "An index is built or dropped CONCURRENTLY inside the migration's transaction."
    why = (
        "PostgreSQL refuses `CREATE INDEX CONCURRENTLY` (and `DROP INDEX CONCURRENTLY`) inside "
        "a transaction block, and Alembic runs each migration in one. migrafix moves these "
        "ops into `with op.get_context().autocommit_block():`, creates after the table's other "
        "ops (their columns must exist) and drops before them (dropping a column drops its "
        "index, and the DROP INDEX would then fail). `autocommit_block()` commits what ran "
        "before it: if the build then fails, that DDL stays while `alembic_version` is not "
        "bumped, and the next `upgrade head` dies re-running it. So when a revision has other "
        "ops, the hook writes the concurrent drops and creates as revisions of their own, "
        "before and after it: a failed build leaves the database at a clean revision."
    )
    fix_safety = (
        "Some projects already run migrations on an AUTOCOMMIT connection or open their own "
        "transaction in env.py: silence this rule there (`ignore = [\"concurrent-index\"]`). "
        "Only PostgreSQL is touched; other dialects ignore `postgresql_concurrently`."
    )
    options = (
        "`concurrent_indexes = \"always\"` makes every index created or dropped on a table "
        "that exists before and after the revision concurrent. "
        "`split_concurrent_revisions = false` keeps everything in one revision."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        if context.dialect_name != "postgresql":
            return
        for tree in revision.trees():
            self._move(tree, revision, context)

    def _move(self, tree: Tree, revision: Revision, context: RuleContext) -> None:
        always = context.settings.concurrent_indexes == "always"
        creates: list[ops.MigrateOperation] = []
        drops: list[ops.MigrateOperation] = []
        for holder, op in list(tree.walk()):
            if not isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)):
                continue
            if not op.kw.get("postgresql_concurrently"):
                if not always or (op.schema, op.table_name) in revision.transient_tables:
                    continue
                op_copy = copy.copy(op)
                op_copy.kw = {**op.kw, "postgresql_concurrently": True}
                replace_in(holder, op, [op_copy])
                op = op_copy
            replace_in(holder, op, [])
            (creates if isinstance(op, ops.CreateIndexOp) else drops).append(op)
            verb = "create_index" if isinstance(op, ops.CreateIndexOp) else "drop_index"
            context.report(Finding(self.name, tree.direction, table_label(op),
                f"{verb} {op.index_name} CONCURRENTLY moved into an autocommit block", fixed=True))
        tree.top[:] = [op for op in tree.top
                       if not (isinstance(op, ops.ModifyTableOps) and not op.ops)]
        if drops:
            tree.top.insert(0, AutocommitBlockOp(drops, AUTOCOMMIT_COMMENT))
        if creates:
            tree.top.append(AutocommitBlockOp(creates, AUTOCOMMIT_COMMENT))
