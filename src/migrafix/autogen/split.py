"""Autocommit work as revisions of their own, so a failure leaves the database at a clean revision.

``autocommit_block()`` commits whatever ran before it. If a statement in the block then fails
(an index build over duplicates, a backfill's typo, a killed process), that DDL stays while
``alembic_version`` keeps the old revision, and the next ``upgrade head`` dies re-running it.
Rules mark the ops that must run apart (``revision.in_part``): "pre" ops (concurrent index
drops) become ``<rev>_pre``, "post" ops (batched backfills, concurrent index builds) become
``<rev>_post``. Every revision is then either all-transactional or autocommit work that can be
rerun, and ``alembic upgrade head`` after a failure picks up where it stopped.

The cut (``cut_parts``) and the parts' messages (``part_message``) are shared with the codemod,
which writes the same parts as files beside a revision file (codemod/fixer.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.operations import ops

from migrafix.ops import AutocommitBlockOp
from migrafix.revision import Part, part_of

__all__ = ["Cut", "cut_parts", "part_message", "split_revision"]


@dataclass(frozen=True)
class Cut:
    """One revision's top-level ops as the revisions they run in. The upgrade runs pre, main,
    post; the downgrade runs them backwards (post's undo first)."""

    upgrade: dict[Part | None, list[ops.MigrateOperation]]  # None: the main revision
    downgrade: dict[Part | None, list[ops.MigrateOperation]]

    def parts(self) -> list[Part]:
        """The parts that are revisions of their own, in the order they run on upgrade."""
        return [part for part in ("pre", "post") if self.upgrade[part] or self.downgrade[part]]

    def message(self, message: str, part: Part) -> str:
        return part_message(message, self.upgrade[part] or self.downgrade[part])


def cut_parts(
    upgrade: list[ops.MigrateOperation], downgrade: list[ops.MigrateOperation]
) -> Cut | None:
    """The revision cut on its parts' marks; None when it stays whole: nothing is marked, or
    nothing would be left in the main revision (autocommit work alone commits nothing else)."""
    up_pre, up_main, up_post = _cut(upgrade, first="pre", last="post")
    down_post, down_main, down_pre = _cut(downgrade, first="post", last="pre")
    if not (up_main or down_main) or not (up_pre or down_pre or up_post or down_post):
        return None
    return Cut({"pre": up_pre, None: up_main, "post": up_post},
               {"pre": down_pre, None: down_main, "post": down_post})


def split_revision(script: ops.MigrationScript) -> list[ops.MigrationScript]:
    if len(script.upgrade_ops_list) != 1:
        return [script]  # a multi-database revision: keep it whole, blocks in place
    upgrade, downgrade = script.upgrade_ops, script.downgrade_ops
    assert upgrade is not None and downgrade is not None
    cut = cut_parts(upgrade.ops, downgrade.ops)
    if cut is None:
        return [script]

    rev_id = script.rev_id or "rev"
    message = script.message or ""
    parts: list[tuple[str, str, Part | None]] = []
    if "pre" in cut.parts():
        parts.append((f"{rev_id}_pre", cut.message(message, "pre"), "pre"))
    parts.append((rev_id, message, None))
    if "post" in cut.parts():
        parts.append((f"{rev_id}_post", cut.message(message, "post"), "post"))

    scripts = []
    head = script.head
    for index, (part_id, part_message_, part) in enumerate(parts):
        first = index == 0
        scripts.append(ops.MigrationScript(
            part_id,
            ops.UpgradeOps(ops=cut.upgrade[part], upgrade_token=upgrade.upgrade_token),
            ops.DowngradeOps(ops=cut.downgrade[part], downgrade_token=downgrade.downgrade_token),
            message=part_message_,
            imports=set(script.imports),
            head=head,
            splice=script.splice if first else False,
            branch_label=script.branch_label if first else None,
            version_path=script.version_path,
            depends_on=script.depends_on if first else None,
        ))
        head = part_id
    return scripts


def _cut(
    top: list[ops.MigrateOperation], *, first: Part, last: Part
) -> tuple[list[ops.MigrateOperation], list[ops.MigrateOperation], list[ops.MigrateOperation]]:
    """``top`` as its leading ops marked ``first``, the rest, and its trailing ops marked
    ``last``."""
    start = 0
    while start < len(top) and part_of(top[start]) == first:
        start += 1
    end = len(top)
    while end > start and part_of(top[end - 1]) == last:
        end -= 1
    return top[:start], top[start:end], top[end:]


def part_message(message: str, part: list[ops.MigrateOperation]) -> str:
    """The revision's message with what its part does: "add total (backfill order.total)"."""
    purposes = [op.purpose for op in part if isinstance(op, AutocommitBlockOp) and op.purpose]
    what = ", ".join(dict.fromkeys(purposes)) or "autocommit"
    return f"{message} ({what})"
