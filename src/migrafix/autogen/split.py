"""Concurrent index ops as revisions of their own, so a failed build leaves a clean revision.

``autocommit_block()`` commits whatever ran before it. If the index build then fails, that DDL
stays while ``alembic_version`` keeps the old revision, and the next ``upgrade head`` dies
re-running it. With the concurrent drops in a revision before the rest and the concurrent
creates in one after it, every revision is either all-transactional or one autocommit block.
"""

from __future__ import annotations

from alembic.operations import ops

from migrafix.ops import AutocommitBlockOp

__all__ = ["split_concurrent"]


def split_concurrent(script: ops.MigrationScript) -> list[ops.MigrationScript]:
    if len(script.upgrade_ops_list) != 1:
        return [script]  # a multi-database revision: keep it whole, blocks in place
    upgrade, downgrade = script.upgrade_ops, script.downgrade_ops
    assert upgrade is not None and downgrade is not None
    up_first, up_rest, up_last = _ends(upgrade.ops)
    down_first, down_rest, down_last = _ends(downgrade.ops)
    if not up_rest or not (up_first or up_last):
        return [script]
    # The downgrade mirrors the upgrade: its leading drops undo the upgrade's trailing creates.
    if (up_last is None) != (down_first is None) or (up_first is None) != (down_last is None):
        return [script]

    parts: list[tuple[str, str, list[ops.MigrateOperation], list[ops.MigrateOperation]]] = []
    rev_id = script.rev_id or "rev"
    message = script.message or ""
    if up_first is not None and down_last is not None:
        parts.append((f"{rev_id}_pre", f"{message} (drop indexes concurrently)",
                      [up_first], [down_last]))
    parts.append((rev_id, message, up_rest, down_rest))
    if up_last is not None and down_first is not None:
        parts.append((f"{rev_id}_post", f"{message} (create indexes concurrently)",
                      [up_last], [down_first]))

    scripts = []
    head = script.head
    for index, (part_id, part_message, up, down) in enumerate(parts):
        first = index == 0
        scripts.append(ops.MigrationScript(
            part_id,
            ops.UpgradeOps(ops=up, upgrade_token=upgrade.upgrade_token),
            ops.DowngradeOps(ops=down, downgrade_token=downgrade.downgrade_token),
            message=part_message,
            imports=set(script.imports),
            head=head,
            splice=script.splice if first else False,
            branch_label=script.branch_label if first else None,
            version_path=script.version_path,
            depends_on=script.depends_on if first else None,
        ))
        head = part_id
    return scripts


def _ends(
    top: list[ops.MigrateOperation],
) -> tuple[
    AutocommitBlockOp | None, list[ops.MigrateOperation], AutocommitBlockOp | None
]:
    first = top[0] if top and isinstance(top[0], AutocommitBlockOp) else None
    last = top[-1] if top and isinstance(top[-1], AutocommitBlockOp) else None
    first = first if first is not None and _only(first, ops.DropIndexOp) else None
    if last is not None and (last is first or not _only(last, ops.CreateIndexOp)):
        last = None
    rest = [op for op in top if op is not first and op is not last]
    return first, rest, last


def _only(block: AutocommitBlockOp, kind: type[ops.MigrateOperation]) -> bool:
    return all(isinstance(inner, kind) for inner in block.ops)
