"""unnamed-constraint: constraints created or dropped with no name get the naming convention's."""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic.operations import ops
from sqlalchemy.sql.elements import conv, quoted_name

from migrafix.revision import Revision, derived
from migrafix.rules.base import Example, Finding, Rule, RuleContext, table_label

__all__ = [
    "DEFAULT_NAMING_CONVENTION",
    "DatabaseNaming",
    "NamingConvention",
    "UnnamedConstraint",
    "same_item",
]

DEFAULT_NAMING_CONVENTION: Mapping[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_PREFIX_BY_CLASS: Mapping[type, str] = {
    sa.Index: "ix",
    sa.UniqueConstraint: "uq",
    sa.CheckConstraint: "ck",
    sa.ForeignKeyConstraint: "fk",
    sa.PrimaryKeyConstraint: "pk",
}

# The kind of what each of Alembic's ops creates, without building it.
_OP_KIND: Mapping[type, str] = {
    ops.CreateIndexOp: "ix",
    ops.CreateUniqueConstraintOp: "uq",
    ops.CreateCheckConstraintOp: "ck",
    ops.CreateForeignKeyOp: "fk",
    ops.CreatePrimaryKeyOp: "pk",
}


class NamingConvention:
    """Names exactly as SQLAlchemy gives them: the constraint's table is copied into a
    throwaway ``MetaData(naming_convention=...)`` and the name read back, then truncated the
    way the dialect's compiler truncates it.

    An op whose name takes only the table, column and referred table names it carries is
    named from those names, as SQLAlchemy's ``ConventionDict`` fills them: building the stub
    table Alembic attaches its constraint to, then copying it, costs ~0.6 ms an op, the most
    of the hook's time in a large autogenerate."""

    def __init__(self, convention: Mapping[Any, str], dialect: sa.engine.Dialect) -> None:
        self.convention = {_PREFIX_BY_CLASS.get(k, k): v for k, v in convention.items()}
        self.dialect = dialect
        self.reason = ""
        # A key that is a class (sa.Constraint) applies to its subclasses, by SQLAlchemy's
        # own lookup: such a convention is left to SQLAlchemy whole.
        self._keyed_by_kind = all(isinstance(key, str) for key in self.convention)

    def name_for_op(self, op: _CreatesItem) -> conv | None:
        """The name of the constraint or index ``op`` creates, or None if the convention
        cannot name it."""
        name = self._name_from_names(op)
        if name is None:  # a token, or an op, that needs SQLAlchemy's objects
            return self.name_for(_item_of(op))
        # An empty name leaves the constraint unnamed, as SQLAlchemy leaves it.
        return self.truncated(name, is_index=False) if name else None

    def name_for(self, item: sa.Constraint | sa.Index) -> conv | None:
        """The name of ``item`` (attached to a table of ours), or None if the convention
        cannot name it (an expression index, a token the item cannot fill)."""
        return self.names_for([item])[0]

    def names_for(self, items: Sequence[sa.Constraint | sa.Index]) -> list[conv | None]:
        """The names of ``items``, all attached to one table of ours, from one conventioned
        copy of it: copying a table costs more than all the rest of naming."""
        if not items:
            return []
        table = items[0].table
        assert isinstance(table, sa.Table)
        lent: list[sa.CheckConstraint] = []
        if "%(constraint_name)s" in self.convention.get("ck", ""):
            # Every unnamed CHECK of the table needs its stand-in, or copying the table fails;
            # lent for the copy only, so the table is left as it was.
            lent = [c for c in table.constraints
                    if isinstance(c, sa.CheckConstraint) and c.name is None]
            for check in lent:
                check.name = check_stand_in(check, table)
        try:
            named = table.to_metadata(sa.MetaData(naming_convention=self.convention))
        except Exception:  # a convention token some item cannot fill
            return [None] * len(items)
        finally:
            for check in lent:
                check.name = None
        names: list[conv | None] = []
        for item in items:
            twin = _twin_in(named, item)
            ok = twin is not None and isinstance(twin.name, conv)
            names.append(self.truncated(twin.name, isinstance(item, sa.Index)) if ok else None)
        return names

    def truncated(self, name: str, is_index: bool) -> conv:
        preparer = self.dialect.identifier_preparer
        shorten = (preparer.truncate_and_render_index_name if is_index
                   else preparer.truncate_and_render_constraint_name)
        return conv(shorten(conv(name), _alembic_quote=False))

    def _name_from_names(self, op: _CreatesItem) -> str | None:
        """The convention's name for ``op``'s constraint, from the op's names alone; None when
        the op or a token needs the objects (``name_for_op`` then builds them)."""
        parts = _names_of(op) if self._keyed_by_kind else None
        if parts is None or not _by_token_names(self.convention.get(parts[0])):
            return None
        kind, table, columns, referred = parts
        try:
            if "pk" in self.convention:
                # Copying a table first names its implicit, empty primary key: where that
                # fails, SQLAlchemy names nothing.
                pk = self.convention["pk"]
                if not _by_token_names(pk):
                    return None
                pk % _NameTokens(self.convention, table, [], None)
            return self.convention[kind] % _NameTokens(self.convention, table, columns, referred)
        except Exception:  # a token taken from the objects, or failing there too: theirs to say
            return None


@functools.cache
def _by_token_names(template: str | None) -> bool:
    """Whether ``template`` only has ``%(token)`` directives: any other formats the token
    mapping itself (SQLAlchemy's object), which a name from names cannot repeat."""
    return isinstance(template, str) and "%" not in re.sub(r"%\(\w+\)|%%", "", template)


_CreatesItem = ops.AddConstraintOp | ops.CreateIndexOp


def _item_of(op: _CreatesItem) -> sa.Constraint | sa.Index:
    """The constraint or index ``op`` creates, on a stub table Alembic builds for it: ours."""
    return op.to_index() if isinstance(op, ops.CreateIndexOp) else op.to_constraint()


# The ops named from their names alone, and the keyword arguments Alembic's stub constraint
# stores as they are: any other keyword (a dialect's) may make building the stub fail, which
# a name from the op's names would hide.
_PLAIN_KW: Mapping[type, frozenset[str]] = {
    ops.CreateForeignKeyOp: frozenset({"source_schema", "referent_schema", "onupdate",
                                       "ondelete", "deferrable", "initially", "match",
                                       "use_alter"}),
    ops.CreateUniqueConstraintOp: frozenset({"deferrable", "initially"}),
    ops.CreatePrimaryKeyOp: frozenset(),
}


def _names_of(op: _CreatesItem) -> tuple[str, str, list[str], str | None] | None:
    """(convention key, table, columns, referred table) of an op in ``_PLAIN_KW`` whose stub
    constraint would be built without fail; None for any other."""
    allowed = _PLAIN_KW.get(type(op))
    if allowed is None or not set(getattr(op, "kw", {})) <= allowed:
        return None
    referred: str | None = None
    if isinstance(op, ops.CreateForeignKeyOp):
        table, columns, remote = op.source_table, list(op.local_cols), list(op.remote_cols)
        if len(columns) != len(remote) or not _all_str(op.referent_table, *remote):
            return None
        referred = str(op.referent_table)  # the plain str SQLAlchemy reads from the target
        if "." in referred or "." in remote[0]:  # SQLAlchemy reads it back split at dots
            return None
    else:
        assert isinstance(op, (ops.CreateUniqueConstraintOp, ops.CreatePrimaryKeyOp))
        table, columns = op.table_name, list(op.columns)
    # A primary key of no columns is bound to no table; a stub table of duplicates fails.
    if not columns or not _all_str(table, *columns) or len(set(columns)) != len(columns):
        return None
    return _OP_KIND[type(op)], table, columns, referred


def _all_str(*names: object) -> bool:
    return all(isinstance(name, str) for name in names)


class _NameTokens:
    """The tokens SQLAlchemy's ``ConventionDict`` fills from names alone, valued as it values
    them; ``KeyError`` for any other (labels, keys, referred columns, ``constraint_name``, a
    token the project's convention defines)."""

    def __init__(
        self,
        convention: Mapping[str, str],
        table: str,
        columns: Sequence[str],
        referred: str | None,
    ) -> None:
        self.convention = convention
        # The str subclass SQLAlchemy's Table and Column hold, so that %r formats alike.
        self.table = quoted_name(table, None)
        self.columns = [quoted_name(c, None) for c in columns]
        self.referred = referred

    def __getitem__(self, key: str) -> str:
        if key in self.convention:  # to SQLAlchemy, a token the convention computes
            raise KeyError(key)
        if key == "table_name":
            return self.table
        if key == "referred_table_name" and self.referred is not None:
            return self.referred
        if key in ("column_0N_name", "column_0_N_name"):
            return ("_" if key == "column_0_N_name" else "").join(self.columns)
        single = re.fullmatch(r"column_(\d+)_name", key)
        if single is not None:
            index = int(single[1])
            return self.columns[index] if index < len(self.columns) else ""
        raise KeyError(key)


class DatabaseNaming:
    """The names the database gave constraints created with no name, for revisions that
    already ran: renaming those now would break every deployed database's downgrade.

    PostgreSQL: ``<table>_<columns>_fkey`` / ``_key`` / ``_check`` / ``<table>_pkey``, cut to
    63 bytes the way its ``makeObjectName`` cuts them. MySQL: a unique key takes its first
    column's name, the primary key is ``PRIMARY``; foreign keys (``<table>_ibfk_<n>``) and
    checks are numbered by creation order, so they cannot be known from one file.
    """

    def __init__(
        self, dialect: sa.engine.Dialect, project: NamingConvention | None = None
    ) -> None:
        self.dialect = dialect
        # At run time Alembic names an op's None constraint by target_metadata's convention:
        # for the kinds the project's convention covers, that is the name the database holds.
        self.project = project
        self.reason = ""

    def name_for_op(self, op: _CreatesItem) -> conv | None:
        if self._by_project(_OP_KIND.get(type(op))):
            assert self.project is not None
            return self.project.name_for_op(op)
        return self.name_for(_item_of(op))

    def names_for(self, items: Sequence[sa.Constraint | sa.Index]) -> list[conv | None]:
        """The names of ``items``, all of one table: those of the kinds the project's
        convention covers from one copy of it (see ``NamingConvention.names_for``)."""
        covered = [item for item in items if self._by_project(_PREFIX_BY_CLASS.get(type(item)))]
        by_project: dict[int, conv | None] = {}
        if self.project is not None and covered:
            names = self.project.names_for(covered)
            by_project = {id(item): name for item, name in zip(covered, names, strict=True)}
        return [by_project[id(item)] if id(item) in by_project else self.name_for(item)
                for item in items]

    def _by_project(self, kind: str | None) -> bool:
        return self.project is not None and kind in self.project.convention

    def name_for(self, item: sa.Constraint | sa.Index) -> conv | None:
        table = item.table
        assert isinstance(table, sa.Table)
        if self._by_project(_PREFIX_BY_CLASS.get(type(item))):
            assert self.project is not None
            return self.project.name_for(item)
        columns = [c.name for c in getattr(item, "columns", [])]
        if self.dialect.name == "postgresql":
            return self._postgresql(item, table, columns)
        if self.dialect.name in ("mysql", "mariadb"):
            if isinstance(item, sa.PrimaryKeyConstraint):
                return conv("PRIMARY")
            if isinstance(item, sa.UniqueConstraint) and columns:
                return conv(columns[0])
            self.reason = ("MySQL numbers unnamed foreign keys and checks by creation order "
                           "(<table>_ibfk_<n>): the name cannot be known from the file")
            return None
        self.reason = f"{self.dialect.name} gives unnamed constraints no name migrafix can know"
        return None

    def _postgresql(
        self, item: sa.Constraint | sa.Index, table: sa.Table, columns: list[str]
    ) -> conv | None:
        if isinstance(item, sa.PrimaryKeyConstraint):
            return conv(_pg_object_name(table.name, None, "pkey"))
        if isinstance(item, sa.ForeignKeyConstraint) and columns:
            return conv(_pg_object_name(table.name, "_".join(columns), "fkey"))
        if isinstance(item, sa.UniqueConstraint) and columns:
            return conv(_pg_object_name(table.name, "_".join(columns), "key"))
        if isinstance(item, sa.CheckConstraint):
            used = _columns_named_in(item, table)
            if table.columns:
                return conv(_pg_object_name(table.name, used[0] if len(used) == 1 else None,
                                            "check"))
        self.reason = "PostgreSQL's name for it depends on columns not known from the file"
        return None


def _pg_object_name(name1: str, name2: str | None, label: str) -> str:
    """PostgreSQL's makeObjectName: shorten the longer part until the name fits 63 bytes."""
    overhead = len(label) + 1 + (1 if name2 is not None else 0)
    available = 63 - overhead
    chars1, chars2 = len(name1), len(name2 or "")
    while chars1 + chars2 > available:
        if chars1 > chars2:
            chars1 -= 1
        else:
            chars2 -= 1
    parts = [name1[:chars1]] + ([name2[:chars2]] if name2 is not None else []) + [label]
    return "_".join(parts)


def _columns_named_in(check: sa.CheckConstraint, table: sa.Table) -> list[str]:
    text = " ".join(str(check.sqltext).split())
    known = set(table.columns.keys())
    return [w for w in dict.fromkeys(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)) if w in known]


