"""One revision as rules see it: its upgrade and downgrade operation trees.

Rules never mutate an op they were given (it may hold the user's model objects); they replace
it in its container through the helpers here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from alembic.operations import ops

__all__ = [
    "Direction",
    "Part",
    "Revision",
    "Tree",
    "derived",
    "every_op",
    "in_part",
    "origin_of",
    "part_of",
    "replace_in",
]

Direction = Literal["upgrade", "downgrade"]
# The revision of its own an op belongs in, written before ("pre") or after ("post") the rest
# of its revision: the hook splits them off (autogen/split.py) so that an autocommit block
# never commits work that a later failure would leave without its alembic_version row.
Part = Literal["pre", "post"]


@dataclass
class Tree:
    """The ops of ``upgrade()`` or ``downgrade()``: top level ops, some of them
    ``ModifyTableOps`` holding the ops of one table."""

    direction: Direction
    container: ops.OpContainer

    @property
    def top(self) -> list[ops.MigrateOperation]:
        return self.container.ops

    def table_groups(self) -> Iterator[ops.ModifyTableOps]:
        for op in list(self.top):
            if isinstance(op, ops.ModifyTableOps):
                yield op

    def walk(self) -> Iterator[tuple[list[ops.MigrateOperation], ops.MigrateOperation]]:
        """Every leaf op with the list that holds it, in order, one level into table groups."""
        for op in list(self.top):
            if isinstance(op, ops.ModifyTableOps):
                for inner in list(op.ops):
                    yield op.ops, inner
            else:
                yield self.top, op

    def part_after_main(self) -> Part:
        """The part an op that must run after this tree's other ops belongs to: the upgrade's
        last revision is "post"; the downgrade runs the revisions backwards, so its last
        ops undo "pre"."""
        return "post" if self.direction == "upgrade" else "pre"

    def part_before_main(self) -> Part:
        return "pre" if self.direction == "upgrade" else "post"

    def created_tables(self) -> set[tuple[str | None, str]]:
        return {_table_key(op) for op in self.top if _table_effect(op) == "create"}

    def replace_all(self, replacements: Mapping[int, Sequence[ops.MigrateOperation]]) -> None:
        """Put ``replacements[id(op)]`` where each such ``op`` is, at the top or one level into
        table groups, in one sweep per list. For a whole pass of replacements: ``replace_in``
        scans the list each time, and over a revision of 1,000 tables that goes quadratic."""
        if not replacements:
            return
        for group in self.table_groups():
            group.ops[:] = _swept(group.ops, replacements)
        self.top[:] = _swept(self.top, replacements)


def _swept(
    holder: list[ops.MigrateOperation], replacements: Mapping[int, Sequence[ops.MigrateOperation]]
) -> list[ops.MigrateOperation]:
    return [new for op in holder for new in replacements.get(id(op), (op,))]


def every_op(container: ops.OpContainer) -> Iterator[ops.MigrateOperation]:
    """Each op of ``container`` and, after a table group or a block (an op whose ``ops`` is a
    list), the ops inside it."""
    for op in container.ops:
        yield op
        inner = getattr(op, "ops", None)
        if isinstance(inner, list):
            yield from inner


def replace_in(
    holder: list[ops.MigrateOperation],
    old: ops.MigrateOperation,
    new: Sequence[ops.MigrateOperation],
) -> None:
    """Put ``new`` where ``old`` is (by identity: ops do not compare by value). One op: for a
    pass over the whole tree, ``Tree.replace_all``."""
    for index, op in enumerate(holder):
        if op is old:
            holder[index : index + 1] = list(new)
            return
    raise ValueError(f"{old!r} is not in this container")


def _table_effect(op: ops.MigrateOperation) -> Literal["create", "drop"] | None:
    """Whether ``op`` creates or drops a table. An op may say so without being a
    Create/DropTableOp: the codemod's opaque ``op.create_table("t", <unreadable>)``."""
    if isinstance(op, ops.CreateTableOp):
        return "create"
    if isinstance(op, ops.DropTableOp):
        return "drop"
    effect = getattr(op, "table_effect", None)
    return effect if effect in ("create", "drop") else None


def _table_key(op: ops.MigrateOperation) -> tuple[str | None, str]:
    return (getattr(op, "schema", None), str(getattr(op, "table_name", "")))


_ORIGIN = "_migrafix_origin"
_Op = TypeVar("_Op", bound=ops.MigrateOperation)


def derived(origin: ops.MigrateOperation, new: _Op) -> _Op:
    """Mark ``new`` as a changed version of ``origin`` (or of what ``origin`` came from).

    The codemod edits the original statement in place for such an op (a name, a keyword)
    rather than re-rendering it: Alembic's rendering loses what it does not model.
    """
    setattr(new, _ORIGIN, origin_of(origin))
    return new


def origin_of(op: ops.MigrateOperation) -> ops.MigrateOperation:
    """The op as it was read, before any rule derived ``op`` from it."""
    origin = getattr(op, _ORIGIN, None)
    return origin if origin is not None else op


_PART = "_migrafix_part"


def in_part(op: _Op, part: Part) -> _Op:
    """Mark ``op`` (a top level op) as belonging to the revision of its own ``part`` names."""
    setattr(op, _PART, part)
    return op


def part_of(op: ops.MigrateOperation) -> Part | None:
    part: Part | None = getattr(op, _PART, None)
    return part


@dataclass
class Revision:
    """The two trees of one revision, and what is known about the revision as a whole."""

    upgrade: Tree
    downgrade: Tree
    # Tables this revision creates or drops, in either direction: an index on such a table is
    # built on an empty table (or goes with it), so the same decision holds on both sides.
    transient_tables: set[tuple[str | None, str]] = field(default_factory=set)

    @classmethod
    def from_ops(cls, upgrade: ops.OpContainer, downgrade: ops.OpContainer) -> Revision:
        revision = cls(Tree("upgrade", upgrade), Tree("downgrade", downgrade))
        for tree in revision.trees():
            for op in tree.top:
                if _table_effect(op) is not None:
                    revision.transient_tables.add(_table_key(op))
        return revision

    def trees(self) -> tuple[Tree, Tree]:
        return (self.upgrade, self.downgrade)

    def other(self, tree: Tree) -> Tree:
        return self.downgrade if tree is self.upgrade else self.upgrade

    def run_after_main(
        self, tree: Tree, ops_: list[ops.MigrateOperation], undo: list[ops.MigrateOperation]
    ) -> None:
        """Append ``ops_`` to ``tree`` in the part that runs after its other ops, and put
        ``undo`` first in the other tree, in the same part: the other direction runs that
        part's revision first."""
        part = tree.part_after_main()
        tree.top.extend(in_part(op, part) for op in ops_)
        self.other(tree).top[:0] = [in_part(op, part) for op in undo]
