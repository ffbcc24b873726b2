"""Runs the enabled rules, in order, over one revision's upgrade and downgrade trees.

Front ends build the trees and the context; the engine knows nothing of where they came from.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from alembic.operations import ops

from migrafix.revision import Revision, origin_of
from migrafix.rules import ALL_RULES, Finding, RuleContext

__all__ = ["fix_revision"]


def fix_revision(
    upgrade: ops.OpContainer,
    downgrade: ops.OpContainer,
    context: RuleContext,
    hidden: Callable[[str], Collection[ops.MigrateOperation]] | None = None,
) -> list[Finding]:
    """Rewrite both trees in place; return what the rules found (fixed or not).

    ``hidden(rule_name)`` names ops that rule must not see (suppressed in the file): they are
    swapped for placeholders, which no rule acts on, while the rule runs.
    """
    revision = Revision.from_ops(upgrade, downgrade)
    start = len(context.findings)
    for rule in ALL_RULES:
        if not context.settings.rule_enabled(rule.name):
            continue
        masked = _mask(revision, set(map(id, hidden(rule.name)))) if hidden else {}
        rule.apply(revision, context)
        if masked:
            _unmask(revision, masked)
    return context.findings[start:]


class HiddenOp(ops.MigrateOperation):
    """Stands in for an op a rule must not see."""

    ops: tuple[ops.MigrateOperation, ...] = ()  # no diff for `alembic check`


def _containers(revision: Revision) -> list[list[ops.MigrateOperation]]:
    lists = []
    for tree in revision.trees():
        lists.append(tree.top)
        lists += [op.ops for op in tree.top if hasattr(op, "ops") and isinstance(op.ops, list)]
    return lists


def _mask(revision: Revision, hidden: set[int]) -> dict[int, ops.MigrateOperation]:
    masked: dict[int, ops.MigrateOperation] = {}
    for holder in _containers(revision):
        for index, op in enumerate(holder):
            # or what an earlier rule made of it (a name given): still the silenced statement
            if id(op) in hidden or id(origin_of(op)) in hidden:
                stand_in = HiddenOp()
                masked[id(stand_in)] = op
                holder[index] = stand_in
    return masked


def _unmask(revision: Revision, masked: dict[int, ops.MigrateOperation]) -> None:
    for holder in _containers(revision):
        for index, op in enumerate(holder):
            if id(op) in masked:
                holder[index] = masked[id(op)]