def check_stand_in(check: sa.CheckConstraint, table: sa.Table) -> str:
    """The ``%(constraint_name)s`` of an unnamed CHECK: the table's columns its SQL names, in
    order (``price > 0`` on product gives ``ck_product_price``), else the first 8 hex digits of
    the SHA-1 of its whitespace-normalised SQL. Deterministic, so upgrade and downgrade agree."""
    words = _columns_named_in(check, table)
    if words:
        return "_".join(words)
    text = " ".join(str(check.sqltext).split())
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _twin_in(table: sa.Table, original: sa.Constraint | sa.Index) -> Any:
    """The one constraint or index of ``table`` that is ``original``'s copy, if unambiguous."""
    twins = [c for c in (*table.constraints, *table.indexes) if same_item(c, original)]
    return twins[0] if len(twins) == 1 else None


def same_item(candidate: Any, original: Any) -> bool:
    """Whether ``candidate`` is a copy of ``original``: same kind, same columns or SQL."""
    if type(candidate) is not type(original):
        return False
    if isinstance(original, sa.CheckConstraint):
        return str(candidate.sqltext) == str(original.sqltext)
    if isinstance(original, sa.Index):
        return [str(e) for e in candidate.expressions] == [str(e) for e in original.expressions]
    return list(candidate.columns.keys()) == list(original.columns.keys())


