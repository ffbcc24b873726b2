"""Runs the enabled rules, in order, over one revision's upgrade and downgrade trees.

Front ends build the trees and the context; the engine knows nothing of where they came from.
"""

from __future__ import annotations

from alembic.operations import ops

from migrafix.revision import Revision
from migrafix.rules import ALL_RULES, Finding, RuleContext

__all__ = ["fix_revision"]


def fix_revision(
    upgrade: ops.OpContainer, downgrade: ops.OpContainer, context: RuleContext
) -> list[Finding]:
    """Rewrite both trees in place; return what the rules found (fixed or not)."""
    revision = Revision.from_ops(upgrade, downgrade)
    start = len(context.findings)
    for rule in ALL_RULES:
        if context.settings.rule_enabled(rule.name):
            rule.apply(revision, context)
    return context.findings[start:]
