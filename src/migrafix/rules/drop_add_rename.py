"""drop-add-rename: a drop + add pair that the user says is a rename becomes a rename."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

from migrafix.ops import CommentOp, LockMode, TableSQLOp
from migrafix.revision import Revision, Tree, derived, replace_in
from migrafix.rules.base import Example, Finding, Rule, RuleContext, table_spellings
from migrafix.settings import ColumnRename, TableRename

__all__ = ["DropAddRename"]


@dataclass(frozen=True)
class _Plan:
    """The renames of one revision, upgrade side; the downgrade applies them inverted."""

    columns: frozenset[ColumnRename]
    tables: frozenset[TableRename]

    def inverted(self) -> _Plan:
        table_back = {r.new: r.old for r in self.tables}  # under each spelling of the table
        table_back |= {f"{r.schema}.{r.new}": f"{r.schema}.{r.old}" for r in self.tables
                       if r.schema is not None}
        return _Plan(
            frozenset(
                ColumnRename(table_back.get(r.table, r.table), r.new, r.old) for r in self.columns
            ),
            frozenset(TableRename(r.new, r.old, r.schema) for r in self.tables),
        )


class DropAddRename(Rule):
    name = "drop-add-rename"
    summary = "A renamed column or table is written as drop + add: the data is lost."
    why = (
        "Autogenerate cannot tell a rename from a drop and an add, so it writes "
        "`drop_column` + `add_column` (or `drop_table` + `create_table`). The upgrade succeeds "
        "and every value of the old column is gone. migrafix never guesses: most drop + add "
        "pairs in real histories are real data migrations. When you say a pair is a rename, it "
        "becomes `op.alter_column(..., new_column_name=...)` carrying the column's existing "
        "type, nullability, server default and comment, and its AUTO_INCREMENT on MySQL "
        "(`CHANGE COLUMN` needs all of them, or a NOT NULL column silently becomes nullable "
        "and a key stops counting), and the downgrade renames it "
        "back. A pair that only looks like a rename (same type) is left as it is, with a "
        "comment in the revision and a warning naming the `-x rename=...` that would ask. "
        "`migrafix check` says so only for a revision that has not run yet (see `--naming`): "
        "in one that ran, the data is gone whatever the file says now.\n\n"
        "A rename keeps what the database carries over it. Autogenerate also drops and "
        "creates again each index, unique constraint and foreign key over the renamed column "
        "or table: an index build, or a foreign key's scan of the table, under a lock that "
        "stops writes, for what PostgreSQL and MySQL already moved to the new name. Such a "
        "pair, when only the rename tells its two halves apart, is folded away; where the "
        "model's name differs (a naming convention's name holds the column's or table's), it "
        "becomes a rename: `ALTER TABLE ... RENAME CONSTRAINT` or `ALTER INDEX ... RENAME TO` "
        "on PostgreSQL, `ALTER TABLE ... RENAME INDEX` on MySQL and MariaDB (which cannot "
        "rename a foreign key: one whose name changes is dropped and created as autogenerate "
        "wrote it), and the downgrade renames it back. A renamed table's unique, foreign key "
        "and check constraints are renamed, created or dropped to match the model. SQLite "
        "(batch mode copies the table with its indexes anyway) is left as written."
    )
    fix_safety = (
        "Safe when the pair really is a rename, which only you can say. If the new column "
        "also differs in type, nullability, server default or comment, those changes are made "
        "on the renamed column; a type change may still need a `USING` clause on PostgreSQL."
    )
    options = (
        "Ask for a rename with `info={\"renamed_from\": \"old\"}` on the new column or table, "
        "`-x rename=table.old:new` / `-x rename=old_table:new_table` (repeatable; a table of "
        "one schema: `schema.old_table:schema.new_table`), or the "
        "`renames` setting. `interactive = true` asks at the terminal for each look-alike pair."
    )

    def apply(self, revision: Revision, context: RuleContext) -> None:
        plan = self._plan(revision, context)
        if context.report_unmatched_renames:
            self._report_unmatched(revision.upgrade, plan, context)
        for tree, tree_plan in ((revision.upgrade, plan), (revision.downgrade, plan.inverted())):
            renamed = _Renamed()
            for rename in tree_plan.tables:
                self._rename_table(revision, tree, rename, renamed, context)
            for group in tree.table_groups():
                self._rename_columns(tree, group, tree_plan, renamed, context)
            if renamed and context.dialect_name in _FOLDING_DIALECTS and not context.released:
                self._fold_rebuilds(tree, renamed, context)
            if renamed.tables:
                _references_after_renames(tree)

    # --- what was asked -------------------------------------------------------------------

    def _plan(self, revision: Revision, context: RuleContext) -> _Plan:
        settings = context.settings
        columns = set(settings.column_renames)
        tables = set(settings.table_renames)
        for op in revision.upgrade.top:
            if isinstance(op, ops.CreateTableOp) and op.info.get("renamed_from"):
                tables.add(TableRename(str(op.info["renamed_from"]), op.table_name, op.schema))
        for group in revision.upgrade.table_groups():
            for op in group.ops:
                if isinstance(op, ops.AddColumnOp) and op.column.info.get("renamed_from"):
                    old = str(op.column.info["renamed_from"])
                    columns.add(ColumnRename(group.table_name, old, op.column.name))
        for op in revision.upgrade.top:  # columns of a renamed table may carry renamed_from
            if isinstance(op, ops.CreateTableOp):
                for item in op.columns:
                    if isinstance(item, sa.Column) and item.info.get("renamed_from"):
                        old = str(item.info["renamed_from"])
                        columns.add(ColumnRename(op.table_name, old, item.name))
        if context.ask is not None:
            columns |= self._ask(revision.upgrade, columns, context)
        return _Plan(frozenset(columns), frozenset(tables))

    def _ask(
        self, tree: Tree, asked: set[ColumnRename], context: RuleContext
    ) -> set[ColumnRename]:
        assert context.ask is not None
        confirmed = set()
        for group in tree.table_groups():
            for drop, add in _look_alikes(group, asked, context):
                type_text = _type_text(add.column.type, context)
                question = (
                    f"Was {group.table_name}.{drop.column_name} renamed to "
                    f"{group.table_name}.{add.column.name} ({type_text})? [y/N] "
                )
                if context.ask(question):
                    confirmed.add(ColumnRename(group.table_name, drop.column_name, add.column.name))
        return confirmed

    def _report_unmatched(self, tree: Tree, plan: _Plan, context: RuleContext) -> None:
        """A rename that was asked for but matches nothing is most likely a typo: say so."""
        pairs = {
            (table, _column_name(op))
            for group in tree.table_groups()
            for op in group.ops
            if isinstance(op, (ops.DropColumnOp, ops.AddColumnOp))
            for table in table_spellings(group.table_name, group.schema)
        }
        for op in tree.top:
            if isinstance(op, (ops.CreateTableOp, ops.DropTableOp)):
                pairs.add((op.table_name, ""))
        renamed_tables = {spelling for r in plan.tables for name in (r.old, r.new)
                          for spelling in table_spellings(name, r.schema)}
        for rename in plan.columns:
            if rename.table in renamed_tables:
                continue
            if (rename.table, rename.old) not in pairs or (rename.table, rename.new) not in pairs:
                context.report(Finding(self.name, tree.direction, rename.table,
                    f"rename {rename} was asked for, but this revision does not drop "
                    f"{rename.table}.{rename.old} and add {rename.table}.{rename.new}",
                    fixed=False))
        for table_rename in plan.tables:
            if not _drops_and_creates(tree, table_rename):
                context.report(Finding(self.name, tree.direction, table_rename.old,
                    f"rename {table_rename} was asked for, but this revision does not drop table "
                    f"{table_rename.old} and create table {table_rename.new} in one schema",
                    fixed=False))

    # --- columns --------------------------------------------------------------------------

    def _rename_columns(
        self, tree: Tree, group: ops.ModifyTableOps, plan: _Plan, renamed: _Renamed,
        context: RuleContext,
    ) -> None:
        drops = {op.column_name: op for op in group.ops if isinstance(op, ops.DropColumnOp)}
        adds = {op.column.name: op for op in group.ops if isinstance(op, ops.AddColumnOp)}
        spellings = table_spellings(group.table_name, group.schema)
        asked = {r for r in plan.columns if r.table in spellings}
        for rename in sorted(asked, key=str):
            drop, add = drops.get(rename.old), adds.get(rename.new)
            if drop is None or add is None:
                continue
            alter = derived(add, _alter_for_rename(group, drop, add, context))
            replace_in(group.ops, add, [alter])
            replace_in(group.ops, drop, [])
            renamed.columns[(group.schema, group.table_name, rename.old)] = rename.new
            context.report(Finding(self.name, tree.direction, group.table_name,
                f"drop + add of {rename.old} / {rename.new} written as a rename", fixed=True,
                op=add))
        if tree.direction == "upgrade" and context.flag_look_alikes:
            for drop, add in _look_alikes(group, asked, context):
                self._flag_look_alike(tree, group, drop, add, context)

    def _flag_look_alike(
        self,
        tree: Tree,
        group: ops.ModifyTableOps,
        drop: ops.DropColumnOp,
        add: ops.AddColumnOp,
        context: RuleContext,
    ) -> None:
        table, old, new = group.table_name, drop.column_name, add.column.name
        hint = context.spell_option("rename", f"{table}.{old}:{new}")
        comment = CommentOp([
            f"migrafix: {table}.{old} is dropped and {table}.{new} added, both "
            f"{_type_text(add.column.type, context)}. If this is a rename, the data is lost.",
            f"To write it as a rename, {context.rerun} with",
            f"    {hint}",
            f"or put info={{'renamed_from': {old!r}}} on the column.",
        ], advisory=True)
        replace_in(group.ops, add, [comment, add])
        context.report(Finding(self.name, tree.direction, table,
            f"{old} dropped and {new} added with the same type: a rename?", fixed=False,
            hint=f"rerun with {hint} if it is", fixable_with="rename", op=add))

    # --- tables ---------------------------------------------------------------------------

    def _rename_table(
        self, revision: Revision, tree: Tree, rename: TableRename, renamed: _Renamed,
        context: RuleContext,
    ) -> None:
        pairs = _drops_and_creates(tree, rename)
        if len(pairs) > 1:  # said once, of the rename as asked: the upgrade's
            if tree.direction != "upgrade":
                return
            schemas = " and ".join(sorted(str(create.schema) for _, create in pairs))
            context.report(Finding(self.name, tree.direction, rename.old,
                f"rename {rename} was asked for, and this revision drops {rename.old} and "
                f"creates {rename.new} in schemas {schemas}: name the one meant "
                f"(schema.{rename.old}:schema.{rename.new})", fixed=False, op=pairs[0][1]))
            return
        if not pairs:
            return
        [(drop, create)] = pairs
        schema = create.schema
        if drop._reverse is None:  # a revision file whose other function does not create it
            context.report(Finding(self.name, tree.direction, rename.old,
                f"rename {rename} was asked for, but nothing here says which columns "
                f"{rename.old} had (no create_table of it in the other function is read): "
                "write the rename_table by hand", fixed=False, op=drop))
            return
        changes: list[ops.MigrateOperation] = []
        old_columns = {c.name: c for c in _columns(drop._reverse) }
        new_columns = {c.name: c for c in _columns(create)}
        for name, column in new_columns.items():
            if name not in old_columns:
                changes.append(ops.AddColumnOp(rename.new, column, schema=schema))
            else:
                alter = _alter_between(rename.new, old_columns[name], column, context, schema)
                if alter is not None:
                    changes.append(alter)
        for name, column in old_columns.items():
            if name not in new_columns:
                changes.append(ops.DropColumnOp(rename.new, name, schema=schema,
                                                _reverse=ops.AddColumnOp(rename.new, column)))
        if context.dialect_name in _FOLDING_DIALECTS:  # SQLite alters them only in batch mode
            dropped, added = _constraint_changes(drop._reverse, create, rename, context)
            changes = dropped + changes + added
        renamed.tables[(schema, rename.old)] = rename.new
        # Neither is created nor dropped now: the table keeps its rows.
        revision.transient_tables -= {(schema, rename.old), (schema, rename.new)}
        rename_op = ops.RenameTableOp(rename.old, rename.new, schema=schema)
        group = ops.ModifyTableOps(rename.new, changes, schema=schema)
        replacement: list[ops.MigrateOperation] = [rename_op] + ([group] if changes else [])
        replace_in(tree.top, create, [])
        # Ops on the new table written before the drop (its indexes) must follow the rename.
        drop_at = next(i for i, op in enumerate(tree.top) if op is drop)
        early = [op for op in tree.top[:drop_at] if _on_table(op, rename.new)]
        for op in early:
            replace_in(tree.top, op, [])
        replace_in(tree.top, drop, replacement + early)
        context.report(Finding(self.name, tree.direction, rename.old,
            f"drop_table + create_table of {rename.old} / {rename.new} written as a rename",
            fixed=True, op=create))

    # --- what the database carries over a rename --------------------------------------------

    def _fold_rebuilds(self, tree: Tree, renamed: _Renamed, context: RuleContext) -> None:
        """A drop + create of one index or constraint that differ only by a column or table
        renamed here: autogenerate rebuilds it, under a lock that stops writes (an index
        build, a foreign key's scan), though the database carries it over the rename. The
        pair goes; where the names differ (a convention name holding the column's), the
        index or constraint is renamed instead."""
        drops: list[tuple[ops.MigrateOperation, _Created]] = []
        creates: dict[tuple[object, ...], list[_Created]] = defaultdict(list)
        for _, op in tree.walk():
            if isinstance(op, _CREATES):
                creates[_signature(op, _Renamed(), context.dialect_name)].append(op)
            elif isinstance(op, (ops.DropConstraintOp, ops.DropIndexOp)) and \
                    isinstance(op._reverse, _CREATES):
                drops.append((op, op._reverse))
        replaced: dict[int, list[ops.MigrateOperation]] = {}
        for drop, dropped in drops:
            carried = _signature(dropped, renamed, context.dialect_name)
            unrenamed = _signature(dropped, _Renamed(), context.dialect_name)
            if carried == unrenamed or not creates.get(carried):
                continue  # no rename touches it, or it is not created again as it was
            create = creates[carried][0]
            old_name, new_name = _item_name(dropped), _item_name(create)
            if old_name is None or new_name is None or old_name == new_name:
                replacement: list[ops.MigrateOperation] = []
                done = f"{old_name or new_name}: kept as the database carries it over"
            else:
                rename_sql = _rename_sql(create, old_name, new_name, context)
                if rename_sql is None:
                    continue  # MySQL cannot rename a foreign key: rebuilt as written
                # in the create's place: the codemod keeps the comments above it there
                replacement = [derived(create, _renaming(create, rename_sql))]
                done = f"{old_name} renamed to {new_name}"
            creates[carried].pop(0)
            replaced[id(drop)] = []
            replaced[id(create)] = replacement
            context.report(Finding(self.name, tree.direction, _table_of_item(create),
                f"drop + create of {_kind_word(create)} over a renamed column or table "
                f"folded away, no rebuild: {done}", fixed=True, op=create))
        tree.replace_all(replaced)


def _references_after_renames(tree: Tree) -> None:
    """A create_foreign_key referencing a table renamed in this tree goes after the rename,
    which stands where autogenerate's drop_table stood, often after it (kept where MySQL cannot
    rename a foreign key, or where it is new)."""
    for op in list(tree.top):
        if not isinstance(op, ops.RenameTableOp):
            continue
        target = (op.schema, op.new_table_name)
        late: list[ops.MigrateOperation] = []
        for group in tree.top[:tree.top.index(op)]:
            if not isinstance(group, ops.ModifyTableOps):
                continue
            moved = [inner for inner in group.ops if isinstance(inner, ops.CreateForeignKeyOp)
                     and (inner.kw.get("referent_schema"), inner.referent_table) == target]
            if moved:
                group.ops[:] = [inner for inner in group.ops if inner not in moved]
                late.append(ops.ModifyTableOps(group.table_name, moved, schema=group.schema))
        at = tree.top.index(op) + 1
        tree.top[at:at] = late
    tree.top[:] = [op for op in tree.top if not (isinstance(op, ops.ModifyTableOps) and not op.ops)]


# Where renaming a column or table keeps its indexes and constraints (SQLite's are rebuilt
# with the table in batch mode anyway).
_FOLDING_DIALECTS = frozenset({"postgresql", "mysql", "mariadb"})
_CREATES = (ops.CreateIndexOp, ops.CreateUniqueConstraintOp, ops.CreateForeignKeyOp)
_Created = ops.CreateIndexOp | ops.CreateUniqueConstraintOp | ops.CreateForeignKeyOp


@dataclass
class _Renamed:
    """The renames one tree made: (schema, old table) -> new, and (schema, table as renamed,
    old column) -> new column."""

    tables: dict[tuple[str | None, str], str] = field(default_factory=dict)
    columns: dict[tuple[str | None, str, str], str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tables or self.columns)

    def table(self, schema: str | None, table: str) -> str:
        return self.tables.get((schema, table), table)

    def column_list(self, schema: str | None, table: str, columns: Sequence[Any]) -> tuple[Any, ...]:
        """``columns`` of ``table`` (as renamed) by their names after the renames."""
        names = [c.name if isinstance(c, sa.Column) else c for c in columns]
        # an expression is compared by its SQL: a rename inside it is not followed
        return tuple(self.columns.get((schema, table, c), c) if isinstance(c, str) else str(c)
                     for c in names)


def _options(kw: Mapping[str, Any], names: Sequence[str] | None = None) -> tuple[Any, ...]:
    """What else tells two constraints apart, as comparable text: reflection gives a few
    options as False or None that the model leaves out, and spells ON DELETE in capitals."""
    return tuple(sorted((k, str(v).upper()) for k, v in kw.items()
                        if v and (names is None or k in names)))


_FK_OPTIONS = ("onupdate", "ondelete", "deferrable", "initially", "match")


def _signature(op: _Created, renamed: _Renamed, dialect: str) -> tuple[object, ...]:
    """What an index or constraint is, by the names it would have after ``renamed``. MySQL
    reflects a unique constraint as a unique index: there the two are one kind."""
    if isinstance(op, ops.CreateForeignKeyOp):
        schema, referent_schema = op.kw.get("source_schema"), op.kw.get("referent_schema")
        table = renamed.table(schema, op.source_table)
        referent = renamed.table(referent_schema, op.referent_table)
        return ("fk", schema, table, renamed.column_list(schema, table, op.local_cols),
                referent_schema, referent,
                renamed.column_list(referent_schema, referent, op.remote_cols),
                _options(op.kw, _FK_OPTIONS))
    table = renamed.table(op.schema, op.table_name)
    if isinstance(op, ops.CreateIndexOp) and not (
            op.unique and not _options(op.kw) and dialect in ("mysql", "mariadb")):
        return ("ix", op.schema, table, renamed.column_list(op.schema, table, op.columns),
                bool(op.unique), _options(op.kw))
    return ("uq", op.schema, table, renamed.column_list(op.schema, table, op.columns),
            _options(getattr(op, "kw", {}), ("deferrable", "initially")))


def _item_name(op: _Created) -> str | None:
    name = op.index_name if isinstance(op, ops.CreateIndexOp) else op.constraint_name
    return None if name is None else str(name)


def _table_of_item(op: _Created) -> str:
    return op.source_table if isinstance(op, ops.CreateForeignKeyOp) else op.table_name


def _kind_word(op: _Created) -> str:
    if isinstance(op, ops.CreateIndexOp):
        return "an index"
    return "a foreign key" if isinstance(op, ops.CreateForeignKeyOp) else "a unique constraint"


def _rename_sql(op: _Created, old: str, new: str, context: RuleContext) -> str | None:
    """The statement that renames ``op``'s index or constraint from ``old`` to ``new`` on its
    table (as renamed); None where the database cannot (a MySQL foreign key)."""
    preparer = context.dialect.identifier_preparer
    schema = op.kw.get("source_schema") if isinstance(op, ops.CreateForeignKeyOp) else op.schema
    target = preparer.format_table(sa.table(_table_of_item(op), schema=schema))
    if context.dialect_name == "postgresql":
        if isinstance(op, ops.CreateIndexOp):
            where = f"{preparer.quote_schema(schema)}." if schema else ""
            return f"ALTER INDEX {where}{preparer.quote(old)} RENAME TO {preparer.quote(new)}"
        return f"ALTER TABLE {target} RENAME CONSTRAINT {preparer.quote(old)} TO {preparer.quote(new)}"
    if isinstance(op, ops.CreateForeignKeyOp) or context.dialect_name not in ("mysql", "mariadb"):
        return None
    return f"ALTER TABLE {target} RENAME INDEX {preparer.quote(old)} TO {preparer.quote(new)}"


def _constraint_changes(
    old: ops.CreateTableOp, new: ops.CreateTableOp, rename: TableRename, context: RuleContext
) -> tuple[list[ops.MigrateOperation], list[ops.MigrateOperation]]:
    """The unique, foreign key and check constraints of a renamed table that differ between
    its old and new forms: the database carries the old ones over the rename, under their old
    names. (drops, then the renames and creates.)"""
    schema = new.schema
    renamed = _Renamed({(schema, rename.old): rename.new})
    olds = {_constraint_key(c, renamed): c for c in _constraints(old)}
    dropped: list[ops.MigrateOperation] = []
    added: list[ops.MigrateOperation] = []
    for key, constraint in ((_constraint_key(c, _Renamed()), c) for c in _constraints(new)):
        twin = olds.pop(key, None)
        if twin is None:
            added.append(ops.AddConstraintOp.from_constraint(constraint))
            continue
        old_name, new_name = twin.name, constraint.name
        if old_name is None or new_name is None or str(old_name) == str(new_name):
            continue
        create = ops.AddConstraintOp.from_constraint(constraint)
        sql = _rename_sql(create, str(old_name), str(new_name), context) \
            if isinstance(create, _CREATES) else _rename_check_sql(create, str(old_name),
                                                                    str(new_name), context)
        if sql is None:  # rebuilt as it is written
            dropped.append(ops.DropConstraintOp(old_name, rename.new, schema=schema,
                                                type_=_constraint_type(twin)))
            added.append(create)
        else:
            added.append(_renaming(create, sql))
    for constraint in olds.values():
        if constraint.name is not None:
            dropped.append(ops.DropConstraintOp(
                constraint.name, rename.new, type_=_constraint_type(constraint), schema=schema))
    return dropped, added


def _renaming(op: ops.AddConstraintOp | ops.CreateIndexOp, sql: str) -> TableSQLOp:
    """``sql`` renaming ``op``'s index or constraint: ``RENAME CONSTRAINT`` locks its table
    ACCESS EXCLUSIVE (for a moment: no scan); PostgreSQL 12+ renames an index under SHARE
    UPDATE EXCLUSIVE, which stops no one."""
    if isinstance(op, ops.CreateForeignKeyOp):
        table, schema = op.source_table, op.kw.get("source_schema")
    else:
        table, schema = str(getattr(op, "table_name", "")), getattr(op, "schema", None)
    lock: LockMode | None = None if isinstance(op, ops.CreateIndexOp) else "ACCESS EXCLUSIVE"
    return TableSQLOp(sql, table_name=table, schema=schema, lock=lock)


def _rename_check_sql(op: ops.AddConstraintOp, old: str, new: str, context: RuleContext) -> str | None:
    if context.dialect_name != "postgresql":
        return None
    preparer = context.dialect.identifier_preparer
    target = preparer.format_table(sa.table(getattr(op, "table_name", ""),
                                            schema=getattr(op, "schema", None)))
    return f"ALTER TABLE {target} RENAME CONSTRAINT {preparer.quote(old)} TO {preparer.quote(new)}"


def _constraints(op: ops.CreateTableOp) -> list[sa.Constraint]:
    return [item for item in op.columns
            if isinstance(item, (sa.UniqueConstraint, sa.ForeignKeyConstraint, sa.CheckConstraint))]


def _constraint_type(constraint: sa.Constraint) -> str:
    if isinstance(constraint, sa.ForeignKeyConstraint):
        return "foreignkey"
    return "unique" if isinstance(constraint, sa.UniqueConstraint) else "check"


def _constraint_key(constraint: sa.Constraint, renamed: _Renamed) -> tuple[object, ...]:
    """What a constraint of a renamed table is, by its table's new name."""
    if isinstance(constraint, sa.CheckConstraint):
        return ("ck", " ".join(str(constraint.sqltext).split()))
    if isinstance(constraint, sa.ForeignKeyConstraint):
        columns = tuple(constraint.column_keys)
        targets = []
        for element in constraint.elements:
            table, _, column = element.target_fullname.rpartition(".")
            targets.append((renamed.table(None, table), column))
        return ("fk", columns, tuple(targets), _options(
            {k: getattr(constraint, k, None) for k in _FK_OPTIONS}))
    assert isinstance(constraint, sa.UniqueConstraint)
    return ("uq", tuple(constraint.columns.keys()))


def _drops_and_creates(
    tree: Tree, rename: TableRename
) -> list[tuple[ops.DropTableOp, ops.CreateTableOp]]:
    """The drop of ``rename.old`` and the create of ``rename.new`` in one schema, for each
    schema where the tree has both (a bare rename may find two). A table dropped in one schema
    and created in another moved: that is no rename."""
    drops = {op.schema: op for op in tree.top if isinstance(op, ops.DropTableOp)
             and op.table_name == rename.old and rename.schema in (None, op.schema)}
    creates = {op.schema: op for op in tree.top if isinstance(op, ops.CreateTableOp)
               and op.table_name == rename.new}
    return [(drop, creates[schema]) for schema, drop in drops.items() if schema in creates]


def _columns(op: ops.CreateTableOp | None) -> list[sa.Column[object]]:
    if op is None:
        return []
    return [item for item in op.columns if isinstance(item, sa.Column)]


def _column_name(op: ops.DropColumnOp | ops.AddColumnOp) -> str:
    return op.column_name if isinstance(op, ops.DropColumnOp) else op.column.name


def _on_table(op: ops.MigrateOperation, table: str) -> bool:
    return getattr(op, "table_name", None) == table


def _types_differ(existing: sa.Column[object], target: sa.Column[object],
                  context: RuleContext) -> bool:
    """As autogenerate tells a type change: MySQL's INTEGER(11) is an Integer, not a new type
    to write on a renamed column."""
    impl = MigrationContext.configure(dialect=context.dialect).impl
    try:
        return bool(impl.compare_type(existing, target))
    except Exception:  # a type Alembic cannot compare: by the text each compiles to
        return _type_text(existing.type, context) != _type_text(target.type, context)


def _type_text(type_: sa.types.TypeEngine[object], context: RuleContext) -> str:
    try:
        return str(type_.compile(dialect=context.dialect))
    except Exception:  # a type this dialect cannot compile: compare its repr instead
        return repr(type_)


def _look_alikes(
    group: ops.ModifyTableOps, asked: set[ColumnRename], context: RuleContext
) -> list[tuple[ops.DropColumnOp, ops.AddColumnOp]]:
    """Unasked drop + add pairs of one type. Keyed by type, never compared pairwise:
    a table with thousands of ops must not go quadratic."""
    asked_names = {r.old for r in asked} | {r.new for r in asked}
    # A column dropped and added back under its own name is a type change, not a rename.
    readded = {op.column.name for op in group.ops if isinstance(op, ops.AddColumnOp)}
    drops_by_type: dict[str, list[ops.DropColumnOp]] = defaultdict(list)
    for op in group.ops:
        if (isinstance(op, ops.DropColumnOp) and op.column_name not in asked_names
                and op.column_name not in readded):
            column = op._reverse.column if op._reverse is not None else None
            if column is not None:
                drops_by_type[_type_text(column.type, context)].append(op)
    pairs = []
    for op in group.ops:
        if isinstance(op, ops.AddColumnOp) and op.column.name not in asked_names:
            candidates = drops_by_type.get(_type_text(op.column.type, context))
            if candidates:
                pairs.append((candidates.pop(0), op))
    return pairs


def _alter_for_rename(
    group: ops.ModifyTableOps, drop: ops.DropColumnOp, add: ops.AddColumnOp, context: RuleContext
) -> ops.AlterColumnOp:
    existing = drop._reverse.column if drop._reverse is not None else add.column
    alter = _alter_between(group.table_name, existing, add.column, context, group.schema,
                           old_name=drop.column_name)
    assert alter is not None
    return alter


def _alter_between(
    table: str,
    existing: sa.Column[object],
    target: sa.Column[object],
    context: RuleContext,
    schema: str | None,
    old_name: str | None = None,
) -> ops.AlterColumnOp | None:
    """The alter_column taking ``existing`` to ``target``; None when nothing differs.

    Every ``existing_*`` is carried: MySQL rebuilds the whole column on a rename.
    """
    name = old_name or existing.name
    changes: dict[str, Any] = {}
    if name != target.name:
        changes["modify_name"] = target.name
    if _types_differ(existing, target, context):
        changes["modify_type"] = target.type
    if bool(existing.nullable) != bool(target.nullable):
        changes["modify_nullable"] = target.nullable
    if (existing.server_default is None) != (target.server_default is None):
        changes["modify_server_default"] = target.server_default
    # A dialect without comments (SQLite) reflects none: no difference to act on.
    comments = context.dialect.supports_comments
    if comments and (existing.comment or None) != (target.comment or None):
        changes["modify_comment"] = target.comment
    if not changes:
        return None
    if context.dialect_name in ("mysql", "mariadb") and _auto_increment(target):
        # CHANGE COLUMN rebuilds the column from the op alone: without it, AUTO_INCREMENT goes
        # and the next INSERT without a key fails. (Alembic warns on other dialects.)
        changes["autoincrement"] = True
    return ops.AlterColumnOp(
        table,
        name,
        schema=schema,
        existing_type=existing.type,
        existing_nullable=existing.nullable,
        existing_server_default=existing.server_default,
        existing_comment=existing.comment,
        **changes,
    )


def _auto_increment(column: sa.Column[object]) -> bool:
    """Whether ``column`` is its table's AUTO_INCREMENT column: so reflected (True), or left
    to SQLAlchemy ("auto") as the integer primary key it is the whole of."""
    if column.autoincrement is True:
        return True
    if column.autoincrement != "auto" or not column.primary_key:
        return False
    table = getattr(column, "table", None)
    alone = not isinstance(table, sa.Table) or len(table.primary_key.columns) == 1
    return alone and isinstance(column.type, sa.Integer)


def ask_at_terminal(question: str) -> bool:
    """Django's question, answered at the terminal; anything but y/yes is no."""
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in {"y", "yes"}



DropAddRename.examples = (
    Example(
        title="a renamed column, asked for on the model",
        dialect="postgresql",
        settings={"ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            customer = sa.Table(
                "customer", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(100), nullable=False, comment="shown on invoices"),
            )
        """,
        after="""
            metadata = sa.MetaData()
            customer = sa.Table(
                "customer", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("full_name", sa.String(100), nullable=False,
                          comment="shown on invoices", info={"renamed_from": "name"}),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('customer', sa.Column('full_name', sa.String(length=100), nullable=False, comment='shown on invoices'))
            op.drop_column('customer', 'name')
        """,
        fixed_upgrade=r"""
            op.alter_column('customer', 'name',
                       existing_type=sa.VARCHAR(length=100),
                       new_column_name='full_name',
                       existing_comment='shown on invoices',
                       existing_nullable=False)
        """,
        fixed_downgrade=r"""
            op.alter_column('customer', 'full_name',
                       existing_type=sa.String(length=100),
                       new_column_name='name',
                       existing_comment='shown on invoices',
                       existing_nullable=False)
        """,
    ),
    Example(
        title="a renamed column keeps its index, renamed",
        dialect="postgresql",
        settings={"renames": ["user.nick:handle"], "ignore": ["lock-timeout"]},
        before="""
            metadata = sa.MetaData()
            user = sa.Table(
                "user", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("nick", sa.String(50), index=True),
            )
        """,
        after="""
            metadata = sa.MetaData()
            user = sa.Table(
                "user", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("handle", sa.String(50), index=True),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('user', sa.Column('handle', sa.String(length=50), nullable=True))
            op.drop_index(op.f('ix_user_nick'), table_name='user')
            op.create_index(op.f('ix_user_handle'), 'user', ['handle'], unique=False)
            op.drop_column('user', 'nick')
        """,
        fixed_upgrade=r"""
            op.alter_column('user', 'nick',
                       existing_type=sa.VARCHAR(length=50),
                       new_column_name='handle',
                       existing_nullable=True)
            op.execute('ALTER INDEX ix_user_nick RENAME TO ix_user_handle')
        """,
        fixed_downgrade=r"""
            op.alter_column('user', 'handle',
                       existing_type=sa.String(length=50),
                       new_column_name='nick',
                       existing_nullable=True)
            op.execute('ALTER INDEX ix_user_handle RENAME TO ix_user_nick')
        """,
    ),
    Example(
        title="a pair that only looks like a rename",
        before="""
            metadata = sa.MetaData()
            user = sa.Table(
                "user", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("nickname", sa.String(50)),
            )
        """,
        after="""
            metadata = sa.MetaData()
            user = sa.Table(
                "user", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("handle", sa.String(50)),
            )
        """,
        autogenerated_upgrade=r"""
            op.add_column('user', sa.Column('handle', sa.String(length=50), nullable=True))
            op.drop_column('user', 'nickname')
        """,
        fixed_upgrade=r"""
            # migrafix: user.nickname is dropped and user.handle added, both VARCHAR(50). If this is a
            # rename, the data is lost.
            # To write it as a rename, rerun autogenerate with
            #     -x rename=user.nickname:handle
            # or put info={'renamed_from': 'nickname'} on the column.
            op.add_column('user', sa.Column('handle', sa.String(length=50), nullable=True))
            op.drop_column('user', 'nickname')
        """,
        fixed_downgrade=r"""
            op.add_column('user', sa.Column('nickname', sa.VARCHAR(length=50), nullable=True))
            op.drop_column('user', 'handle')
        """,
    ),
    Example(
        title="a renamed table, asked for with a setting",
        settings={"renames": ["client:customer"]},
        before="""
            metadata = sa.MetaData()
            client = sa.Table(
                "client", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(100)),
            )
        """,
        after="""
            metadata = sa.MetaData()
            customer = sa.Table(
                "customer", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(100)),
                sa.Column("email", sa.String(200)),
            )
        """,
        autogenerated_upgrade=r"""
            op.create_table('customer',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('name', sa.String(length=100), nullable=True),
            sa.Column('email', sa.String(length=200), nullable=True),
            sa.PrimaryKeyConstraint('id')
            )
            op.drop_table('client')
        """,
        fixed_upgrade=r"""
            op.rename_table('client', 'customer')
            op.add_column('customer', sa.Column('email', sa.String(length=200), nullable=True))
        """,
        fixed_downgrade=r"""
            op.rename_table('customer', 'client')
            op.drop_column('client', 'email')
        """,
    ),
)