class UnnamedConstraint(Rule):
    name = "unnamed-constraint"
    summary = "A constraint is created with no name, so its downgrade cannot drop it."
    why = (
        "Without a naming convention, autogenerate writes `create_foreign_key(None, ...)`; the "
        "database picks a name Alembic never learns, and the downgrade's "
        "`drop_constraint(None, ...)` dies (or, done by hand, drops the wrong constraint). "
        "migrafix names every constraint and index the revision creates or drops without a "
        "name, in upgrade and downgrade alike, with the name SQLAlchemy's naming convention "
        "gives it: the project's `target_metadata.naming_convention` for that kind where it has "
        "one, else migrafix's default (`ix_%(column_0_label)s`, "
        "`uq_%(table_name)s_%(column_0_name)s`, `ck_%(table_name)s_%(constraint_name)s`, "
        "`fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s`, `pk_%(table_name)s`). "
        "An unnamed CHECK's `%(constraint_name)s` is the columns its SQL names, or a hash of "
        "its SQL. Names longer than the dialect allows are truncated as SQLAlchemy truncates "
        "them."
    )
    fix_safety = (
        "Safe for a revision that has not run anywhere yet, which is what autogenerate "
        "produces. A revision that already ran created its constraints under the database's "
        "own names (PostgreSQL `order_invoice_id_fkey`): do not rename those after the fact."
    )
    options = "`naming_convention = {fk = \"...\", ...}` in `[tool.migrafix]` replaces the default."

    def apply(self, revision: Revision, context: RuleContext) -> None:
        naming: NamingConvention | DatabaseNaming
        project = {**context.settings.naming_convention, **_explicit(context.naming_convention)}
        if context.constraint_names == "database":
            naming = DatabaseNaming(
                context.dialect, NamingConvention(project, context.dialect) if project else None)
        else:
            naming = NamingConvention(
                {**DEFAULT_NAMING_CONVENTION, **project},
                context.dialect,
            )
        for tree in revision.trees():
            renamed: dict[int, list[ops.MigrateOperation]] = {}
            for _, op in tree.walk():
                named = self._named(op, naming)
                if named is None:
                    continue
                new_op, message = named
                renamed[id(op)] = [new_op]
                context.report(Finding(self.name, tree.direction, table_label(op), message,
                                       fixed=new_op is not op, op=op))
            tree.replace_all(renamed)

    def _named(
        self, op: ops.MigrateOperation, naming: NamingConvention | DatabaseNaming
    ) -> tuple[ops.MigrateOperation, str] | None:
        if isinstance(op, ops.CreateTableOp):
            return _named_table(op, naming)
        if isinstance(op, ops.AddConstraintOp) and getattr(op, "constraint_name", "") is None:
            return _with_name(op, "constraint_name", naming.name_for_op(op),
                              f"{_verb(op)} had no name", naming)
        if isinstance(op, ops.CreateIndexOp) and op.index_name is None:
            return _with_name(op, "index_name", naming.name_for_op(op),
                              "create_index had no name", naming)
        if isinstance(op, ops.DropConstraintOp) and op.constraint_name is None:
            source = op._reverse
            name = naming.name_for_op(source) if source is not None else None
            if source is None:
                naming.reason = "no create_constraint in this file says what it drops"
            return _with_name(op, "constraint_name", name, "drop_constraint had no name", naming)
        if isinstance(op, ops.DropIndexOp) and op.index_name is None:
            name = naming.name_for_op(op._reverse) if op._reverse is not None else None
            return _with_name(op, "index_name", name, "drop_index had no name", naming)
        return None


def _explicit(convention: Mapping[Any, str]) -> dict[Any, str]:
    """The project's convention, less SQLAlchemy's built-in ``ix`` entry that every MetaData
    has: that one is not a choice the project made, so ours must not be overridden by it."""
    explicit = dict(convention)
    if explicit.get("ix") == sa.BLANK_SCHEMA or explicit.get("ix") == "ix_%(column_0_label)s":
        explicit.pop("ix")
    return explicit


def _verb(op: ops.MigrateOperation) -> str:
    return {
        ops.CreateForeignKeyOp: "create_foreign_key",
        ops.CreateUniqueConstraintOp: "create_unique_constraint",
        ops.CreateCheckConstraintOp: "create_check_constraint",
        ops.CreatePrimaryKeyOp: "create_primary_key",
    }.get(type(op), "create constraint")


def _with_name(
    op: ops.MigrateOperation,
    attribute: str,
    name: conv | None,
    what: str,
    naming: NamingConvention | DatabaseNaming,
) -> tuple[ops.MigrateOperation, str]:
    if name is None:
        reason = getattr(naming, "reason", "") or "the naming convention cannot name it"
        return op, f"{what}, and {reason}: name it by hand"
    named = derived(op, copy.copy(op))
    setattr(named, attribute, name)
    return named, f"{what}: named {name}"


def _named_table(
    op: ops.CreateTableOp, naming: NamingConvention | DatabaseNaming
) -> tuple[ops.MigrateOperation, str] | None:
    if not any(isinstance(i, sa.Constraint) and i.name is None for i in op.columns):
        return None
    table = op.to_table().to_metadata(sa.MetaData())  # ours: naming it touches no model object
    # The constraints the op lists as arguments: those a revision file writes. Those of column
    # arguments (primary_key=True, ForeignKey(...), unique=True) exist only in the table;
    # the codemod leaves them as they are written, and the database names them.
    listed = {id(twin) for item in op.columns if isinstance(item, sa.Constraint)
              if (twin := _twin_in(table, item)) is not None}
    unnamed = [c for c in table.constraints if c.name is None]
    names, of_columns = [], 0
    for constraint, name in zip(unnamed, naming.names_for(unnamed), strict=True):
        if name is not None:
            constraint.name = name
            if id(constraint) in listed:
                names.append(name)
            else:
                of_columns += 1
    if not names:  # the reason is the naming's own: under database naming it is no convention
        reason = getattr(naming, "reason", "") or "the naming convention cannot name them"
        return op, f"create_table {op.table_name}: unnamed constraints, and {reason}: name them by hand"
    new_op = derived(op, ops.CreateTableOp.from_table(table))
    message = f"create_table {op.table_name}: named {', '.join(sorted(names))}"
    if of_columns:
        message += (f" ({of_columns} more, from column arguments such as primary_key=True, "
                    "keep the names the database gives them)")
    return new_op, message


UnnamedConstraint.examples = (
    Example(
        title="a foreign key added to an existing table",
        dialect="postgresql",
        before="""
            metadata = sa.MetaData()
            invoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))
            order = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True))
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
            op.add_column('order', sa.Column('invoice_id', sa.Integer(), nullable=True))
            op.create_foreign_key(None, 'order', 'invoice', ['invoice_id'], ['id'])
        """,
        fixed_upgrade=r"""
            op.add_column('order', sa.Column('invoice_id', sa.Integer(), nullable=True))
            op.create_foreign_key(op.f('fk_order_invoice_id_invoice'), 'order', 'invoice', ['invoice_id'], ['id'])
        """,
        fixed_downgrade=r"""
            op.drop_constraint(op.f('fk_order_invoice_id_invoice'), 'order', type_='foreignkey')
            op.drop_column('order', 'invoice_id')
        """,
    ),
    Example(
        title="the constraints of a new table",
        before="""
            metadata = sa.MetaData()
        """,
        after="""
            metadata = sa.MetaData()
            product = sa.Table(
                "product", metadata,
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("sku", sa.String(20), unique=True),
                sa.Column("price", sa.Numeric(10, 2)),
                sa.CheckConstraint("price > 0"),
            )
        """,
        autogenerated_upgrade=r"""
            op.create_table('product',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('sku', sa.String(length=20), nullable=True),
            sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=True),
            sa.CheckConstraint('price > 0'),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('sku')
            )
        """,
        fixed_upgrade=r"""
            op.create_table('product',
            sa.Column('id', sa.Integer(), nullable=False),
            sa.Column('sku', sa.String(length=20), nullable=True),
            sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=True),
            sa.CheckConstraint('price > 0', name=op.f('ck_product_price')),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_product')),
            sa.UniqueConstraint('sku', name=op.f('uq_product_sku'))
            )
        """,
        fixed_downgrade=r"""
            op.drop_table('product')
        """,
    ),
)
